"""HL7 v2 ADT messages → catalogue events (docs/interop.md, "HL7 v2").

Pure: a parsed message (python-hl7's `hl7.Message`) becomes the catalogue events it states, or the
reason it cannot (an `AE` naming the field, e.g. `PV1^1^19`), or nothing to measure (an `AA` with a
note). The events then go the way every event goes (validation, intake rules, pseudonymisation,
publish); the acknowledgement is built from what became of them.

Event ids derive from `MSH-10`, the fact, the fact's own time and a short hash of the stay (visit and
patient): `31644:admitted:20130211T110052Z:1a2b3c4d`. A re-sent message counts once, and a feed that
reuses control ids (real ones do) keeps different facts — and different patients' stays — apart. The
source is `hl7v2-` and the sending application (`MSH-3`), lower-cased.

Fields are read as sent and unescaped within bounds (`er7`): nothing a sender writes makes the platform
allocate more than the message's own size, and nothing of a message reaches a log.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import hl7

from ingest.domain.dispositions import DISPOSITIONS_0112
from ingest.domain.er7 import DEFAULT, Delimiters, Unreadable, raw, unescaped

# HL7 table 0357 (message error condition codes) used in ERR-3.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNKNOWN_KEY_IDENTIFIER = "204"
APPLICATION_ERROR = "207"  # HL7's catch-all, also for a rule of the platform (a time in the future)
ERROR_TEXT = {
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    APPLICATION_ERROR: "Application internal error",
}
# The catalogue's and the intake rules' error codes as table 0357 codes (anything else: 207).
REFUSAL_CODES = {
    "missing": REQUIRED_FIELD_MISSING,
    "string_too_short": REQUIRED_FIELD_MISSING,
    "string_too_long": DATA_TYPE_ERROR,
    "string_pattern_mismatch": DATA_TYPE_ERROR,
    "literal_error": TABLE_VALUE_NOT_FOUND,
    "facility_not_in_tenant": UNKNOWN_KEY_IDENTIFIER,
    "time_in_future": APPLICATION_ERROR,
}

ADMITTING = frozenset({"A01", "A04"})
CLASS_UPDATES = frozenset({"A06", "A07", "A08"})  # the stay's class as it is now
DISCHARGING = frozenset({"A03"})
CANCELLING = frozenset({"A11", "A13"})

# Free-text dispositions real feeds send instead of a code (a documented tolerance): the first word
# that names one; anything else is `other`.
FREE_TEXT_DISPOSITIONS = (
    ("against medical advice", "ama"),
    ("home health", "home_health"),
    ("hospice", "hospice"),
    ("rehab", "rehab"),
    ("skilled nursing", "snf"),
    ("nursing", "snf"),
    ("died", "expired"),
    ("death", "expired"),
    ("dead", "expired"),
    ("deceased", "expired"),
    ("expired", "expired"),
    ("home", "home"),
)
MAX_REPETITIONS = 10  # of PID-3 looked at
_HL7_TIME = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?(?:([+-])(\d{2})(\d{2}))?$"
)


@dataclass(frozen=True, slots=True)
class Field:
    """A field the mapping reads: python-hl7's accessor, its `ERR-2` location, its name in `ERR-8`."""

    accessor: str
    location: str
    label: str


