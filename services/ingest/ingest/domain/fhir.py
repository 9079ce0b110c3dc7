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
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ingest.domain.dispositions import DISPOSITIONS_0112

SOURCE = "fhir"
MEASURED = (
    "Encounter",
    "MedicationRequest",
    "MedicationAdministration",
    "AdverseEvent",
    "Claim",
    "ClaimResponse",
)
EXTENSION = "https://value-realization.dev/fhir/StructureDefinition/"
"""The project's canonical base for the extensions that carry catalogue fields R4 has no element for."""
ENTRY_METHOD = (
    EXTENSION + "entry-method"
)  # MedicationRequest: valueCode cpoe | verbal | phone | paper | protocol
PATIENT_SCANNED = EXTENSION + "bcma-patient-scanned"  # MedicationAdministration: valueBoolean
MEDICATION_SCANNED = EXTENSION + "bcma-medication-scanned"  # MedicationAdministration: valueBoolean
HARM_CATEGORY = EXTENSION + "ncc-merp-category"  # AdverseEvent: valueCode A … I
CLEAN_CLAIM = EXTENSION + "clean-claim"  # Claim: valueBoolean, passed edits with no manual touch
ENTRY_METHODS = frozenset({"cpoe", "verbal", "phone", "paper", "protocol"})
DRUG_RESOURCES = frozenset(
    {"Medication", "MedicationAdministration", "MedicationRequest", "MedicationStatement"}
)
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
    **DISPOSITIONS_0112,  # NUBC / HL7 table 0112 codes, as HL7 v2 feeds send them
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
    mapping = _MAPPINGS.get(kind)
    if mapping is None:
        return Mapped(note=f"{kind} is understood and not measured")
    try:
        return mapping(Context(resource, index, ZoneInfo(zone), facility, path))
    except Invalid as invalid:
        return Mapped(issues=[invalid.issue], status="422")


@dataclass(frozen=True, slots=True)
class Context:
    """One resource being mapped, with what resolves its references and the request's facility."""

    resource: Mapping[str, Any]
    index: BundleIndex
    zone: ZoneInfo
    facility: str | None  # ?facility=
    path: str


def _encounter_of(context: Context) -> Mapped:
    return _encounter(context.resource, context.index, context.zone, context.facility, context.path)


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
        "encounter_ref": _own_ref(encounter),
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


def _patient_ref(encounter: Mapping[str, Any], index: BundleIndex, path: str) -> str:
    """The subject Patient's MR identifier when the Bundle holds the Patient, else the reference."""
    reference = _get(encounter, "subject", "reference")
    if not isinstance(reference, str) or not reference:
        raise Invalid(Issue("required", "subject.reference (the Patient) is required", f"{path}.subject"))
    patient = index.resolve(reference)
    if patient is not None:
        for identifier in _list(patient.get("identifier")):
            if "MR" in _codes(identifier, "type") and isinstance(identifier.get("value"), str):
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
    return "EL" in _codes(encounter, "priority")


def _disposition(encounter: Mapping[str, Any]) -> str:
    codings = _list(_get(encounter, "hospitalization", "dischargeDisposition", "coding"))
    for coding in codings:
        if isinstance(coding, Mapping) and coding.get("code") in DISCHARGE_DISPOSITIONS:
            return DISCHARGE_DISPOSITIONS[str(coding["code"])]
    return "other"


def _instant(value: Any, path: str, zone: ZoneInfo, *, required: bool) -> datetime | None:
    """A FHIR dateTime; one without an offset is the tenant's local time, and a date alone (as official
    examples and claims systems write `created` or `authoredOn`) the start of that local day — KPIs
    count by the tenant's local days. A year or a month alone is not a moment: 422."""
    if value is None:
        if required:
            raise Invalid(Issue("required", f"{path} is required", path))
        return None
    if not isinstance(value, str) or len(value) not in (10, *range(16, 36)):
        raise Invalid(Issue("value", "a date (YYYY-MM-DD) or a dateTime with hours and minutes", path))
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


# --- the other measured resources --------------------------------------------------------------------


def _medication_request(c: Context) -> Mapped:
    """medication.ordered: `entry_method` from the project's extension; else instantiates → protocol;
    `recorder` absent or the `requester` → cpoe; another recorder → verbal."""
    time = _required_instant(c, "authoredOn")
    method = _extension_code(c, ENTRY_METHOD, ENTRY_METHODS)
    if method is None:
        r = c.resource
        if r.get("instantiatesCanonical") or r.get("instantiatesUri"):
            method = "protocol"
        else:
            recorder, requester = _get(r, "recorder", "reference"), _get(r, "requester", "reference")
            method = "cpoe" if recorder is None or recorder == requester else "verbal"
    event = _fact(c, "ordered", time, "medication.ordered", "encounter")
    event["data"] = {
        "order_ref": _own_ref(c.resource),
        "encounter_ref": _encounter_ref_of(c, "encounter"),
        "entry_method": method,
    }
    return Mapped([event], locations=_locations(c, "authoredOn", encounter="encounter"))


