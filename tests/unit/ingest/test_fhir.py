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
    INITIAL_ADJUDICATION,
    MEDICATION_SCANNED,
    PATIENT_SCANNED,
    capability_statement,
    information,
    map_resource,
    operation_outcome,
)
from ingest.domain.fhir_references import BundleIndex
from tests.support.data import DATA
from vr_shared.events import validate_events

SYNTHEA = DATA / "fhir" / "synthea-10-patients"
SYNTHEA_PATIENT = DATA / "fhir" / "synthea-patient-bundle"
OFFICIAL = DATA / "fhir" / "r4-examples"
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
    assert discharged["data"]["patient_ref"] == line["subject"]["reference"]  # `Patient/<id>`


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
def test_a_finished_encounter_cancelled_afterwards_retracts_the_whole_stay(status: str) -> None:
    admitted, discharged = _map(_encounter()).events
    cancel, no_discharge = _map(_encounter(status=status)).events
    assert (cancel["type"], cancel["data"]["admitted_at"]) == (
        "encounter.admission_cancelled",
        admitted["time"],
    )
    assert (no_discharge["type"], no_discharge["data"]["discharged_at"]) == (
        "encounter.discharge_cancelled",
        discharged["time"],  # names the very discharge the finished Encounter stated
    )
    assert no_discharge["id"] == "Encounter:e1:discharge_cancelled:20260304T163000Z"
    assert no_discharge["data"]["encounter_ref"] == discharged["data"]["encounter_ref"] == "V-1"
    assert all(not isinstance(r, list) for r in validate_events([cancel, no_discharge]))
    open_stay = _encounter(status=status, period={"start": "2026-03-01T08:00:00-05:00"})
    assert [e["type"] for e in _map(open_stay).events] == ["encounter.admission_cancelled"]


@pytest.mark.parametrize("status", ["planned", "unknown"])
def test_a_planned_or_unknown_encounter_is_not_an_admission(status: str) -> None:
    mapped = _map(_encounter(status=status))
    assert (mapped.events, mapped.issues, mapped.status) == ([], [], "200 OK")
    assert mapped.note == f"an Encounter {status} is not an admission"


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
    event = _map(by_uuid, index).events[0]
    assert (event["data"]["patient_ref"], event["facility"]) == ("MRN-7", "org-1")
    event = _map(_encounter(), index).events[0]  # Type/id and the conditional reference
    assert (event["data"]["patient_ref"], event["facility"]) == ("Patient/p1", "org-1")  # as it names it
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


HOSPITAL = "http://hospital.example/fhir"
_AE = _of(
    "AdverseEvent",
    actuality="actual",
    date="2026-03-02T09:00:00-05:00",
    encounter={"reference": "Encounter/e1"},
    extension=_ext(HARM_CATEGORY, valueCode="F"),
)
_DRUG_ENTRIES = [
    {"fullUrl": "urn:uuid:5b1e6a52-0c8a-4d0e-9d61-1f0d7b4f0a11", "resource": _of("MedicationAdministration")},
    {
        "fullUrl": f"{HOSPITAL}/MedicationRequest/rx-9",
        "resource": {
            **_of("MedicationRequest"),
            "id": "rx-9",
            "identifier": [{"system": "urn:rx", "value": "RX-9"}],
        },
    },
    {
        "fullUrl": "urn:uuid:0f8c2b1e-7d4e-4b8e-a0e4-3c1f9e2d5a77",
        "resource": _of("MedicationStatement"),
        "request": {"method": "POST", "url": "MedicationStatement", "ifNoneExist": "identifier=urn:ms|MS-4"},
    },
    {"fullUrl": f"{HOSPITAL}/Medication/m1", "resource": {**_of("Medication"), "id": "m1"}},
]