MSH_3 = Field("MSH.F3.R1.C1", "MSH^1^3", "MSH-3 (sending application)")
MSH_4 = Field("MSH.F4.R1.C1", "MSH^1^4", "MSH-4 (sending facility)")
MSH_9 = Field("MSH.F9", "MSH^1^9", "MSH-9 (message type)")
MSH_9_1 = Field("MSH.F9.R1.C1", "MSH^1^9", "MSH-9.1 (message code)")
MSH_9_2 = Field("MSH.F9.R1.C2", "MSH^1^9", "MSH-9.2 (trigger event)")
MSH_10 = Field("MSH.F10", "MSH^1^10", "MSH-10 (message control id)")
FACILITY_PARAMETER = Field("", "MSH^1^4", "the facility of the request (?facility=)")
EVN_2 = Field("EVN.F2.R1.C1", "EVN^1^2", "EVN-2 (recorded date/time)")
EVN_6 = Field("EVN.F6.R1.C1", "EVN^1^6", "EVN-6 (event occurred)")
PID_3 = Field("PID.F3", "PID^1^3", "PID-3 (patient identifier)")
PID_18 = Field("PID.F18.R1.C1", "PID^1^18", "PID-18 (patient account number)")
PID_30 = Field("PID.F30", "PID^1^30", "PID-30 (patient death indicator)")
PV1_2 = Field("PV1.F2.R1.C1", "PV1^1^2", "PV1-2 (patient class)")
PV1_3_4 = Field("PV1.F3.R1.C4", "PV1^1^3^1^4", "PV1-3.4 (facility of the location)")
PV1_4 = Field("PV1.F4", "PV1^1^4", "PV1-4 (admission type)")
PV1_18 = Field("PV1.F18", "PV1^1^18", "PV1-18 (patient type)")
PV1_36 = Field("PV1.F36", "PV1^1^36", "PV1-36 (discharge disposition)")
PV1_19 = Field("PV1.F19.R1.C1", "PV1^1^19", "PV1-19 (visit number)")
PV1_44 = Field("PV1.F44.R1.C1", "PV1^1^44", "PV1-44 (admit date/time)")
PV1_45 = Field("PV1.F45.R1.C1", "PV1^1^45", "PV1-45 (discharge date/time)")

# Where a fact's time is read, in order. EVN-6 is when the event occurred (HL7 v2.5 §3.4.1.6), EVN-2
# when it was recorded: an A01 or A03 without PV1-44/45 is timed at EVN-6, as its cancel will name it.
# A class update (A06/A07/A08) is timed by PV1-44 alone: its EVN-6 / EVN-2 are when the update happened,
# and an admission stated at that time would be a stay that never was.
ADMISSION_TIME = (PV1_44, EVN_6, EVN_2)
CLASS_UPDATE_TIME = (PV1_44,)
DISCHARGE_TIME = (PV1_45, EVN_6, EVN_2)
# The times an A11 / A13 may name the cancelled fact by: EVN-6 (HL7: "the date/time that the event
# being cancelled occurred") and the visit's own PV1-44 / PV1-45. A cancel names each distinct one.
CANCELLED_ADMISSION = (EVN_6, PV1_44)
CANCELLED_DISCHARGE = (EVN_6, PV1_45)


@dataclass(frozen=True, slots=True)
class Hl7Error:
    """What the `ERR` segment says: where (segment^sequence^field), the table 0357 code, and why."""

    location: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Hl7Events:
    """What one message states. `error` set: no event is sent (an `AE`)."""

    control_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    # The HL7 field each catalogue path of its events comes from (to name it in an `AE`).
    locations: dict[str, Field] = field(default_factory=dict)
    error: Hl7Error | None = None
    note: str | None = None  # understood, nothing to measure


@dataclass(frozen=True, slots=True)
class Hl7Time:
    """A time of the message, the field it came from, and whether the sender gave it to the minute
    only (`YYYYMMDDHHMM`) rather than to the second."""

    moment: datetime
    source: Field
    text: str  # as the sender wrote it
    to_the_minute: bool

    def at_precision_of(self, other: Hl7Time) -> datetime:
        """This time as precisely as the coarser of the two was given."""
        coarse = self.to_the_minute or other.to_the_minute
        return self.moment.replace(second=0, microsecond=0) if coarse else self.moment


@dataclass(frozen=True, slots=True)
class _Stay:
    """What every admission or discharge message says about the stay, and where it says it."""

    source: str
    facility: str
    facility_field: Field
    encounter: str
    encounter_field: Field
    patient: str
    encounter_class: str

    def event_id(self, control_id: str, fact: str, moment: datetime) -> str:
        return _event_id(control_id, fact, moment, self.encounter, self.patient)

    def locations(self, time: Field, admitted: Field) -> dict[str, Field]:
        """Catalogue paths → HL7 fields, for naming the field of an event the catalogue refuses."""
        return {
            "$": time,  # a rule across fields
            "$.time": time,
            "$.data.admitted_at": admitted,
            "$.data.encounter_ref": self.encounter_field,
            "$.data.patient_ref": PID_3,
            "$.facility": self.facility_field,
        }


