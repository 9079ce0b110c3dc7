"""FHIR R4 Encounter → catalogue events, rule by rule (docs/interop.md), on Synthea's public export
(tests/data/fhir/) and on small resources that isolate one element."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.domain.fhir import DISCHARGE_DISPOSITIONS, BundleIndex, map_resource
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
        ({"period": {"start": "2026-03-01"}}, "Encounter.period.start"),  # a date, not a moment
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


def test_measured_types_not_mapped_yet_are_501_never_silently_dropped() -> None:
    for kind in ("MedicationRequest", "MedicationAdministration", "AdverseEvent", "Claim", "ClaimResponse"):
        mapped = _map({"resourceType": kind, "id": "x"})
        assert (mapped.status, mapped.issues[0].code) == ("501", "not-supported")
    assert _map({"resourceType": "Observation", "id": "x"}).status == "200 OK"