@pytest.mark.parametrize(
    ("instance", "entries", "ae_full_url"),
    [
        ({"reference": "urn:uuid:5b1e6a52-0c8a-4d0e-9d61-1f0d7b4f0a11"}, _DRUG_ENTRIES, None),
        ({"reference": "MedicationRequest?identifier=urn:rx|RX-9"}, _DRUG_ENTRIES, None),
        ({"reference": "MedicationRequest?identifier=RX-9"}, _DRUG_ENTRIES, None),  # any system
        ({"reference": "MedicationStatement?identifier=urn:ms|MS-4"}, _DRUG_ENTRIES, None),  # ifNoneExist
        ({"reference": f"{HOSPITAL}/MedicationRequest/rx-9"}, _DRUG_ENTRIES, None),  # absolute: the fullUrl
        ({"reference": f"{HOSPITAL}/MedicationRequest/rx-9/_history/2"}, _DRUG_ENTRIES, None),
        ({"reference": "Medication/m1"}, _DRUG_ENTRIES, f"{HOSPITAL}/AdverseEvent/ae-1"),  # against the base
        ({"reference": "https://elsewhere.example/fhir/MedicationAdministration/77"}, [], None),  # not here
        ({"reference": "MedicationRequest?identifier=urn:rx|NOT-SENT"}, [], None),  # names its type
        ({"reference": "#drug"}, [], None),  # contained
        ({"type": "Medication", "identifier": {"value": "NDC-1"}}, [], None),  # a logical reference
    ],
)
def test_a_drug_suspect_is_found_by_every_reference_form_the_bundle_rules_allow(
    instance: dict[str, Any], entries: list[dict[str, Any]], ae_full_url: str | None
) -> None:
    adverse_event = {
        **_AE,
        "contained": [{"resourceType": "Medication", "id": "drug"}],
        "suspectEntity": [{"instance": {"reference": "Device/pump-1"}}, {"instance": instance}],
    }
    own_entry = (
        {"fullUrl": ae_full_url, "resource": adverse_event} if ae_full_url else {"resource": adverse_event}
    )
    event = _one(adverse_event, BundleIndex([*entries, own_entry]), **MAIN)
    assert (event["type"], event["data"]["harm_category"]) == ("adverse_drug_event.recorded", "F")


@pytest.mark.parametrize(
    "reference",
    [
        "urn:uuid:9d7c1a0e-0000-4000-8000-000000000000",  # a Bundle-local name the Bundle does not hold
        "#missing",  # no such contained resource
        "http://www.BenefitsInc.com/fhir/oralhealthclaim/15476332402",  # a URL that names no type
    ],
)
def test_a_suspect_that_resolves_to_nothing_is_422_naming_it_never_a_silent_drop(reference: str) -> None:
    adverse_event = {**_AE, "suspectEntity": [{"instance": {"reference": reference}}]}
    mapped = map_resource(
        adverse_event, BundleIndex(_DRUG_ENTRIES), "UTC", "main", "Bundle.entry[4].resource"
    )
    assert (mapped.events, mapped.status) == ([], "422")
    (issue,) = mapped.issues
    assert (issue.code, issue.expression) == (
        "not-found",
        "Bundle.entry[4].resource.suspectEntity[0].instance",
    )
    assert reference in issue.diagnostics


def _stay_at(id_: str, ref: str) -> dict[str, Any]:
    return _encounter(id=id_, identifier=[{"value": ref}])


def _order(encounter: str) -> dict[str, Any]:
    return _of(
        "MedicationRequest", authoredOn="2026-03-02T09:00:00-05:00", encounter={"reference": encounter}
    )


