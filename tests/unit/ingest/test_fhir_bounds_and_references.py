"""FHIR input that must be refused by name rather than fail a Bundle (times outside the years a UTC
instant has, money no catalogue event can carry), reference work that stays linear in the Bundle, and
the rules that make an Encounter name the same patient and the same stay however it is sent
(docs/interop.md, "FHIR R4")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from ingest.domain import fhir_references
from ingest.domain.fhir import HARM_CATEGORY, INITIAL_ADJUDICATION, map_resource
from ingest.domain.fhir_references import MAX_URL, BundleIndex
from ingest.handlers import read_fhir_bundle

ORG = "Organization?identifier=urn:npi|main"


def _encounter(**changes: Any) -> dict[str, Any]:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e1",
        "identifier": [{"value": "V-1"}],
        "status": "finished",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/123"},
        "period": {"start": "2026-03-01T08:00:00-05:00", "end": "2026-03-04T11:30:00-05:00"},
        "serviceProvider": {"reference": ORG},
    }
    return {**encounter, **changes}


def _map(resource: Mapping[str, Any], index: BundleIndex | None = None, zone: str = "UTC") -> Any:
    return map_resource(resource, index or BundleIndex(), zone, None, str(resource["resourceType"]))


def _issue(mapped: Any) -> tuple[str, str]:
    assert mapped.events == [] and mapped.status == "422", mapped
    (issue,) = mapped.issues
    return issue.code, issue.expression


def _json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


# --- Times outside the years an instant has in UTC (point 9) ---------------------------------------------


@pytest.mark.parametrize(
    ("start", "zone"),
    [
        ("0001-01-01", "Asia/Tokyo"),  # the tenant's local midnight is in year 0 in UTC
        ("0001-01-01T00:30:00+01:00", "UTC"),
        ("9999-12-31T23:59:59-14:00", "UTC"),  # year 10000 in UTC
    ],
)
def test_a_time_outside_the_years_of_utc_is_422_naming_the_element(start: str, zone: str) -> None:
    """It raised OverflowError in astimezone: a 500 for the whole Bundle."""
    mapped = _map(_encounter(status="in-progress", period={"start": start}), zone=zone)
    assert _issue(mapped) == ("value", "Encounter.period.start")
    assert "outside the years 0001–9999 in UTC" in mapped.issues[0].diagnostics


def test_the_first_and_last_instants_utc_has_are_times() -> None:
    first = _map(_encounter(status="in-progress", period={"start": "0001-01-01T00:00:00Z"}))
    last = _map(_encounter(status="in-progress", period={"start": "9999-12-31T23:59:59Z"}))
    assert [m.events[0]["time"] for m in (first, last)] == [
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59+00:00",
    ]


def test_a_claim_created_outside_the_years_of_utc_is_422_naming_created() -> None:
    claim = {
        "resourceType": "Claim",
        "id": "c1",
        "created": "9999-12-31T23:59:59-14:00",
        "total": {"value": Decimal("10.00")},
        "provider": {"reference": ORG},
    }
    assert _issue(_map(claim)) == ("value", "Claim.created")


def test_a_bundle_with_a_time_out_of_range_answers_each_entry() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": _encounter(id="bad", period={"start": "9999-12-31T23:59:59-14:00"})},
            {"resource": _encounter(id="good")},
        ],
    }
    first, second = read_fhir_bundle(bundle, "UTC", None)
    assert first.status == "422" and len(second.events) == 2


# --- Money the catalogue can carry (point 10) ------------------------------------------------------------


def _claim(amount: str) -> dict[str, Any]:
    text = (
        '{"resourceType": "Claim", "id": "c1", "created": "2026-03-02", "total": {"value": AMOUNT},'
        f' "provider": {{"reference": "{ORG}"}}}}'
    )
    return dict(_json(text.replace("AMOUNT", amount)))


@pytest.mark.parametrize(
    ("amount", "why"),
    [
        ("1e999999999", "more than 18 integer digits"),  # formatted, a gigabyte of digits
        ("1234567890123456789", "more than 18 integer digits"),
        ("1.00001", "more than 4 decimal places"),
        ("1e-999999999", "more than 4 decimal places"),
    ],
)
def test_money_the_catalogue_cannot_carry_is_422_naming_the_value(amount: str, why: str) -> None:
    mapped = _map(_claim(amount))
    assert _issue(mapped) == ("value", "Claim.total.value")
    assert why in mapped.issues[0].diagnostics


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("1250.10", "1250.10"),
        ("1.000000", "1.0000"),
        ("1E+3", "1000"),
        ("0E+999999999", "0"),
        ("123456789012345678", "123456789012345678"),
    ],
)
def test_money_within_the_catalogue_is_taken_exactly(amount: str, text: str) -> None:
    (event,) = _map(_claim(amount)).events
    assert event["data"]["amount"] == text


def test_a_claim_response_paying_an_absurd_amount_is_422_not_an_overflow() -> None:
    """`submitted - paid` raised decimal.Overflow: a 500 for the whole Bundle."""
    text = json.dumps(
        {
            "resourceType": "ClaimResponse",
            "id": "r1",
            "created": "2026-03-05",
            "outcome": "complete",
            "request": {"reference": "Claim/c1"},
            "requestor": {"reference": ORG},
            "payment": {"amount": {"value": "PAID"}},
            "total": [{"category": {"coding": [{"code": "submitted"}]}, "amount": {"value": 100}}],
            "extension": [{"url": INITIAL_ADJUDICATION, "valueBoolean": True}],
        }
    ).replace('"PAID"', "-1e999999999")
    assert _issue(_map(_json(text))) == ("value", "ClaimResponse.payment.amount.value")
    assert _issue(_map(_json(text.replace("-1e999999999", "1e999999999")))) == (
        "value",
        "ClaimResponse.payment.amount.value",
    )


# --- Reference work stays linear (point 11) --------------------------------------------------------------


class CountingResource(dict[str, Any]):
    """A resource that counts how often its `contained` list is read."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        if key == "contained":
            type(self).reads += 1
        return super().get(key, default)


