"""FHIR R4 resources → catalogue events (docs/interop.md, "FHIR R4").

Pure: a resource (parsed with decimals for JSON numbers: money is never read through a float) becomes
the catalogue events it states, or issues naming the element at fault by its FHIRPath, or nothing to
measure. References resolve inside the Bundle: `urn:uuid:` full URLs, `Type/id`, and conditional
references such as Synthea's `Organization?identifier=system|value`.

Only the elements mapped are checked, and strictly (types, codes, required ones): a full R4 model
validation costs 300–800 µs per resource with the maintained model library (`fhir.resources`), against
tens of microseconds for a catalogue event, and would reject real exports for elements that no KPI
reads. The catalogue's own validation then checks every event, as for JSON.

Event ids derive from the resource type, its id, the fact and the fact's time
(`Encounter:123:admitted:20260301T080000Z`; `:` where the SPEC's example has `/`, so that an id is one
path segment of `GET /v1/events/{source}/{id}`): re-sending a Bundle, or an Encounter first
`in-progress` then `finished`, counts each fact once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

SOURCE = "fhir"
MEASURED = (
    "Encounter",
    "MedicationRequest",
    "MedicationAdministration",
    "AdverseEvent",
    "Claim",
    "ClaimResponse",
)
NOT_YET_MAPPED = frozenset(MEASURED) - {"Encounter"}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ENCOUNTER_CLASSES = {
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "OBSENC": "observation",
    "EMER": "emergency",
}
# hospitalization.dischargeDisposition: terminology.hl7.org discharge-disposition, or NUBC / table 0112.
DISCHARGE_DISPOSITIONS = {
    "home": "home",
    "alt-home": "home",
    "hosp": "hospice",
    "snf": "snf",
    "rehab": "rehab",
    "aadvice": "ama",
    "exp": "expired",
    "01": "home",
    "06": "home_health",
    "02": "transfer_acute",
    "03": "snf",
    "61": "snf",
    "64": "snf",
    "62": "rehab",
    "50": "hospice",
    "51": "hospice",
    "07": "ama",
    "20": "expired",
    "40": "expired",
    "41": "expired",
    "42": "expired",
}
CANCELLED_STATUSES = frozenset({"entered-in-error", "cancelled"})


@dataclass(frozen=True, slots=True)
class Issue:
    """An OperationOutcome issue: severity, code (IssueType), what, and the FHIRPath at fault."""

    code: str
    diagnostics: str
    expression: str
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
            "expression": [self.expression],
        }


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one resource states: events (202 once stored), or issues (422 / 501), or nothing (200)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    status: str = "200 OK"  # when there are no events
    note: str | None = None
    # Catalogue paths → FHIRPath, to name the element of an event the catalogue refuses.
    locations: dict[str, str] = field(default_factory=dict)


class Invalid(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.diagnostics)
        self.issue = issue


class BundleIndex:
    """The resources of a Bundle, by every way an entry may be referenced."""

    def __init__(self, entries: Iterable[Mapping[str, Any]] = ()) -> None:
        self._by_reference: dict[str, Mapping[str, Any]] = {}
        for entry in entries:
            resource = entry.get("resource")
            if not isinstance(resource, Mapping):
                continue
            if isinstance(full_url := entry.get("fullUrl"), str):
                self._by_reference[full_url] = resource
            if isinstance(kind := resource.get("resourceType"), str) and isinstance(
                id_ := resource.get("id"), str
            ):
                self._by_reference[f"{kind}/{id_}"] = resource
                for identifier in _list(resource.get("identifier")):
                    if isinstance(identifier, Mapping):
                        system, value = identifier.get("system", ""), identifier.get("value")
                        self._by_reference[f"{kind}?identifier={system}|{value}"] = resource

    def resolve(self, reference: str) -> Mapping[str, Any] | None:
        return self._by_reference.get(reference)


def map_resource(
    resource: Mapping[str, Any], index: BundleIndex, zone: str, facility: str | None, path: str
) -> Mapped:
    """`path` is the resource's own FHIRPath (`Bundle.entry[3].resource` or the resource type)."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not kind:
        return Mapped(
            issues=[Issue("required", "resourceType is missing", f"{path}.resourceType")], status="422"
        )
    if kind in NOT_YET_MAPPED:
        # Measured by the catalogue, not mapped yet: 501, so nothing measurable is silently dropped.
        issue = Issue("not-supported", f"{kind} is not mapped yet; send it as catalogue JSON", path)
        return Mapped(issues=[issue], status="501")
    if kind != "Encounter":
        return Mapped(note=f"{kind} is understood and not measured")
    try:
        return _encounter(resource, index, ZoneInfo(zone), facility, path)
    except Invalid as invalid:
        return Mapped(issues=[invalid.issue], status="422")