def _medication_administration(c: Context) -> Mapped:
    """medication.administered: the scan flags from the project's two extensions (required)."""
    time = _instant(c.resource.get("effectiveDateTime"), f"{c.path}.effective", c.zone, required=False)
    time = time or _instant(
        _get(c.resource, "effectivePeriod", "start"), f"{c.path}.effective", c.zone, required=True
    )
    assert time is not None
    event = _fact(c, "administered", time, "medication.administered", "context")
    event["data"] = {
        "administration_ref": _own_ref(c.resource),
        "encounter_ref": _encounter_ref_of(c, "context"),
        "patient_scanned": _extension_boolean(c, PATIENT_SCANNED),
        "medication_scanned": _extension_boolean(c, MEDICATION_SCANNED),
    }
    return Mapped([event], locations=_locations(c, "effective", encounter="context"))


def _adverse_event(c: Context) -> Mapped:
    """adverse_drug_event.recorded: an actual event with a medication among its suspects; the NCC MERP
    category from the project's extension (required)."""
    if c.resource.get("actuality") != "actual":
        return Mapped(note="a potential adverse event is not measured")
    suspects = [_get(s, "instance", "reference") for s in _list(c.resource.get("suspectEntity"))]
    if not any(isinstance(r, str) and r.split("/", 1)[0] in DRUG_RESOURCES for r in suspects):
        return Mapped(note="no medication among suspectEntity: not an adverse drug event")
    category = _extension_code(c, HARM_CATEGORY, frozenset("ABCDEFGHI"))
    if category is None:
        raise Invalid(
            Issue(
                "required",
                f"the NCC MERP category ({HARM_CATEGORY}) is required",
                _ext_path(c, HARM_CATEGORY),
            )
        )
    time = _required_instant(c, "date")
    event = _fact(c, "recorded", time, "adverse_drug_event.recorded", "encounter")
    event["data"] = {"encounter_ref": _encounter_ref_of(c, "encounter"), "harm_category": category}
    return Mapped([event], locations=_locations(c, "date", encounter="encounter"))


def _claim(c: Context) -> Mapped:
    """claim.submitted: `total.value` read exactly; `clean` from the project's extension (required)."""
    amount = _money(c.resource.get("total"), f"{c.path}.total")
    time = _required_instant(c, "created")
    event = _fact(c, "submitted", time, "claim.submitted", None, provider="provider")
    event["data"] = {
        "claim_ref": _own_ref(c.resource),
        "amount": _decimal_text(amount),
        "clean": _extension_boolean(c, CLEAN_CLAIM),
    }
    return Mapped([event], locations={**_locations(c, "created"), "$.data.amount": f"{c.path}.total.value"})


def _claim_response(c: Context) -> Mapped:
    """claim.adjudicated: `request` → the claim; payment (else the `benefit` total) → paid, the
    `submitted` total (else the Claim's) less paid → denied; outcome complete and nothing paid →
    denied, all paid → paid, otherwise partial; initial unless the Claim is a resubmission."""
    r = c.resource
    if r.get("outcome") == "queued":
        return Mapped(note="a queued ClaimResponse is not adjudicated yet")
    request = _get(r, "request", "reference")
    if not isinstance(request, str) or not request:
        raise Invalid(Issue("required", "request (the Claim) is required", f"{c.path}.request"))
    claim = c.index.resolve(request)
    paid = _money_or_none(_get(r, "payment", "amount"), f"{c.path}.payment.amount")
    paid = paid if paid is not None else _total(r, "benefit", c.path)
    submitted = _total(r, "submitted", c.path)
    if submitted is None and claim is not None:
        submitted = _money(claim.get("total"), f"{c.path}.request")
    if paid is None or submitted is None:
        raise Invalid(
            Issue(
                "required",
                "payment.amount (or a benefit total) and a submitted total are required",
                f"{c.path}.total",
            )
        )
    outcome = (
        "denied"
        if paid == 0
        else "paid"
        if paid >= submitted and r.get("outcome") != "partial"
        else "partial"
    )
    time = _required_instant(c, "created")
    resubmission = claim is not None and any(
        "prior" in _codes(related, "relationship") for related in _list(claim.get("related"))
    )
    event = _fact(c, "adjudicated", time, "claim.adjudicated", None, provider="requestor", via=claim)
    event["data"] = {
        "claim_ref": _own_ref(claim) if claim is not None else request.rsplit("/", 1)[-1],
        "outcome": outcome,
        "initial": not resubmission,
        "paid_amount": _decimal_text(paid),
        "denied_amount": _decimal_text(max(submitted - paid, Decimal(0))),
    }
    return Mapped([event], locations={**_locations(c, "created"), "$.data": f"{c.path}.payment"})