def _adverse_event(suspects: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "AdverseEvent",
        "id": "ae-1",
        "actuality": "actual",
        "date": "2026-03-02T10:00:00-05:00",
        "encounter": {"reference": "Encounter?identifier=V-1"},
        "extension": [{"url": HARM_CATEGORY, "valueCode": "F"}],
        "suspectEntity": [{"instance": s} for s in suspects],
        **more,
    }


def test_contained_resources_are_indexed_once_per_holder() -> None:
    """Each `#id` suspect scanned the holder's whole `contained` list: quadratic in the suspects."""
    contained = [{"resourceType": "Device", "id": f"d{n}"} for n in range(99)] + [
        {"resourceType": "Medication", "id": "drug"}
    ]
    suspects = [{"reference": f"#d{n}"} for n in range(99)] + [{"reference": "#drug"}]
    CountingResource.reads = 0
    adverse_event = CountingResource(_adverse_event(suspects, contained=contained))
    (event,) = map_resource(adverse_event, BundleIndex(), "UTC", "main", "AdverseEvent").events
    assert event["type"] == "adverse_drug_event.recorded"
    assert CountingResource.reads == 1


def test_an_entrys_base_is_computed_once_not_per_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = fhir_references.RESTFUL_URL

    class Counting:
        def fullmatch(self, text: str) -> Any:
            nonlocal calls
            calls += 1
            return real.fullmatch(text)

    monkeypatch.setattr(fhir_references, "RESTFUL_URL", Counting())
    suspects = [{"reference": f"Device/d{n}"} for n in range(50)] + [{"reference": "Medication/m1"}]
    adverse_event = _adverse_event(suspects)
    index = BundleIndex(
        [
            {"fullUrl": "http://a.example/fhir/AdverseEvent/ae-1", "resource": adverse_event},
            {
                "fullUrl": "http://a.example/fhir/Medication/m1",
                "resource": {"resourceType": "Medication", "id": "m1"},
            },
        ]
    )
    (event,) = map_resource(adverse_event, index, "UTC", "main", "AdverseEvent").events
    assert event["type"] == "adverse_drug_event.recorded"
    assert calls == 2  # once per entry, when the Bundle is indexed


def test_too_many_suspects_is_422_naming_suspect_entity() -> None:
    mapped = map_resource(
        _adverse_event([{"reference": "Medication/m1"}] * 101), BundleIndex(), "UTC", "main", "AdverseEvent"
    )
    assert _issue(mapped) == ("too-costly", "AdverseEvent.suspectEntity")


def test_a_full_url_too_long_is_422_naming_it_and_not_indexed() -> None:
    long_url = "http://a.example/fhir/" + "x" * MAX_URL + "/Encounter/e1"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"fullUrl": long_url, "resource": _encounter()}, {"resource": _encounter(id="e2")}],
    }
    first, second = read_fhir_bundle(bundle, "UTC", None)
    assert [(i.code, i.expression) for i in first.issues] == [("too-long", "Bundle.entry[0].fullUrl")]
    assert len(second.events) == 2


# --- The patient an Encounter names does not depend on the rest of the Bundle (point 13) ----------------


def _patient(id_: str, mrn: str | None) -> dict[str, Any]:
    identifier = [{"type": {"coding": [{"code": "MR"}]}, "value": mrn}] if mrn else [{"value": "SSN-1"}]
    return {"resourceType": "Patient", "id": id_, "identifier": identifier}