class Invalid(Exception):
    def __init__(self, error: Hl7Error) -> None:
        super().__init__(error.message)
        self.error = error


def map_message(message: hl7.Message, zone: str, facility_override: str | None) -> Hl7Events:
    """The catalogue events of an ADT message; times without an offset are in `zone` (the tenant's)."""
    control_id = message_control_id(message)
    try:
        return _map(message, control_id, ZoneInfo(zone), facility_override)
    except Invalid as invalid:
        return Hl7Events(control_id, error=invalid.error)


def message_control_id(message: hl7.Message) -> str:
    """MSH-10 as sent (escape sequences are not interpreted: it is echoed in MSA-2 as it came), '' when
    it cannot be read at all. Never raises: an ACK is built from it whatever else failed."""
    try:
        return raw(message, MSH_10.accessor).strip()
    except Exception:
        return ""


def _map(message: hl7.Message, control_id: str, zone: ZoneInfo, facility: str | None) -> Hl7Events:
    if not control_id:
        raise _missing(MSH_10)
    kind, trigger = _text(message, MSH_9_1), _text(message, MSH_9_2)
    if kind != "ADT":
        what = f"{kind or '(none)'} messages are not taken: the platform takes ADT"
        raise Invalid(Hl7Error(MSH_9.location, UNSUPPORTED_MESSAGE_TYPE, what))
    if not trigger:
        raise Invalid(Hl7Error(MSH_9.location, REQUIRED_FIELD_MISSING, "MSH-9.2 (trigger event) is empty"))
    if trigger in CANCELLING:
        return _cancel(message, control_id, trigger, zone, facility)
    if trigger not in ADMITTING | CLASS_UPDATES | DISCHARGING:
        # Deliberately not used (A02, A05, A28, A31…): processed, and nothing to store — AA, so a
        # feed that sends every ADT event never has its queue held by one the platform does not use.
        return Hl7Events(control_id, note=f"ADT {trigger} states nothing the platform measures")
    encounter_class = _encounter_class(message)
    if encounter_class is None:
        return Hl7Events(control_id, note=f"patient class {_text(message, PV1_2)!r} is not measured")
    stay = _stay(message, encounter_class, facility)
    if trigger in DISCHARGING:
        return _discharge(message, control_id, stay, zone)
    admitted = _first_time(message, CLASS_UPDATE_TIME if trigger in CLASS_UPDATES else ADMISSION_TIME, zone)
    event = {
        "id": stay.event_id(control_id, "admitted", admitted.moment),
        "source": stay.source,
        "type": "encounter.admitted",
        "time": admitted.moment.isoformat(),
        "facility": stay.facility,
        "data": {
            "encounter_ref": stay.encounter,
            "patient_ref": stay.patient,
            "encounter_class": encounter_class,
            "planned": _text(message, PV1_4) == "C",
        },
    }
    return Hl7Events(control_id, [event], stay.locations(admitted.source, admitted.source))


def _discharge(message: hl7.Message, control_id: str, stay: _Stay, zone: ZoneInfo) -> Hl7Events:
    admitted = _time_of(message, PV1_44, zone)
    if admitted is None:
        raise _missing(PV1_44)
    discharged = _first_time(message, DISCHARGE_TIME, zone)
    event = {
        "id": stay.event_id(control_id, "discharged", discharged.moment),
        "source": stay.source,
        "type": "encounter.discharged",
        "time": discharged.moment.isoformat(),
        "facility": stay.facility,
        "data": {
            "encounter_ref": stay.encounter,
            "patient_ref": stay.patient,
            "encounter_class": stay.encounter_class,
            "admitted_at": _admission_of(admitted, discharged).isoformat(),
            "disposition": _disposition(message),
        },
    }
    return Hl7Events(control_id, [event], stay.locations(discharged.source, PV1_44))