def test_a_relative_reference_resolves_against_the_base_of_its_entrys_full_url() -> None:
    at_a, at_b = _order("Encounter/e1"), _order("Encounter/e1")
    index = BundleIndex(
        [
            {"fullUrl": "http://a.example/fhir/Encounter/e1", "resource": _stay_at("e1", "V-A")},
            {"fullUrl": "http://a.example/fhir/MedicationRequest/m1", "resource": at_a},
            {"fullUrl": "http://b.example/fhir/MedicationRequest/m1", "resource": at_b},
            {"fullUrl": "http://b.example/fhir/Encounter/e1", "resource": _stay_at("e1", "V-B")},
        ]
    )
    # `Encounter/e1` in each: the Encounter of the order's own server, whatever the entries' order.
    assert _one(at_a, index, **MAIN)["data"]["encounter_ref"] == "V-A"
    assert _one(at_b, index, **MAIN)["data"]["encounter_ref"] == "V-B"


def test_a_relative_reference_never_resolves_to_another_servers_resource() -> None:
    """An order at a.example naming `Encounter/e9`, which the Bundle holds only at b.example: it names
    e9 by itself (its id), never b's Encounter — another server's e9 is another stay."""
    order = _order("Encounter/e9")
    index = BundleIndex(
        [
            {"fullUrl": "http://a.example/fhir/MedicationRequest/m1", "resource": order},
            {"fullUrl": "http://b.example/fhir/Encounter/e9", "resource": _stay_at("e9", "V-B")},
        ]
    )
    assert _one(order, index, **MAIN)["data"]["encounter_ref"] == "e9"


def test_a_relative_reference_from_an_entry_without_a_server_names_one_entry_or_none() -> None:
    order = _order("Encounter/e1")
    one = BundleIndex(
        [
            {"fullUrl": "urn:uuid:0a", "resource": order},
            {"fullUrl": "http://a.example/fhir/Encounter/e1", "resource": _stay_at("e1", "V-A")},
        ]
    )
    assert _one(order, one, **MAIN)["data"]["encounter_ref"] == "V-A"
    two = BundleIndex(
        [
            {"fullUrl": "urn:uuid:0a", "resource": order},
            {"fullUrl": "http://a.example/fhir/Encounter/e1", "resource": _stay_at("e1", "V-A")},
            {"fullUrl": "http://b.example/fhir/Encounter/e1", "resource": _stay_at("e1", "V-B")},
        ]
    )
    assert _one(order, two, **MAIN)["data"]["encounter_ref"] == "e1"  # ambiguous: named by itself


def test_a_conditional_reference_outside_the_bundle_names_its_identifier_value() -> None:
    request = _of(
        "MedicationRequest",
        authoredOn="2026-03-02T09:00:00-05:00",
        encounter={"reference": "Encounter?identifier=https://github.com/synthetichealth/synthea|V-1"},
    )
    assert _one(request, **MAIN)["data"]["encounter_ref"] == "V-1"  # as the Encounter's own ref reads
    unresolved = {**request, "encounter": {"reference": "urn:uuid:4e0b0d55-1111-4a4a-9999-000000000001"}}
    mapped = map_resource(unresolved, BundleIndex(), "UTC", "main", "MedicationRequest")
    assert [(i.code, i.expression) for i in mapped.issues] == [("not-found", "MedicationRequest.encounter")]


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
    malformed = map_resource(
        json.loads(text.replace("true", '"yes"'), parse_float=Decimal), BundleIndex(), "UTC", None, "Claim"
    )
    assert malformed.status == "422" and CLEAN_CLAIM in malformed.issues[0].expression


