"""FHIR R4 resources → catalogue events (docs/interop.md, "FHIR R4").

Pure: a resource (parsed with decimals for JSON numbers: money is never read through a float) becomes
the catalogue events it states, or issues naming the element at fault by its FHIRPath, or nothing to
measure. References resolve inside the Bundle by every form its rules allow (`fhir_references`); one
that names nothing the mapping can use is a 422 naming it, never a silent drop.

Only the elements mapped are checked, and strictly (types, codes, required ones): a full R4 model
validation costs 300–800 µs per resource with the maintained model library (`fhir.resources`), against
tens of microseconds for a catalogue event, and would reject real exports for elements that no KPI
reads. The catalogue's own validation then checks every event, as for JSON.

Event ids derive from the resource type, its id, the fact and the fact's time
(`Encounter:123:admitted:20260301T080000Z`; `:` rather than `/`, so that an id is one
path segment of `GET /v1/events/{source}/{id}`): re-sending a Bundle, or an Encounter first
`in-progress` then `finished`, counts each fact once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from ingest.domain.dispositions import DISPOSITIONS_0112
from ingest.domain.fhir_references import BundleIndex, is_local, named_by

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
INITIAL_ADJUDICATION = EXTENSION + "initial-adjudication"  # ClaimResponse: valueBoolean
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
MAX_SUSPECTS = 100  # suspectEntity entries looked at; a real AdverseEvent names a handful
# The catalogue's money (docs/events.md): at most 18 integer digits and 4 decimal places.
MAX_INTEGER_DIGITS = 18
CENTS_AND_BELOW = Decimal("0.0001")
NOT_AN_ADMISSION = frozenset({"planned", "unknown"})  # nobody was admitted (yet), or nobody knows


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
    if status in NOT_AN_ADMISSION:
        return Mapped(note=f"an Encounter {status} is not an admission")
    if status == "cancelled" and _get(encounter, "period", "start") is None:
        # R4: "the Encounter has ended before it has begun" — usually without a period: no admission
        # was stated, so there is none to retract. (`entered-in-error` must name the admission it
        # withdraws: without `period.start` it is a 422 like any Encounter.)
        return Mapped(note="a cancelled Encounter without period.start: nothing to retract")
    start = _instant(_get(encounter, "period", "start"), f"{path}.period.start", zone, required=True)
    assert start is not None
    end = _instant(_get(encounter, "period", "end"), f"{path}.period.end", zone, required=False)
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
        return Mapped(_cancels(id_, start, end, where, common), locations=locations)
    admitted = _event(id_, "admitted", start, where, "encounter.admitted")
    admitted["data"] = {**common, "encounter_class": encounter_class, "planned": _planned(encounter)}
    events = [admitted]
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


def _cancels(
    id_: str, start: datetime, end: datetime | None, facility: str, common: dict[str, str]
) -> list[dict[str, Any]]:
    """`entered-in-error` / `cancelled` (also after `finished`): the whole stay did not happen — its
    admission, and its discharge when `period.end` says one."""
    cancel = _event(id_, "admission_cancelled", start, facility, "encounter.admission_cancelled")
    cancel["data"] = {**common, "admitted_at": start.isoformat()}
    if end is None:
        return [cancel]
    no_discharge = _event(id_, "discharge_cancelled", end, facility, "encounter.discharge_cancelled")
    no_discharge["data"] = {**common, "discharged_at": end.isoformat()}
    return [cancel, no_discharge]


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
    """What names the patient the same however the Encounter is sent — alone or with its Patient: what
    `subject` names by itself (a logical reference's `identifier` value, a conditional reference's
    identifier value, `Patient/<id>` for a relative or RESTful absolute reference), else, for a
    reference only the Bundle gives a meaning to (`urn:uuid:`, `#id`), the Patient's identifier of type
    MR. Never a `urn:` string: a bundle-local name would name another patient in the next Bundle."""
    where = f"{path}.subject"
    logical = _get(encounter, "subject", "identifier", "value")
    if isinstance(logical, str) and logical:
        return logical
    reference = _reference(encounter, "subject", where, "the Patient")
    if not is_local(reference):
        named = named_by(reference)
        if "?" in reference and named.name:
            return named.name
        if named.kind and named.name:
            return f"{named.kind}/{named.name}"  # as a relative reference writes it, without _history
        raise Invalid(Issue("not-found", f"subject {reference!r} names no Patient id or identifier", where))
    patient = _resolved(reference, encounter, index, where)
    for identifier in _list(patient.get("identifier") if patient is not None else None):
        if "MR" in _codes(identifier, "type") and isinstance(value := identifier.get("value"), str) and value:
            return value
    message = f"the Patient {reference!r} has no identifier of type MR, and the reference names none"
    raise Invalid(Issue("required", message, where))


def _facility(encounter: Mapping[str, Any], index: BundleIndex, path: str) -> str:
    return _organization(encounter, "serviceProvider", index, f"{path}.serviceProvider")


def _organization(holder: Mapping[str, Any], element: str, index: BundleIndex, where: str) -> str:
    """The identifier value of the Organization `holder.element` refers to (in the Bundle, or named by a
    conditional reference's own `identifier=system|value`)."""
    reference = _get(holder, element, "reference")
    if not isinstance(reference, str) or not reference:
        message = f"no facility: {element} (an Organization with an identifier) or ?facility="
        raise Invalid(Issue("required", message, where))
    organization = _resolved(reference, holder, index, where)
    if organization is not None:
        for identifier in _list(organization.get("identifier")):
            if isinstance(identifier, Mapping) and isinstance(identifier.get("value"), str):
                return str(identifier["value"])
    if "?" in reference and (value := named_by(reference).name):
        return value
    message = f"{element} {reference!r} is not in the Bundle and names no identifier"
    raise Invalid(Issue("not-found", message, where))


def _reference(holder: Mapping[str, Any], element: str, where: str, what: str) -> str:
    reference = _get(holder, element, "reference")
    if not isinstance(reference, str) or not reference:
        raise Invalid(Issue("required", f"{element}.reference ({what}) is required", where))
    return reference


def _resolved(
    reference: str, holder: Mapping[str, Any], index: BundleIndex, where: str
) -> Mapping[str, Any] | None:
    """The resource in the Bundle, or None when the reference names it by itself; a `#id` or `urn:`
    reference the Bundle does not resolve names nothing: 422 naming it."""
    found = index.resolve(reference, holder)
    if found is None and is_local(reference):
        message = f"{reference!r} resolves to no entry of the Bundle (nor a contained resource)"
        raise Invalid(Issue("not-found", message, where))
    return found


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
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    try:
        moment.astimezone(UTC)  # ids and the catalogue are in UTC: the instant must have a year there
    except OverflowError:
        raise Invalid(Issue("value", f"{value!r} is outside the years 0001–9999 in UTC", path)) from None
    return moment


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
    kinds = _suspect_types(c)
    if not any(kind in DRUG_RESOURCES for kind in kinds):
        # A suspect whose type nothing tells may be the drug: refused only when no suspect is a known
        # one (a clear drug event is never refused for another suspect the Bundle does not hold).
        if unknown := next((issue for issue in kinds if isinstance(issue, Issue)), None):
            raise Invalid(unknown)
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


def _suspect_types(c: Context) -> list[str | Issue]:
    """The resource type of each suspect: the resolved resource's, else `Reference.type`, else what the
    reference names (`Type/id`, a RESTful URL, `Type?identifier=…`); for a suspect whose type none of
    these tell (a `urn:uuid:` outside the Bundle, an opaque URL), the issue naming it."""
    suspects = _list(c.resource.get("suspectEntity"))
    if len(suspects) > MAX_SUSPECTS:
        message = f"{len(suspects)} suspectEntity; at most {MAX_SUSPECTS} are taken"
        raise Invalid(Issue("too-costly", message, f"{c.path}.suspectEntity"))
    kinds: list[str | Issue] = []
    for number, suspect in enumerate(suspects):
        where = f"{c.path}.suspectEntity[{number}].instance"
        instance = _get(suspect, "instance")
        reference, declared = _get(instance, "reference"), _get(instance, "type")
        found = c.index.resolve(reference, c.resource) if isinstance(reference, str) else None
        kind = (
            _get(found, "resourceType")
            or (declared if isinstance(declared, str) else None)
            or (named_by(reference).kind if isinstance(reference, str) else None)
        )
        if not isinstance(kind, str):
            named = repr(reference) if isinstance(reference, str) else "(no reference)"
            message = f"suspect {named} resolves to no entry of the Bundle and names no type"
            kinds.append(Issue("not-found", message, where))
        else:
            kinds.append(kind)
    return kinds


def _claim(c: Context) -> Mapped:
    """claim.submitted: `total.value` read exactly; `clean` from the project's extension, unknown (null)
    without it — real claims systems never send it (docs/kpis.md: clean_claim_rate)."""
    amount = _money(c.resource.get("total"), f"{c.path}.total")
    time = _required_instant(c, "created")
    event = _fact(c, "submitted", time, "claim.submitted", None, provider="provider")
    event["data"] = {
        "claim_ref": _own_ref(c.resource),
        "amount": _decimal_text(amount),
        "clean": _optional_boolean(c, CLEAN_CLAIM),
    }
    return Mapped([event], locations={**_locations(c, "created"), "$.data.amount": f"{c.path}.total.value"})


def _claim_response(c: Context) -> Mapped:
    """claim.adjudicated: `request` → the claim; payment (else the `benefit` total) → paid, the
    `submitted` total (else the Claim's) less paid → denied; outcome complete and nothing paid →
    denied, all paid → paid, otherwise partial; initial per the extension, else unless the Claim (in
    the Bundle) is a resubmission — without either, nothing says it: 422 naming `request`."""
    r = c.resource
    if r.get("outcome") == "queued":
        return Mapped(note="a queued ClaimResponse is not adjudicated yet")
    request = _reference(r, "request", f"{c.path}.request", "the Claim")
    claim = _resolved(request, r, c.index, f"{c.path}.request")
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
    event = _fact(c, "adjudicated", time, "claim.adjudicated", None, provider="requestor", via=claim)
    event["data"] = {
        "claim_ref": _ref_of(claim, request),
        "outcome": outcome,
        "initial": _initial(c, claim, request),
        "paid_amount": _decimal_text(paid),
        "denied_amount": _decimal_text(max(submitted - paid, Decimal(0))),
    }
    return Mapped([event], locations={**_locations(c, "created"), "$.data": f"{c.path}.payment"})


def _initial(c: Context, claim: Mapping[str, Any] | None, request: str) -> bool:
    """Whether this is the payer's first adjudication of the claim (the denial rate counts those only)."""
    stated = _optional_boolean(c, INITIAL_ADJUDICATION)
    if stated is not None:
        return stated
    if claim is None:
        message = (
            f"the Claim {request!r} is not in the Bundle, so whether this adjudication is initial is "
            f"unknown: send the Claim in the same Bundle, or the extension {INITIAL_ADJUDICATION}"
        )
        raise Invalid(Issue("not-found", message, f"{c.path}.request"))
    return not any("prior" in _codes(related, "relationship") for related in _list(claim.get("related")))


def _ref_of(resource: Mapping[str, Any] | None, reference: str) -> str:
    """The referenced resource's own ref (found in the Bundle), else what the reference names: its id,
    a conditional reference's identifier value, or the reference itself (an opaque URL)."""
    return _own_ref(resource) if resource is not None else named_by(reference).name or reference


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
        where = f"{c.path}.{encounter_element}"
        reference = _get(c.resource, encounter_element, "reference")
        encounter = c.index.resolve(reference, c.resource) if isinstance(reference, str) else None
        if encounter is not None:
            return _facility(encounter, c.index, where)
    else:
        element = provider or "provider"
        where = f"{c.path}.{element}"
        for holder in (c.resource, via):
            if holder is not None and isinstance(_get(holder, element, "reference"), str):
                return _organization(holder, element, c.index, where)
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
    """The Encounter's ref (`_ref_of`)."""
    reference = _reference(c.resource, element, f"{c.path}.{element}", "the Encounter")
    return _ref_of(_resolved(reference, c.resource, c.index, f"{c.path}.{element}"), reference)


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
    value = _optional_boolean(c, url)
    if value is None:
        raise Invalid(Issue("required", f"the extension {url} (valueBoolean) is required", _ext_path(c, url)))
    return value


def _optional_boolean(c: Context, url: str) -> bool | None:
    """An extension's valueBoolean; None when the extension is absent (one without a boolean is a 422)."""
    found = _extensions(c, url)
    if not found:
        return None
    if not isinstance(value := found[0].get("valueBoolean"), bool):
        raise Invalid(Issue("value", f"the extension {url} carries a valueBoolean", _ext_path(c, url)))
    return value


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
    amount = Decimal(amount)
    if not amount.is_finite():
        raise Invalid(Issue("value", "Money.value must be a finite number", f"{path}.value"))
    if amount < 0:
        raise Invalid(Issue("value", "Money.value must not be negative", f"{path}.value"))
    return _catalogue_money(amount, f"{path}.value")


def _catalogue_money(amount: Decimal, where: str) -> Decimal:
    """The amount as the catalogue takes money — at most 18 integer digits and 4 decimal places — judged
    from its exponent, never by writing it out: `1e999999999` is a gigabyte of digits."""
    if amount.is_zero():
        return Decimal(0)
    if amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise Invalid(Issue("value", f"Money.value has more than {MAX_INTEGER_DIGITS} integer digits", where))
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:  # trailing zeros beyond the 4th place are taken
        try:
            rounded = amount.quantize(CENTS_AND_BELOW)
        except InvalidOperation:
            rounded = None
        if rounded != amount:
            raise Invalid(Issue("value", "Money.value has more than 4 decimal places", where))
        return rounded
    return amount


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