def _admission_of(admitted: Hl7Time, discharged: Hl7Time) -> datetime:
    """The admission time a discharge states. Each time is as precise as its sender wrote it: the
    discharge is before its admission only if it is so at the coarser precision — PV1-45 `10:00` and
    PV1-44 `10:00:52` are the same minute — and then the admission is stated at that precision."""
    if admitted.moment <= discharged.moment:
        return admitted.moment
    if admitted.at_precision_of(discharged) <= discharged.at_precision_of(admitted):
        return admitted.at_precision_of(discharged)
    raise Invalid(
        Hl7Error(
            discharged.source.location,
            APPLICATION_ERROR,
            f"{discharged.source.label} {discharged.text} is before {PV1_44.label} {admitted.text}",
        )
    )


def _cancel(
    message: hl7.Message, control_id: str, trigger: str, zone: ZoneInfo, facility: str | None
) -> Hl7Events:
    """A11 cancels the admission, A13 the discharge, named by each distinct time the message gives for
    it (EVN-6, PV1-44 / PV1-45): a cancel names its fact by time, so it works in any arrival order, and
    matches the fact whichever of those times the original message was timed at. Whatever the patient
    class: a cancel of a stay that was never measured cancels nothing.

    An A11 also names each admission time given to the second at its minute: a discharge to the minute
    states its admission at the minute (`_admission_of`), and the cancelled admission must take that
    stay's discharge with it. A cancel names its visit by PV1-19 only: PID-18 is the visit of a feed
    that never sends PV1-19, which a single message cannot tell, and a cancel naming another visit
    than its original would cancel nothing while answered AA."""
    admission = trigger == "A11"
    fields, fact, kind = (
        (CANCELLED_ADMISSION, "admitted_at", "admission")
        if admission
        else (CANCELLED_DISCHARGE, "discharged_at", "discharge")
    )
    times = [t for f in fields if (t := _time_of(message, f, zone)) is not None]
    if not times:
        what = f"no time of the {kind} cancelled: {fields[0].label} and {fields[1].label} are empty"
        raise Invalid(Hl7Error(fields[0].location, REQUIRED_FIELD_MISSING, what))
    named = {t.moment for t in times}
    if admission:
        named |= {t.moment.replace(second=0, microsecond=0) for t in times if not t.to_the_minute}
    recorded = _first_time(message, (EVN_2,), zone)
    where, facility_field = _facility(message, facility)
    encounter = _text(message, PV1_19)
    if not encounter:
        what = f"{PV1_19.label} is empty: a cancel names the visit it cancels by {PV1_19.label}"
        raise Invalid(Hl7Error(PV1_19.location, REQUIRED_FIELD_MISSING, what))
    patient = _patient(message)
    events = [
        {
            "id": _event_id(control_id, f"{kind}_cancelled", moment, encounter, patient),
            "source": _source(message),
            "type": f"encounter.{kind}_cancelled",
            "time": recorded.moment.isoformat(),
            "facility": where,
            "data": {"encounter_ref": encounter, "patient_ref": patient, fact: moment.isoformat()},
        }
        for moment in sorted(named)
    ]
    locations = {
        "$": EVN_2,
        "$.time": EVN_2,
        f"$.data.{fact}": fields[0],
        "$.data.encounter_ref": PV1_19,
        "$.data.patient_ref": PID_3,
        "$.facility": facility_field,
    }
    return Hl7Events(control_id, events, locations)


def _stay(message: hl7.Message, encounter_class: str, facility: str | None) -> _Stay:
    where, facility_field = _facility(message, facility)
    encounter, encounter_field = _encounter(message)
    return _Stay(
        _source(message),
        where,
        facility_field,
        encounter,
        encounter_field,
        _patient(message),
        encounter_class,
    )


def _source(message: hl7.Message) -> str:
    return "hl7v2-" + (_text(message, MSH_3).lower() or "unknown")


def _facility(message: hl7.Message, override: str | None) -> tuple[str, Field]:
    if override:
        return override, FACILITY_PARAMETER
    for source in (MSH_4, PV1_3_4):
        if value := _text(message, source):
            return value, source
    no_facility = "no facility: MSH-4, PV1-3.4 or ?facility= of the request"
    raise Invalid(Hl7Error(MSH_4.location, REQUIRED_FIELD_MISSING, no_facility))