def _fact(
    c: Context,
    fact: str,
    time: datetime,
    event_type: str,
    encounter_element: str | None,
    *,
    provider: str | None = None,
    via: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    kind, id_ = str(c.resource["resourceType"]), _string(c.resource.get("id"), f"{c.path}.id")
    return {
        "id": f"{kind}:{id_}:{fact}:{time.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        "source": SOURCE,
        "type": event_type,
        "time": time.isoformat(),
        "facility": _facility_of(c, encounter_element, provider, via),
    }


def _facility_of(
    c: Context, encounter_element: str | None, provider: str | None, via: Mapping[str, Any] | None
) -> str:
    """?facility=, else the Organization a resource names (its encounter's serviceProvider, a claim's
    provider), resolved in the Bundle or by a conditional reference's identifier."""
    if c.facility:
        return c.facility
    if encounter_element is not None:
        encounter = c.index.resolve(str(_get(c.resource, encounter_element, "reference") or ""))
        if encounter is not None:
            return _facility(encounter, c.index, f"{c.path}.{encounter_element}")
        where = f"{c.path}.{encounter_element}"
    else:
        for holder in (c.resource, via):
            if holder is not None and isinstance(_get(holder, provider or "provider", "reference"), str):
                return _facility(
                    {"serviceProvider": holder[provider or "provider"]}, c.index, f"{c.path}.{provider}"
                )
        where = f"{c.path}.{provider}"
    raise Invalid(Issue("required", "no facility: ?facility=, or the Organization in the Bundle", where))


def _locations(c: Context, time_element: str, *, encounter: str | None = None) -> dict[str, str]:
    found = {"$.time": f"{c.path}.{time_element}", "$": c.path, "$.facility": c.path}
    if encounter is not None:
        found["$.data.encounter_ref"] = f"{c.path}.{encounter}"
    return found


def _required_instant(c: Context, element: str) -> datetime:
    moment = _instant(c.resource.get(element), f"{c.path}.{element}", c.zone, required=True)
    assert moment is not None
    return moment


def _own_ref(resource: Mapping[str, Any]) -> str:
    """A resource's first identifier value, else its id (what an encounter, order or claim is known by)."""
    for identifier in _list(resource.get("identifier")):
        if (
            isinstance(identifier, Mapping)
            and isinstance(identifier.get("value"), str)
            and identifier["value"]
        ):
            return str(identifier["value"])
    return str(resource.get("id") or "")


def _encounter_ref_of(c: Context, element: str) -> str:
    reference = _get(c.resource, element, "reference")
    if not isinstance(reference, str) or not reference:
        raise Invalid(Issue("required", f"{element} (the Encounter) is required", f"{c.path}.{element}"))
    encounter = c.index.resolve(reference)
    return _own_ref(encounter) if encounter is not None else reference.rsplit("/", 1)[-1]


def _extensions(c: Context, url: str) -> list[Mapping[str, Any]]:
    return [e for e in _list(c.resource.get("extension")) if isinstance(e, Mapping) and e.get("url") == url]


def _ext_path(c: Context, url: str) -> str:
    return f"{c.path}.extension('{url}')"


def _extension_code(c: Context, url: str, allowed: frozenset[str]) -> str | None:
    found = _extensions(c, url)
    if not found:
        return None
    code = found[0].get("valueCode")
    if code not in allowed:
        raise Invalid(
            Issue("code-invalid", f"valueCode must be one of {', '.join(sorted(allowed))}", _ext_path(c, url))
        )
    return str(code)


def _extension_boolean(c: Context, url: str) -> bool:
    found = _extensions(c, url)
    if not found or not isinstance(found[0].get("valueBoolean"), bool):
        raise Invalid(Issue("required", f"the extension {url} (valueBoolean) is required", _ext_path(c, url)))
    return bool(found[0]["valueBoolean"])


def _money(value: Any, path: str) -> Decimal:
    found = _money_or_none(value, path)
    if found is None:
        raise Invalid(Issue("required", "a Money value is required", f"{path}.value"))
    return found


def _money_or_none(value: Any, path: str) -> Decimal | None:
    """Money.value as read from the request text (a Decimal, never a float)."""
    if value is None:
        return None
    amount = _get(value, "value")
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise Invalid(Issue("value", "Money.value must be a JSON number", f"{path}.value"))
    if amount < 0:
        raise Invalid(Issue("value", "Money.value must not be negative", f"{path}.value"))
    return Decimal(amount)


def _total(response: Mapping[str, Any], category: str, path: str) -> Decimal | None:
    for number, total in enumerate(_list(response.get("total"))):
        if category in _codes(total, "category"):
            return _money(_get(total, "amount"), f"{path}.total[{number}].amount")
    return None


def _codes(value: Any, element: str) -> list[Any]:
    """The codes of a CodeableConcept element."""
    return [c.get("code") for c in _list(_get(value, element, "coding")) if isinstance(c, Mapping)]


def _decimal_text(amount: Decimal) -> str:
    return format(amount, "f")


_MAPPINGS = {
    "Encounter": _encounter_of,
    "MedicationRequest": _medication_request,
    "MedicationAdministration": _medication_administration,
    "AdverseEvent": _adverse_event,
    "Claim": _claim,
    "ClaimResponse": _claim_response,
}


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
                "batch-response), or Bulk Data NDJSON, to /v1/fhir. Catalogue fields R4 has no element "
                f"for are extensions under {EXTENSION} (docs/interop.md).",
                "resource": [{"type": kind, "interaction": [{"code": "create"}]} for kind in MEASURED],
                "interaction": [{"code": "batch"}, {"code": "transaction"}],
            }
        ],
    }