def _encounter(
    encounter: Mapping[str, Any], index: BundleIndex, zone: ZoneInfo, facility: str | None, path: str
) -> Mapped:
    encounter_class = _class(encounter, path)
    if encounter_class is None:
        code = _get(encounter, "class", "code")
        return Mapped(note=f"Encounter class {code!r} is not measured")
    id_ = _string(encounter.get("id"), f"{path}.id")
    status = _string(encounter.get("status"), f"{path}.status")
    start = _instant(_get(encounter, "period", "start"), f"{path}.period.start", zone, required=True)
    assert start is not None
    common = {
        "encounter_ref": _encounter_ref(encounter),
        "patient_ref": _patient_ref(encounter, index, path),
    }
    where = facility or _facility(encounter, index, path)
    locations = {
        "$.facility": f"{path}.serviceProvider",
        "$.time": f"{path}.period.start",
        "$.data.admitted_at": f"{path}.period.start",
        "$": f"{path}.period",
    }
    if status in CANCELLED_STATUSES:
        cancel = _event(id_, "admission_cancelled", start, where, "encounter.admission_cancelled")
        cancel["data"] = {**common, "admitted_at": start.isoformat()}
        return Mapped([cancel], locations=locations)
    admitted = _event(id_, "admitted", start, where, "encounter.admitted")
    admitted["data"] = {**common, "encounter_class": encounter_class, "planned": _planned(encounter)}
    events = [admitted]
    end = _instant(_get(encounter, "period", "end"), f"{path}.period.end", zone, required=False)
    if status == "finished" and end is not None:
        discharged = _event(id_, "discharged", end, where, "encounter.discharged")
        discharged["data"] = {
            **common,
            "encounter_class": encounter_class,
            "admitted_at": start.isoformat(),
            "disposition": _disposition(encounter),
        }
        events.append(discharged)
        locations["$.time"] = f"{path}.period.end"
    return Mapped(events, locations=locations)


def _event(id_: str, fact: str, moment: datetime, facility: str, event_type: str) -> dict[str, Any]:
    return {
        "id": f"Encounter:{id_}:{fact}:{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        "source": SOURCE,
        "type": event_type,
        "time": moment.isoformat(),
        "facility": facility,
    }


def _class(encounter: Mapping[str, Any], path: str) -> str | None:
    coding = encounter.get("class")
    if not isinstance(coding, Mapping) or not isinstance(coding.get("code"), str):
        raise Invalid(Issue("required", "class (a v3 ActCode Coding) is required", f"{path}.class"))
    return ENCOUNTER_CLASSES.get(coding["code"])


def _encounter_ref(encounter: Mapping[str, Any]) -> str:
    for identifier in _list(encounter.get("identifier")):
        if (
            isinstance(identifier, Mapping)
            and isinstance(identifier.get("value"), str)
            and identifier["value"]
        ):
            return str(identifier["value"])
    return str(encounter["id"])