def _encounter(message: hl7.Message) -> tuple[str, Field]:
    """PV1-19 (visit number), else PID-18 (patient account number): US feeds often key a visit by the
    account number and leave PV1-19, optional in the standard, empty."""
    for source in (PV1_19, PID_18):
        if value := _text(message, source):
            return value, source
    what = f"no encounter: {PV1_19.label} and {PID_18.label} are empty"
    raise Invalid(Hl7Error(PV1_19.location, REQUIRED_FIELD_MISSING, what))


def _encounter_class(message: hl7.Message) -> str | None:
    """PV1-2 (required) I, B → inpatient; E → emergency; any class with PV1-18 = OBS → observation;
    other classes are not measured (None)."""
    patient_class = _text(message, PV1_2).upper()
    if not patient_class:
        raise _missing(PV1_2)
    if _text(message, PV1_18).upper() == "OBS":
        return "observation"
    return {"I": "inpatient", "B": "inpatient", "E": "emergency"}.get(patient_class)


def _patient(message: hl7.Message) -> str:
    """PID-3: the repetition whose identifier type (CX.5) is MR, else the first."""
    values = []
    for repetition in range(1, MAX_REPETITIONS + 1):
        value = _text(message, Field(f"PID.F3.R{repetition}.C1", PID_3.location, PID_3.label))
        kind = _text(message, Field(f"PID.F3.R{repetition}.C5", PID_3.location, PID_3.label)).upper()
        if not value and not kind:
            break
        values.append((value, kind))
    chosen = next((v for v, kind in values if v and kind in ("MR", "MRN")), None) or next(
        (v for v, _ in values if v), ""
    )
    if not chosen:
        raise _missing(PID_3)
    return chosen


def _disposition(message: hl7.Message) -> str:
    """PV1-36; a patient whose PID-30 (death indicator) is Y is discharged expired, whatever it says."""
    return "expired" if _text(message, PID_30).upper() == "Y" else disposition(_text(message, PV1_36))


def disposition(code: str) -> str:
    """PV1-36 as a catalogue disposition: a table 0112 code, or a free text naming one, else other."""
    if code in DISPOSITIONS_0112:
        return DISPOSITIONS_0112[code]
    text = code.strip().lower()
    return next((value for words, value in FREE_TEXT_DISPOSITIONS if words in text), "other")


def parse_time(text: str, zone: ZoneInfo) -> datetime | None:
    """An HL7 DTM to at least minutes; without an offset it is the tenant's local time. None: not one."""
    parsed = _parse_time(text, zone)
    return parsed[0] if parsed else None


def _parse_time(text: str, zone: ZoneInfo) -> tuple[datetime, bool] | None:
    """The moment and whether it is given to the minute only; None for anything that is not a time
    (an offset of ±24 h or more, minutes of 60 or more, a moment outside the years 1–9999 in UTC)."""
    match = _HL7_TIME.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
    if int(off_m or 0) >= 60 or offset >= timedelta(hours=24):
        return None
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
        moment = moment.replace(tzinfo=zone if sign is None else timezone(-offset if sign == "-" else offset))
        moment.astimezone(UTC)  # the instant must exist: ids and the catalogue are in UTC
    except (ValueError, OverflowError):
        return None
    return moment, second is None


def _time_of(message: hl7.Message, source: Field, zone: ZoneInfo) -> Hl7Time | None:
    text = _text(message, source)
    if not text:
        return None
    parsed = _parse_time(text, zone)
    if parsed is None:
        why = f"{source.label} {text!r} is not a date/time (YYYYMMDDHHMM[SS][+/-ZZZZ])"
        raise Invalid(Hl7Error(source.location, DATA_TYPE_ERROR, why))
    return Hl7Time(parsed[0], source, text, parsed[1])


def _first_time(message: hl7.Message, sources: tuple[Field, ...], zone: ZoneInfo) -> Hl7Time:
    for source in sources:
        if (found := _time_of(message, source, zone)) is not None:
            return found
    if len(sources) == 1:
        raise _missing(sources[0])
    named = ", ".join(s.label for s in sources)
    raise Invalid(Hl7Error(sources[-1].location, REQUIRED_FIELD_MISSING, f"no time: {named} are empty"))


def _missing(source: Field) -> Invalid:
    return Invalid(Hl7Error(source.location, REQUIRED_FIELD_MISSING, f"{source.label} is empty"))


