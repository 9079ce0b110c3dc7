"""Catalogue events written the way hospitals' systems send them (docs/interop.md), so the demo can
stream its year through `/v1/hl7v2` or `/v1/fhir` instead of JSON: ADT as HL7 v2 messages; encounters,
orders, administrations, adverse drug events, claims and their adjudications as FHIR R4 resources (the
project's extensions where R4 has no element). Whatever a format cannot say (outages, payments, A/R,
costs, sepsis reviews, feed closes) stays catalogue JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

EXTENSION = "https://value-realization.dev/fhir/StructureDefinition/"
NUBC = {
    "home": "01",
    "home_health": "06",
    "transfer_acute": "02",
    "snf": "03",
    "rehab": "62",
    "hospice": "50",
    "ama": "07",
    "expired": "20",
    "other": "05",
}
FHIR_CLASS = {"inpatient": "IMP", "observation": "OBSENC", "emergency": "EMER"}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _hl7_time(text: str) -> str:
    return f"{_moment(text):%Y%m%d%H%M%S}+0000"


def as_hl7(events: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(ADT messages, the events HL7 v2 ADT does not carry)."""
    messages, rest = [], []
    for event in events:
        if event["type"] == "encounter.admitted":
            messages.append(_adt("A01", event, admitted=event["time"]))
        elif event["type"] == "encounter.discharged":
            messages.append(
                _adt("A03", event, admitted=event["data"]["admitted_at"], discharged=event["time"])
            )
        else:
            rest.append(event)
    return messages, rest


def _adt(trigger: str, event: dict[str, Any], *, admitted: str, discharged: str | None = None) -> str:
    data = event["data"]
    pv1 = [""] * 46
    pv1[0], pv1[1] = "PV1", "1"
    pv1[2] = "E" if data["encounter_class"] == "emergency" else "I"
    pv1[4] = "C" if data.get("planned") else "E"
    pv1[18] = "OBS" if data["encounter_class"] == "observation" else ""
    pv1[19] = data["encounter_ref"]
    pv1[44] = _hl7_time(admitted)
    if discharged is not None:
        pv1[36], pv1[45] = NUBC[data["disposition"]], _hl7_time(discharged)
    return "\r".join(
        [
            f"MSH|^~\\&|DEMO|{event['facility']}|VR|VR|{_hl7_time(event['time'])}||ADT^{trigger}|{event['id']}|P|2.5",
            f"EVN|{trigger}|{_hl7_time(event['time'])}",
            f"PID|1||{data['patient_ref']}^^^DEMO^MR",
            "|".join(pv1).rstrip("|"),
        ]
    )


def as_fhir(events: list[dict[str, Any]]) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """(Bulk NDJSON lines by facility, the events FHIR R4 resources do not carry here)."""
    by_facility: dict[str, list[str]] = defaultdict(list)
    rest = []
    planned: set[str] = set()  # stays admitted as planned: their finished Encounter says so again
    for event in events:
        if event["type"] == "encounter.admitted" and event["data"].get("planned"):
            planned.add(event["data"]["encounter_ref"])
        resource = _resource(event, planned)
        if resource is None:
            rest.append(event)
        else:
            by_facility[event["facility"]].append(json.dumps(resource, separators=(",", ":")))
    return dict(by_facility), rest


def _money(text: str) -> dict[str, Any]:
    """Money as a FHIR JSON number. Writing through a float is exact here: json writes the shortest
    decimal that reads back as the same float, which for these amounts (at most 12 digits, cents) is
    the amount itself; ingest then reads it as a decimal from the text."""
    return {"value": float(text), "currency": "USD"}


def _org(facility: str) -> dict[str, str]:
    return {"reference": f"Organization?identifier=urn:demo:facility|{facility}"}


def _resource(event: dict[str, Any], planned: set[str]) -> dict[str, Any] | None:
    data, kind = event["data"], event["type"]
    if kind in ("encounter.admitted", "encounter.discharged"):
        return _encounter(event, event["data"]["encounter_ref"] in planned)
    encounter = {"reference": f"Encounter/{data.get('encounter_ref', '')}"}
    if kind == "medication.ordered":
        return {
            "resourceType": "MedicationRequest",
            "id": event["id"],
            "identifier": [{"value": data["order_ref"]}],
            "extension": [{"url": EXTENSION + "entry-method", "valueCode": data["entry_method"]}],
            "status": "active",
            "intent": "order",
            "encounter": encounter,
            "authoredOn": event["time"],
        }
    if kind == "medication.administered":
        return {
            "resourceType": "MedicationAdministration",
            "id": event["id"],
            "identifier": [{"value": data["administration_ref"]}],
            "extension": [
                {"url": EXTENSION + "bcma-patient-scanned", "valueBoolean": data["patient_scanned"]},
                {"url": EXTENSION + "bcma-medication-scanned", "valueBoolean": data["medication_scanned"]},
            ],
            "status": "completed",
            "context": encounter,
            "effectiveDateTime": event["time"],
        }
    if kind == "adverse_drug_event.recorded":
        return {
            "resourceType": "AdverseEvent",
            "id": event["id"],
            "extension": [{"url": EXTENSION + "ncc-merp-category", "valueCode": data["harm_category"]}],
            "actuality": "actual",
            "encounter": encounter,
            "date": event["time"],
            "suspectEntity": [{"instance": {"reference": f"Medication/{event['id']}"}}],
        }
    if kind == "claim.submitted":
        return {
            "resourceType": "Claim",
            "id": event["id"],
            "identifier": [{"value": data["claim_ref"]}],
            "extension": [{"url": EXTENSION + "clean-claim", "valueBoolean": data["clean"]}],
            "status": "active",
            "created": event["time"],
            "provider": _org(event["facility"]),
            "total": _money(data["amount"]),
        }
    if kind == "claim.adjudicated":
        submitted = Decimal(data["paid_amount"]) + Decimal(data["denied_amount"])
        return {
            "resourceType": "ClaimResponse",
            "id": event["id"],
            # Each line stands alone (NDJSON), without its Claim: the extension says what the Claim would.
            "extension": [{"url": EXTENSION + "initial-adjudication", "valueBoolean": data["initial"]}],
            "status": "active",
            "outcome": "partial" if data["outcome"] == "partial" else "complete",
            "created": event["time"],
            "requestor": _org(event["facility"]),
            "request": {"reference": f"Claim/{data['claim_ref']}"},
            "payment": {"amount": _money(data["paid_amount"])},
            "total": [
                {"category": {"coding": [{"code": "submitted"}]}, "amount": _money(format(submitted, "f"))}
            ],
        }
    return None


def _encounter(event: dict[str, Any], planned: bool) -> dict[str, Any]:
    data = event["data"]
    finished = event["type"] == "encounter.discharged"
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": data["encounter_ref"],
        "identifier": [{"value": data["encounter_ref"]}],
        "status": "finished" if finished else "in-progress",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": FHIR_CLASS[data["encounter_class"]],
        },
        "subject": {"reference": f"Patient/{data['patient_ref']}"},
        "period": {"start": data["admitted_at"]} if finished else {"start": event["time"]},
        "serviceProvider": _org(event["facility"]),
    }
    if planned:
        resource["priority"] = {"coding": [{"code": "EL"}]}
    if finished:
        resource["period"]["end"] = event["time"]
        resource["hospitalization"] = {
            "dischargeDisposition": {"coding": [{"code": NUBC[data["disposition"]]}]}
        }
    return resource