def _patient_ref(encounter: Mapping[str, Any], index: BundleIndex, path: str) -> str:
    """The subject Patient's MR identifier when the Bundle holds the Patient, else the reference."""
    reference = _get(encounter, "subject", "reference")
    if not isinstance(reference, str) or not reference:
        raise Invalid(Issue("required", "subject.reference (the Patient) is required", f"{path}.subject"))
    patient = index.resolve(reference)
    if patient is not None:
        for identifier in _list(patient.get("identifier")):
            codes = [
                c.get("code") for c in _list(_get(identifier, "type", "coding")) if isinstance(c, Mapping)
            ]
            if "MR" in codes and isinstance(identifier.get("value"), str):
                return str(identifier["value"])
    return reference


def _facility(encounter: Mapping[str, Any], index: BundleIndex, path: str) -> str:
    """The serviceProvider Organization's identifier value (from the Bundle, or a conditional
    reference's own `identifier=system|value`)."""
    reference = _get(encounter, "serviceProvider", "reference")
    if not isinstance(reference, str) or not reference:
        message = "no facility: serviceProvider (an Organization with an identifier) or ?facility="
        raise Invalid(Issue("required", message, f"{path}.serviceProvider"))
    organization = index.resolve(reference)
    if organization is not None:
        for identifier in _list(organization.get("identifier")):
            if isinstance(identifier, Mapping) and isinstance(identifier.get("value"), str):
                return str(identifier["value"])
    if "?identifier=" in reference:
        return reference.rsplit("|", 1)[-1].split("=", 1)[-1]
    message = f"serviceProvider {reference!r} is not in the Bundle and names no identifier"
    raise Invalid(Issue("not-found", message, f"{path}.serviceProvider"))


def _planned(encounter: Mapping[str, Any]) -> bool:
    codes = [c.get("code") for c in _list(_get(encounter, "priority", "coding")) if isinstance(c, Mapping)]
    return "EL" in codes


def _disposition(encounter: Mapping[str, Any]) -> str:
    codings = _list(_get(encounter, "hospitalization", "dischargeDisposition", "coding"))
    for coding in codings:
        if isinstance(coding, Mapping) and coding.get("code") in DISCHARGE_DISPOSITIONS:
            return DISCHARGE_DISPOSITIONS[str(coding["code"])]
    return "other"


def _instant(value: Any, path: str, zone: ZoneInfo, *, required: bool) -> datetime | None:
    """A FHIR dateTime to at least the minute; one without an offset is the tenant's local time."""
    if value is None:
        if required:
            raise Invalid(Issue("required", f"{path} is required", path))
        return None
    if not isinstance(value, str) or len(value) < 16:
        raise Invalid(Issue("value", "a dateTime with at least hours and minutes is required", path))
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(Issue("value", f"{value!r} is not a FHIR dateTime", path)) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(Issue("required", f"{path.rsplit('.', 1)[-1]} is required", path))
    return value


def _get(value: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.as_json() for issue in issues]}


def information(text: str) -> dict[str, Any]:
    """An informational OperationOutcome: understood, nothing to measure."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": text}],
    }


def capability_statement(now: datetime) -> dict[str, Any]:
    """What `/v1/fhir` takes: R4 Bundles and Bulk NDJSON of the measured resource types."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.date().isoformat(),
        "kind": "instance",
        "software": {"name": "Value Realization ingest"},
        "implementation": {"description": "Clinical and operational facts for outcome-based contracts"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+ndjson"],
        "rest": [
            {
                "mode": "server",
                "documentation": "POST a batch, transaction or collection Bundle (answered as a "
                "batch-response), or Bulk Data NDJSON, to /v1/fhir. Encounter is mapped; the other "
                "measured types answer 501 until they are.",
                "resource": [{"type": kind, "interaction": [{"code": "create"}]} for kind in MEASURED],
                "interaction": [{"code": "batch"}, {"code": "transaction"}],
            }
        ],
    }