def _event_id(control_id: str, fact: str, moment: datetime, encounter: str, patient: str) -> str:
    """`MSH-10:fact:time in UTC:stay`, the stay the first 8 hex digits of SHA-256(`encounter NUL patient`):
    a control id a feed reuses for another patient's stay in the same minute names another fact, and a
    re-sent message (same visit, same patient) the same one. A hash, not the identifiers: an event id is
    not pseudonymised."""
    stay = hashlib.sha256(f"{encounter}\x00{patient}".encode()).hexdigest()[:8]
    return f"{control_id}:{fact}:{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}:{stay}"


def _text(message: hl7.Message, source: Field) -> str:
    """A field or component as text, its escape sequences resolved within bounds ('' when the message
    has no such segment or field); a field that cannot be read is AE 102 naming it."""
    try:
        return unescaped(raw(message, source.accessor), Delimiters.of(message)).strip()
    except Unreadable as unreadable:
        raise Invalid(Hl7Error(source.location, DATA_TYPE_ERROR, f"{source.label}: {unreadable}")) from None
    except Exception:
        raise Invalid(Hl7Error(source.location, DATA_TYPE_ERROR, f"{source.label} cannot be read")) from None


def refusal(source: Field, code: str, reason: str) -> Hl7Error:
    """The `ERR` of an event the catalogue or the intake rules refuse: the HL7 field it came from, the
    table 0357 code of the refusal (`REFUSAL_CODES`), and the reason, naming the field."""
    return Hl7Error(source.location, REFUSAL_CODES.get(code, APPLICATION_ERROR), f"{source.label}: {reason}")


def acknowledgement(message: hl7.Message, code: str, error: Hl7Error | None = None, text: str = "") -> str:
    """The original-mode ACK of a message: `MSA-1` AA / AE / AR, `MSA-2` its `MSH-10`, `MSA-3` a short
    text, and for AE / AR an `ERR` segment naming the field (ERR-2), the table 0357 code (ERR-3), the
    severity (ERR-4) and the reason (ERR-8) — written with the message's own delimiters (MSH-1, MSH-2),
    which its sender parses the answer with."""
    control_id = message_control_id(message)
    delimiters = Delimiters.of(message)
    try:
        ack = message.create_ack(code, message_id=f"ACK{control_id}"[:20], application="VR")
    except Exception:  # an MSH python-hl7 cannot answer from (too short, MSH-9 without components…)
        return acknowledgement_without_message(code, error, control_id, delimiters)
    segments = str(ack).split("\r")
    if text or error:
        segments[1] += delimiters.field + delimiters.escaped(text or (error.message if error else ""))
    if error is not None:
        segments.append(_err(error, delimiters))
    return "\r".join(s for s in segments if s)


def acknowledgement_without_message(
    code: str, error: Hl7Error | None, control_id: str = "", delimiters: Delimiters = DEFAULT
) -> str:
    """An ACK for what is not a message python-hl7 can answer from: the delimiters and control id that
    could be read of it (else HL7's defaults and none)."""
    f = delimiters.field
    segments = [
        f"MSH{f}{delimiters.encoding_characters}{f}VR{f * 4}{datetime.now(UTC):%Y%m%d%H%M%S}{f * 2}"
        f"ACK{f}ACK{f}P{f}2.5",
        f"MSA{f}{code}{f}{control_id}",  # as sent: already ER7 of these delimiters
    ]
    if error is not None:
        segments[1] += f + delimiters.escaped(error.message)
        segments.append(_err(error, delimiters))
    return "\r".join(segments)


def _err(error: Hl7Error, delimiters: Delimiters) -> str:
    """ERR-2 the location (ERL: segment^sequence^field…), ERR-3 the table 0357 code (CWE), ERR-4 `E`
    and ERR-8 the reason."""
    f, c = delimiters.field, delimiters.component
    location = c.join(delimiters.escaped(part) for part in error.location.split("^"))
    condition = c.join((error.code, ERROR_TEXT.get(error.code, ""), "HL70357"))
    return f"ERR{f}{f}{location}{f}{condition}{f}E{f * 4}{delimiters.escaped(error.message)}"