def test_a_claim_without_the_cleanliness_extension_is_a_submission_of_unknown_cleanliness() -> None:
    """Synthea's Claims, as every real claims system's, carry no `clean-claim` extension: each is a
    claim.submitted with `clean` null (docs/kpis.md: in clean_claim_rate's sample, not its denominator)."""
    bundle = json.loads((SYNTHEA_PATIENT / "Cris921_Rath779.json").read_text(), parse_float=Decimal)
    index = BundleIndex(bundle["entry"])
    organizations = {
        e["fullUrl"]: e["resource"]["identifier"][0]["value"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Organization"
    }
    claims = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Claim"]
    events = [_one(claim, index) for claim in claims]
    assert len(events) == 11
    for claim, event in zip(claims, events, strict=True):
        assert event["type"] == "claim.submitted"
        assert event["data"] == {"claim_ref": claim["id"], "amount": "129.16", "clean": None}
        assert event["facility"] == organizations[claim["provider"]["reference"]]  # urn:uuid → the entry
    assert all(not isinstance(r, list) and r.data.clean is None for r in validate_events(events))


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


def _response(**fields: Any) -> dict[str, Any]:
    return _of(
        "ClaimResponse",
        outcome="complete",
        created="2026-03-20T09:00:00-05:00",
        payment={"amount": {"value": Decimal("0")}},
        total=[{"category": {"coding": [{"code": "submitted"}]}, "amount": {"value": Decimal("1000.00")}}],
        **fields,
    )


def test_a_claim_response_without_its_claim_is_422_naming_what_is_missing_never_a_guess() -> None:
    response = _response(request={"reference": "Claim/claim-1"})
    mapped = map_resource(response, BundleIndex(), "UTC", "main", "Bundle.entry[0].resource")
    assert (mapped.events, mapped.status) == ([], "422")
    (issue,) = mapped.issues
    assert (issue.code, issue.expression) == ("not-found", "Bundle.entry[0].resource.request")
    assert "'Claim/claim-1'" in issue.diagnostics and INITIAL_ADJUDICATION in issue.diagnostics


@pytest.mark.parametrize("initial", [True, False])
def test_the_initial_adjudication_extension_says_what_the_absent_claim_would(initial: bool) -> None:
    stated = _ext(INITIAL_ADJUDICATION, valueBoolean=initial)
    by_id = _response(request={"reference": "Claim/claim-1"}, extension=stated)
    assert (_one(by_id, **MAIN)["data"]["initial"], _one(by_id, **MAIN)["data"]["claim_ref"]) == (
        initial,
        "claim-1",
    )
    by_identifier = _response(request={"reference": "Claim?identifier=urn:claims|CLM-9"}, extension=stated)
    assert _one(by_identifier, **MAIN)["data"]["claim_ref"] == "CLM-9"


@pytest.mark.parametrize(
    "reference", ["urn:uuid:1c9f3a2b-2222-4c4c-8888-000000000009", "Claim?identifier=urn:claims|CLM-9"]
)
def test_a_claim_response_finds_its_claim_by_urn_or_identifier(reference: str) -> None:
    claim = {
        **_of("Claim", identifier=[{"system": "urn:claims", "value": "CLM-9"}]),
        "related": [{"relationship": {"coding": [{"code": "prior"}]}}],  # a resubmission
    }
    index = BundleIndex([{"fullUrl": "urn:uuid:1c9f3a2b-2222-4c4c-8888-000000000009", "resource": claim}])
    event = _one(_response(request={"reference": reference}), index, **MAIN)
    assert (event["data"]["claim_ref"], event["data"]["initial"], event["data"]["outcome"]) == (
        "CLM-9",
        False,
        "denied",
    )


def test_the_official_claim_response_reads_its_money_exactly_once_its_adjudication_is_stated() -> None:
    official = json.loads((OFFICIAL / "claimresponse-example.json").read_text(), parse_float=Decimal)
    refused = map_resource(official, BundleIndex(), "UTC", "main", "ClaimResponse")
    assert [i.expression for i in refused.issues] == ["ClaimResponse.request"]  # its Claim is elsewhere
    stated = {**official, "extension": _ext(INITIAL_ADJUDICATION, valueBoolean=True)}
    assert _one(stated, **MAIN)["data"] == {
        "claim_ref": "http://www.BenefitsInc.com/fhir/oralhealthclaim/15476332402",  # an opaque URL
        "outcome": "partial",
        "initial": True,
        "paid_amount": "100.47",
        "denied_amount": "35.10",
    }


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