def test_an_encounter_names_the_same_patient_alone_or_with_its_patient() -> None:
    """Sent with its Patient it named the MRN, alone `Patient/123`: a later entered-in-error sent alone
    named another patient and cancelled nothing while answered 202."""
    with_patient = BundleIndex(
        [
            {"fullUrl": "http://a.example/fhir/Patient/123", "resource": _patient("123", "MRN-9")},
            {"fullUrl": "http://a.example/fhir/Encounter/e1", "resource": (finished := _encounter())},
        ]
    )
    admitted, discharged = _map(finished, with_patient).events
    cancel, no_discharge = _map(_encounter(status="entered-in-error")).events
    refs = {e["data"]["patient_ref"] for e in (admitted, discharged, cancel, no_discharge)}
    assert refs == {"Patient/123"}


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ({"reference": "http://a.example/fhir/Patient/123/_history/4"}, "Patient/123"),
        ({"reference": "Patient?identifier=urn:mrn|MRN-9"}, "MRN-9"),
        ({"identifier": {"system": "urn:mrn", "value": "MRN-9"}}, "MRN-9"),  # a logical reference
        ({"reference": "urn:uuid:9", "identifier": {"value": "MRN-9"}}, "MRN-9"),
    ],
)
def test_a_reference_names_the_patient_by_itself(subject: dict[str, Any], expected: str) -> None:
    assert _map(_encounter(subject=subject)).events[0]["data"]["patient_ref"] == expected


def test_a_bundle_local_reference_names_the_patients_mr_identifier_and_never_a_urn() -> None:
    index = BundleIndex([{"fullUrl": "urn:uuid:9", "resource": _patient("p", "MRN-9")}])
    by_urn = _encounter(subject={"reference": "urn:uuid:9"})
    assert _map(by_urn, index).events[0]["data"]["patient_ref"] == "MRN-9"
    assert _issue(_map(by_urn)) == ("not-found", "Encounter.subject")  # alone: it names nobody
    without_mr = BundleIndex([{"fullUrl": "urn:uuid:9", "resource": _patient("p", None)}])
    assert _issue(_map(by_urn, without_mr)) == ("required", "Encounter.subject")


# --- An unknown suspect beside a known drug (point 14) ---------------------------------------------------


def test_a_clear_drug_event_is_taken_whatever_its_other_suspects() -> None:
    adverse_event = _adverse_event([{"reference": "Medication/1"}, {"reference": "urn:uuid:missing"}])
    (event,) = map_resource(adverse_event, BundleIndex(), "UTC", "main", "AdverseEvent").events
    assert event["data"]["harm_category"] == "F"


def test_a_suspect_of_unknown_type_with_no_known_drug_is_still_422() -> None:
    adverse_event = _adverse_event([{"reference": "Device/1"}, {"reference": "urn:uuid:missing"}])
    mapped = map_resource(adverse_event, BundleIndex(), "UTC", "main", "AdverseEvent")
    assert _issue(mapped) == ("not-found", "AdverseEvent.suspectEntity[1].instance")


# --- A cancelled Encounter without a period (point 15) ---------------------------------------------------


def test_a_cancelled_encounter_without_a_period_has_nothing_to_retract() -> None:
    mapped = _map(_encounter(status="cancelled", period=None))
    assert (mapped.events, mapped.issues, mapped.status) == ([], [], "200 OK")
    assert mapped.note == "a cancelled Encounter without period.start: nothing to retract"


def test_entered_in_error_without_a_period_must_name_the_admission() -> None:
    assert _issue(_map(_encounter(status="entered-in-error", period=None))) == (
        "required",
        "Encounter.period.start",
    )


# --- Contained resources refer to their siblings (point 16) ----------------------------------------------


def test_a_contained_resource_refers_to_its_siblings_through_the_container() -> None:
    """A MedicationRequest whose contained Encounter names its contained Organization by `#org`: the
    Encounter holds no `contained` of its own — `#org` is the container's."""
    request = {
        "resourceType": "MedicationRequest",
        "id": "rx-1",
        "authoredOn": "2026-03-02T09:00:00-05:00",
        "encounter": {"reference": "#enc"},
        "contained": [
            _encounter(id="enc", serviceProvider={"reference": "#org"}),
            {"resourceType": "Organization", "id": "org", "identifier": [{"value": "north"}]},
        ],
    }
    (event,) = _map(request).events
    assert (event["facility"], event["data"]["encounter_ref"]) == ("north", "V-1")


def test_a_bare_hash_is_the_container() -> None:
    holder = {
        "resourceType": "AdverseEvent",
        "id": "ae",
        "contained": [{"resourceType": "Device", "id": "d"}],
    }
    index = BundleIndex()
    device = index.resolve("#d", holder)
    assert device is not None and index.resolve("#", device) is holder
