from __future__ import annotations

import hashlib
import hmac

from ingest.domain.pseudonyms import PREFIX, Pseudonymiser
from tests.support.examples import event
from vr_shared.events import validate_event

MASTER = b"m" * 48


def test_pseudonym_is_hmac_sha256_under_the_tenants_derived_key() -> None:
    tenant_key = hmac.new(MASTER, b"vr-pseudonym-key-v1\x00mission-health", hashlib.sha256).digest()
    expected = PREFIX + hmac.new(tenant_key, b"patient_ref\x00MRN-1", hashlib.sha256).hexdigest()
    assert Pseudonymiser(MASTER).pseudonym("mission-health", "patient_ref", "MRN-1") == expected


def test_same_identifier_gives_the_same_pseudonym_within_a_tenant() -> None:
    p = Pseudonymiser(MASTER)
    assert p.pseudonym("t1", "patient_ref", "MRN-1") == Pseudonymiser(MASTER).pseudonym("t1", "patient_ref", "MRN-1")


def test_tenants_get_unrelated_pseudonyms_for_the_same_identifier() -> None:
    p = Pseudonymiser(MASTER)
    assert p.pseudonym("t1", "patient_ref", "MRN-1") != p.pseudonym("t2", "patient_ref", "MRN-1")


def test_patient_and_encounter_with_equal_raw_ids_do_not_share_a_pseudonym() -> None:
    p = Pseudonymiser(MASTER)
    assert p.pseudonym("t1", "patient_ref", "123") != p.pseudonym("t1", "encounter_ref", "123")


def test_pseudonymise_replaces_both_refs_and_nothing_else() -> None:
    original = validate_event(event("encounter.discharged"))
    result = Pseudonymiser(MASTER).pseudonymise("t1", original)
    data = result.data.model_dump(mode="json")
    assert data["patient_ref"].startswith(PREFIX) and data["encounter_ref"].startswith(PREFIX)
    assert "MRN-555001" not in result.model_dump_json() and "ENC-1001" not in result.model_dump_json()
    assert {k: v for k, v in data.items() if not k.endswith("_ref")} == {
        k: v for k, v in original.data.model_dump(mode="json").items() if not k.endswith("_ref")
    }
    assert validate_event(result.model_dump(mode="json")) == result  # still a valid catalogue event


def test_events_without_refs_are_unchanged() -> None:
    original = validate_event(event("cost.incurred"))
    assert Pseudonymiser(MASTER).pseudonymise("t1", original) is original
