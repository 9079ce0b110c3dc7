"""FHIR R4 Encounter → catalogue events, rule by rule (docs/interop.md), on Synthea's public export
(tests/data/fhir/) and on small resources that isolate one element."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter

from ingest.domain.fhir import (
    CLEAN_CLAIM,
    DISCHARGE_DISPOSITIONS,
    ENTRY_METHOD,
    HARM_CATEGORY,
    MEDICATION_SCANNED,
    PATIENT_SCANNED,
    BundleIndex,
    capability_statement,
    information,
    map_resource,
    operation_outcome,
)
from tests.support.data import DATA

SYNTHEA = DATA / "fhir" / "synthea-10-patients"
ORG = "Organization?identifier=https://github.com/synthetichealth/synthea|org-1"


def _encounter(**changes: Any) -> dict[str, Any]:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e1",
        "identifier": [{"system": "urn:hospital", "value": "V-1"}],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-03-01T08:00:00-05:00", "end": "2026-03-04T11:30:00-05:00"},
        "serviceProvider": {"reference": ORG},
    }
    encounter.update(changes)
    return encounter


def _map(resource: dict[str, Any], index: BundleIndex | None = None, facility: str | None = None) -> Any:
    return map_resource(resource, index or BundleIndex(), "America/New_York", facility, "Encounter")


def test_a_synthea_inpatient_stay_is_an_admission_and_a_discharge() -> None:
    line = next(
        json.loads(x) for x in (SYNTHEA / "Encounter.ndjson").read_text().splitlines() if '"IMP"' in x
    )
    admitted, discharged = _map(line).events
    assert (admitted["type"], discharged["type"]) == ("encounter.admitted", "encounter.discharged")
    assert admitted["id"] == f"Encounter:{line['id']}:admitted:19880316T020616Z"
    assert admitted["facility"] == "8a990ec7-9b5c-389f-9806-59d1113dfaae"  # the conditional reference's value
    assert discharged["data"]["admitted_at"] == line["period"]["start"]
    assert discharged["data"]["patient_ref"] == line["subject"]["reference"]  # no Patient at hand


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("IMP", "inpatient"),
        ("ACUTE", "inpatient"),
        ("NONAC", "inpatient"),
        ("OBSENC", "observation"),
        ("EMER", "emergency"),
        ("AMB", None),
        ("HH", None),
        ("VR", None),
        ("FLD", None),
    ],
)
def test_each_encounter_class(code: str, expected: str | None) -> None:
    mapped = _map(_encounter(**{"class": {"code": code}}))
    assert [e["data"]["encounter_class"] for e in mapped.events[:1]] == ([expected] if expected else [])
    assert mapped.issues == [] and (expected is not None or mapped.status == "200 OK")


@pytest.mark.parametrize(("code", "expected"), sorted(DISCHARGE_DISPOSITIONS.items()))
def test_each_discharge_disposition(code: str, expected: str) -> None:
    resource = _encounter(hospitalization={"dischargeDisposition": {"coding": [{"code": code}]}})
    assert _map(resource).events[1]["data"]["disposition"] == expected


def test_in_progress_is_admitted_only_and_finished_adds_the_discharge_with_the_same_admission_id() -> None:
    open_stay = _map(_encounter(status="in-progress", period={"start": "2026-03-01T08:00:00-05:00"})).events
    closed = _map(_encounter()).events
    assert [e["type"] for e in open_stay] == ["encounter.admitted"]
    assert open_stay[0] == closed[0]  # sent again when finished: the admission counts once


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_a_cancelled_encounter_cancels_its_admission(status: str) -> None:
    (cancel,) = _map(_encounter(status=status)).events
    assert cancel["type"] == "encounter.admission_cancelled"
    assert cancel["data"]["admitted_at"] == "2026-03-01T08:00:00-05:00"


def test_a_date_alone_is_the_start_of_the_tenants_day() -> None:
    (admitted,) = _map(_encounter(status="in-progress", period={"start": "2026-03-01"})).events
    assert admitted["time"] == "2026-03-01T00:00:00-05:00"


def test_elective_priority_is_planned() -> None:
    planned = _map(_encounter(priority={"coding": [{"code": "EL"}]})).events[0]
    assert planned["data"]["planned"] is True


def test_references_resolve_inside_the_bundle() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "system": "urn:mrn", "value": "MRN-7"}],
    }
    organization = {
        "resourceType": "Organization",
        "id": "o1",
        "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": "org-1"}],
    }
    index = BundleIndex(
        [
            {"fullUrl": "urn:uuid:aaa", "resource": patient},
            {"fullUrl": "urn:uuid:bbb", "resource": organization},
        ]
    )
    by_uuid = _encounter(subject={"reference": "urn:uuid:aaa"}, serviceProvider={"reference": "urn:uuid:bbb"})
    for resource in (by_uuid, _encounter()):  # urn:uuid, Type/id and the conditional reference
        event = _map(resource, index).events[0]
        assert (event["data"]["patient_ref"], event["facility"]) == ("MRN-7", "org-1")
    assert _map(_encounter(), facility="main").events[0]["facility"] == "main"  # ?facility= wins


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"period": {}}, "Encounter.period.start"),
        ({"period": {"start": "2026-03"}}, "Encounter.period.start"),  # a month is not a moment
        ({"subject": None}, "Encounter.subject"),
        ({"class": None}, "Encounter.class"),
        ({"serviceProvider": None}, "Encounter.serviceProvider"),
        ({"status": None}, "Encounter.status"),
    ],
)
def test_a_missing_or_malformed_element_is_422_with_its_fhirpath(
    changes: dict[str, Any], expression: str
) -> None:
    mapped = _map(_encounter(**changes))
    assert mapped.events == [] and mapped.status == "422"
    assert [i.expression for i in mapped.issues] == [expression]


def test_types_outside_the_table_are_understood_and_not_measured() -> None:
    for kind in ("Observation", "Patient", "Condition", "Procedure"):
        assert _map({"resourceType": kind, "id": "x"}).status == "200 OK"


def _of(kind: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": kind, "id": f"{kind.lower()}-1", **fields}


def _ext(url: str, **value: Any) -> list[dict[str, Any]]:
    return [{"url": url, **value}]


MAIN = {"facility": "main"}


def _one(resource: dict[str, Any], index: BundleIndex | None = None, **kw: Any) -> dict[str, Any]:
    mapped = map_resource(
        resource, index or BundleIndex(), "America/New_York", kw.get("facility"), resource["resourceType"]
    )
    assert mapped.issues == [], mapped.issues
    (event,) = mapped.events
    return event


def test_synthea_medication_requests_are_cpoe_orders_of_their_encounter() -> None:
    encounters = {
        json.loads(x)["id"]: json.loads(x) for x in (SYNTHEA / "Encounter.ndjson").read_text().splitlines()
    }
    for line in (SYNTHEA / "MedicationRequest.ndjson").read_text().splitlines():
        request = json.loads(line)
        encounter = encounters[request["encounter"]["reference"].split("/")[1]]
        index = BundleIndex([{"resource": encounter}, {"resource": request}])
        event = _one(request, index)
        assert (
            event["type"] == "medication.ordered" and event["data"]["entry_method"] == "cpoe"
        )  # no recorder
        assert event["data"]["encounter_ref"] == encounter["identifier"][0]["value"]
        assert event["facility"] == encounter["serviceProvider"]["reference"].rsplit("|", 1)[1]


@pytest.mark.parametrize(
    ("fields", "method"),
    [
        ({"extension": _ext(ENTRY_METHOD, valueCode="phone")}, "phone"),
        ({"instantiatesCanonical": ["https://example.org/PlanDefinition/sepsis"]}, "protocol"),
        ({"requester": {"reference": "Practitioner/a"}, "recorder": {"reference": "Practitioner/a"}}, "cpoe"),
        (
            {"requester": {"reference": "Practitioner/a"}, "recorder": {"reference": "Practitioner/b"}},
            "verbal",
        ),
    ],
)
def test_each_entry_method(fields: dict[str, Any], method: str) -> None:
    request = _of(
        "MedicationRequest",
        authoredOn="2026-03-02T09:00:00-05:00",
        encounter={"reference": "Encounter/e1"},
        **fields,
    )
    event = _one(request, **MAIN)
    assert (event["data"]["entry_method"], event["data"]["encounter_ref"]) == (method, "e1")


def test_administrations_need_both_scan_flags_named_by_their_extension() -> None:
    flags = [*_ext(PATIENT_SCANNED, valueBoolean=True), *_ext(MEDICATION_SCANNED, valueBoolean=False)]
    given = _of(
        "MedicationAdministration",
        effectiveDateTime="2026-03-02T09:00:00-05:00",
        context={"reference": "Encounter/e1"},
    )
    event = _one({**given, "extension": flags}, **MAIN)
    assert (event["data"]["patient_scanned"], event["data"]["medication_scanned"]) == (True, False)
    missing = map_resource(
        {**given, "extension": flags[:1]}, BundleIndex(), "UTC", "main", "MedicationAdministration"
    )
    assert missing.status == "422"
    assert [i.expression for i in missing.issues] == [
        f"MedicationAdministration.extension('{MEDICATION_SCANNED}')"
    ]


def test_adverse_drug_events_need_an_actual_event_a_drug_and_a_harm_category() -> None:
    drug = {"suspectEntity": [{"instance": {"reference": "MedicationAdministration/m1"}}]}
    base = _of(
        "AdverseEvent",
        actuality="actual",
        date="2026-03-02T09:00:00-05:00",
        encounter={"reference": "Encounter/e1"},
        **drug,
    )
    event = _one({**base, "extension": _ext(HARM_CATEGORY, valueCode="F")}, **MAIN)
    assert event["data"] == {"encounter_ref": "e1", "harm_category": "F"}
    assert _map({**base, "actuality": "potential"}).status == "200 OK"
    assert _map({**base, "suspectEntity": [{"instance": {"reference": "Device/d1"}}]}).status == "200 OK"
    wrong = map_resource(
        {**base, "extension": _ext(HARM_CATEGORY, valueCode="J")},
        BundleIndex(),
        "UTC",
        "main",
        "AdverseEvent",
    )
    assert (wrong.status, wrong.issues[0].code) == ("422", "code-invalid")


def test_claim_money_is_read_exactly_from_the_json_number() -> None:
    text = json.dumps(
        {
            "resourceType": "Claim",
            "id": "c1",
            "created": "2026-03-02T09:00:00-05:00",
            "total": {"value": "AMOUNT", "currency": "USD"},
            "extension": [{"url": CLEAN_CLAIM, "valueBoolean": True}],
            "provider": {"reference": "Organization?identifier=urn:npi|main"},
        }
    ).replace('"AMOUNT"', "1250.10")  # a JSON number, as a billing system's FHIR server writes it
    event = _one(json.loads(text, parse_float=Decimal))
    assert event["data"] == {"claim_ref": "c1", "amount": "1250.10", "clean": True}  # not 1250.0999…
    assert event["facility"] == "main"  # the provider's identifier
    unmarked = map_resource(
        json.loads(text.replace(CLEAN_CLAIM, "x"), parse_float=Decimal), BundleIndex(), "UTC", None, "Claim"
    )
    assert unmarked.status == "422" and CLEAN_CLAIM in unmarked.issues[0].expression


@pytest.mark.parametrize(
    ("payment", "outcome", "paid", "denied"),
    [
        ("1000.00", "paid", "1000.00", "0.00"),
        ("600.00", "partial", "600.00", "400.00"),
        ("0", "denied", "0", "1000.00"),
    ],
)
def test_claim_responses_are_paid_partial_or_denied(
    payment: str, outcome: str, paid: str, denied: str
) -> None:
    claim = _of("Claim", total={"value": Decimal("1000.00")}, identifier=[{"value": "CLM-9"}])
    response = _of(
        "ClaimResponse",
        outcome="complete",
        created="2026-03-20T09:00:00-05:00",
        request={"reference": "Claim/claim-1"},
        payment={"amount": {"value": Decimal(payment)}},
    )
    event = _one(response, BundleIndex([{"resource": claim}]), **MAIN)
    assert event["data"] == {
        "claim_ref": "CLM-9",
        "outcome": outcome,
        "initial": True,
        "paid_amount": paid,
        "denied_amount": denied,
    }
    resubmitted = {**claim, "related": [{"relationship": {"coding": [{"code": "prior"}]}}]}
    assert _one(response, BundleIndex([{"resource": resubmitted}]), **MAIN)["data"]["initial"] is False
    assert _map({**response, "outcome": "queued"}).status == "200 OK"


def test_what_we_answer_and_what_we_read_are_valid_fhir_by_a_maintained_model_library() -> None:
    """fhir.resources (pydantic models of FHIR R4B, whose Encounter, Bundle, OperationOutcome and
    CapabilityStatement are R4's) validates the CapabilityStatement, the OperationOutcomes and a
    batch-response as we write them, and the Synthea lines we map — the full validation that costs
    too much per resource on the intake path (docs/interop.md)."""
    CapabilityStatement.model_validate(capability_statement(datetime.now(UTC)))
    refused = map_resource(_encounter(period={}), BundleIndex(), "UTC", None, "Bundle.entry[0].resource")
    response = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"response": {"status": "422", "outcome": operation_outcome(refused.issues)}},
            {"response": {"status": "200 OK", "outcome": information("understood")}},
            {
                "response": {
                    "status": "202 Accepted",
                    "location": "/v1/events/fhir/Encounter:e1:admitted:20260301T130000Z",
                }
            },
        ],
    }
    Bundle.model_validate(response)
    for line in (SYNTHEA / "Encounter.ndjson").read_text().splitlines()[:20]:
        Encounter.model_validate_json(line)
