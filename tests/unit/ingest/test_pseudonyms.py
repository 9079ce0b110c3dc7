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
    assert p.pseudonym("t1", "patient_ref", "MRN-1") == Pseudonymiser(MASTER).pseudonym(
        "t1", "patient_ref", "MRN-1"
    )


def test_tenants_get_unrelated_pseudonyms_for_the_same_identifier() -> None:
    p = Pseudonymiser(MASTER)
    assert p.pseudonym("t1", "patient_ref", "MRN-1") != p.pseudonym("t2", "patient_ref", "MRN-1")


def test_patient_and_encounter_with_equal_raw_ids_do_not_share_a_pseudonym() -> None:
    p = Pseudonymiser(MASTER)
    assert p.pseudonym("t1", "patient_ref", "123") != p.pseudonym("t1", "encounter_ref", "123")


def test_pseudonymise_replaces_both_refs_and_nothing_else() -> None:
    sent = event("encounter.discharged")
    result = Pseudonymiser(MASTER).pseudonymise("t1", sent)
    assert result["data"]["patient_ref"] == Pseudonymiser(MASTER).pseudonym("t1", "patient_ref", "MRN-555001")
    assert result["data"]["encounter_ref"] == Pseudonymiser(MASTER).pseudonym(
        "t1", "encounter_ref", "ENC-1001"
    )
    assert "MRN-555001" not in str(result) and "ENC-1001" not in str(result)
    assert {k: v for k, v in result["data"].items() if not k.endswith("_ref")} == {
        k: v for k, v in sent["data"].items() if not k.endswith("_ref")
    }
    assert {k: v for k, v in result.items() if k != "data"} == {k: v for k, v in sent.items() if k != "data"}
    assert sent["data"]["patient_ref"] == "MRN-555001"  # the caller's document is not modified
    validate_event(result)  # still a valid catalogue event


def test_events_without_refs_are_unchanged() -> None:
    original = event("cost.incurred")
    assert Pseudonymiser(MASTER).pseudonymise("t1", original) is original


def test_precomputed_hmac_equals_the_standard_library_for_any_key_and_message() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from ingest.domain.pseudonyms import _KeyedSha256

    @given(key=st.binary(min_size=1, max_size=200), message=st.binary(max_size=300))
    def check(key: bytes, message: bytes) -> None:
        assert _KeyedSha256(key).hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()

    check()
