"""HL7 v2 ADT messages → catalogue events (docs/interop.md, "HL7 v2").

Pure: a parsed message (python-hl7's `hl7.Message`) becomes the catalogue events it states, or the
reason it cannot (an `AE` naming the field, e.g. `PV1^1^19`, or an `AR`), or nothing to measure (an
`AA` with no event). The events then go the way every event goes (validation, intake rules,
pseudonymisation, publish); the acknowledgement is built from what became of them.

Event ids derive from `MSH-10`, the fact and the fact's own time (`31644:admitted:20130211T110052Z`):
a re-sent message counts once, and a feed that reuses control ids (real ones do) keeps different facts
apart. The source is `hl7v2-` and the sending application (`MSH-3`), lower-cased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import hl7

from ingest.domain.dispositions import DISPOSITIONS_0112

# HL7 table 0357 (message error condition codes) used in ERR-3.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNKNOWN_KEY_IDENTIFIER = "204"
APPLICATION_ERROR = "207"
ERROR_TEXT = {
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    APPLICATION_ERROR: "Application internal error",
}

ADMITTING = frozenset({"A01", "A04"})
CLASS_UPDATES = frozenset({"A06", "A07", "A08"})  # the stay's class as it is now
UNDERSTOOD_WITHOUT_EVENT = frozenset({"A02"})  # a transfer: nothing the KPIs count
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
    ("deceased", "expired"),
    ("expired", "expired"),
    ("home", "home"),
)
MAX_REPETITIONS = 10  # of PID-3 looked at
_HL7_TIME = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?(?:([+-])(\d{2})(\d{2}))?$"
)


@dataclass(frozen=True, slots=True)
class Hl7Error:
    """What the `ERR` segment says: where (segment^sequence^field), the table 0357 code, and why."""

    location: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Hl7Events:
    """What one message states. `rejected`/`error` set: no event is sent (an `AR` / `AE`)."""

    control_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    # Where in the message each catalogue path of an event comes from (for an `AE` on a rejected event).
    locations: dict[str, str] = field(default_factory=dict)
    error: Hl7Error | None = None
    rejected: Hl7Error | None = None
    note: str | None = None  # understood, nothing to measure


class Invalid(Exception):
    def __init__(self, error: Hl7Error) -> None:
        super().__init__(error.message)
        self.error = error


def map_message(message: hl7.Message, zone: str, facility_override: str | None) -> Hl7Events:
    """The catalogue events of an ADT message; times without an offset are in `zone` (the tenant's)."""
    control_id = _text(message, "MSH.F10")
    try:
        return _map(message, control_id, ZoneInfo(zone), facility_override)
    except Invalid as invalid:
        if invalid.error.code in (UNSUPPORTED_MESSAGE_TYPE, UNSUPPORTED_EVENT_CODE):
            return Hl7Events(control_id, rejected=invalid.error)
        return Hl7Events(control_id, error=invalid.error)


def _map(message: hl7.Message, control_id: str, zone: ZoneInfo, facility: str | None) -> Hl7Events:
    if not control_id:
        raise Invalid(Hl7Error("MSH^1^10", REQUIRED_FIELD_MISSING, "MSH-10 (message control id) is empty"))
    kind, trigger = _text(message, "MSH.F9.R1.C1"), _text(message, "MSH.F9.R1.C2")
    if kind != "ADT":
        raise Invalid(
            Hl7Error("MSH^1^9", UNSUPPORTED_MESSAGE_TYPE, f"{kind or '(none)'} messages are not taken")
        )
    if trigger in UNDERSTOOD_WITHOUT_EVENT:
        return Hl7Events(control_id, note=f"ADT^{trigger} understood; nothing to measure")
    if trigger not in ADMITTING | CLASS_UPDATES | DISCHARGING | CANCELLING:
        raise Invalid(Hl7Error("MSH^1^9", UNSUPPORTED_EVENT_CODE, f"ADT^{trigger or '(none)'} is not taken"))
    if trigger in CANCELLING:
        return _cancel(message, control_id, trigger, zone, facility)
    encounter_class = _encounter_class(message)
    if encounter_class is None:
        return Hl7Events(control_id, note=f"patient class {_text(message, 'PV1.F2')!r} is not measured")
    where = facility or _text(message, "MSH.F4.R1.C1") or _text(message, "PV1.F3.R1.C4")
    if not where:
        raise Invalid(
            Hl7Error("MSH^1^4", REQUIRED_FIELD_MISSING, "no facility: MSH-4, PV1-3.4 or ?facility=")
        )
    encounter = _required(message, "PV1.F19.R1.C1", "PV1^1^19", "the visit number (encounter)")
    patient = _patient(message)
    source = "hl7v2-" + (_text(message, "MSH.F3.R1.C1").lower() or "unknown")
    admitted_at = _time_of(message, "PV1.F44", "PV1^1^44", zone) or _event_time(message, zone)
    if trigger in DISCHARGING:
        return _discharge(message, control_id, source, where, encounter, patient, encounter_class, zone)
    event = {
        "id": _event_id(control_id, "admitted", admitted_at),
        "source": source,
        "type": "encounter.admitted",
        "time": admitted_at.isoformat(),
        "facility": where,
        "data": {
            "encounter_ref": encounter,
            "patient_ref": patient,
            "encounter_class": encounter_class,
            "planned": _text(message, "PV1.F4") == "C",
        },
    }
    return Hl7Events(control_id, [event], _locations(admitted="PV1^1^44"))


def _discharge(
    message: hl7.Message,
    control_id: str,
    source: str,
    where: str,
    encounter: str,
    patient: str,
    encounter_class: str,
    zone: ZoneInfo,
) -> Hl7Events:
    admitted_at = _time_of(message, "PV1.F44", "PV1^1^44", zone)
    if admitted_at is None:
        raise Invalid(Hl7Error("PV1^1^44", REQUIRED_FIELD_MISSING, "PV1-44 (admit date/time) is empty"))
    # A missing PV1-45 is the event's time (EVN-2): the documented tolerance for feeds that omit it.
    discharged_at = _time_of(message, "PV1.F45", "PV1^1^45", zone) or _event_time(message, zone)
    event = {
        "id": _event_id(control_id, "discharged", discharged_at),
        "source": source,
        "type": "encounter.discharged",
        "time": discharged_at.isoformat(),
        "facility": where,
        "data": {
            "encounter_ref": encounter,
            "patient_ref": patient,
            "encounter_class": encounter_class,
            "admitted_at": admitted_at.isoformat(),
            "disposition": disposition(_text(message, "PV1.F36")),
        },
    }
    return Hl7Events(control_id, [event], _locations(admitted="PV1^1^44", time="PV1^1^45"))


def _cancel(
    message: hl7.Message, control_id: str, trigger: str, zone: ZoneInfo, facility: str | None
) -> Hl7Events:
    """A11 cancels the admission at EVN-6 (else PV1-44), A13 the discharge at EVN-6 (else PV1-45): a
    cancel names its fact by time, so it works in any arrival order. Whatever the patient class: a
    cancel of a stay that was never measured cancels nothing."""
    admission = trigger == "A11"
    field_, location = ("PV1.F44", "PV1^1^44") if admission else ("PV1.F45", "PV1^1^45")
    cancelled_at = _time_of(message, "EVN.F6", "EVN^1^6", zone) or _time_of(message, field_, location, zone)
    if cancelled_at is None:
        what = "the admission" if admission else "the discharge"
        raise Invalid(
            Hl7Error("EVN^1^6", REQUIRED_FIELD_MISSING, f"no time of {what} cancelled: EVN-6 or {location}")
        )
    fact, kind = ("admitted_at", "admission") if admission else ("discharged_at", "discharge")
    event = {
        "id": _event_id(control_id, f"{kind}_cancelled", cancelled_at),
        "source": "hl7v2-" + (_text(message, "MSH.F3.R1.C1").lower() or "unknown"),
        "type": f"encounter.{kind}_cancelled",
        "time": _event_time(message, zone).isoformat(),
        "facility": _facility(message, facility),
        "data": {
            "encounter_ref": _required(message, "PV1.F19.R1.C1", "PV1^1^19", "the visit number (encounter)"),
            "patient_ref": _patient(message),
            fact: cancelled_at.isoformat(),
        },
    }
    return Hl7Events(control_id, [event], {**_locations(admitted="EVN^1^6"), "$.time": "EVN^1^2"})


def _facility(message: hl7.Message, override: str | None) -> str:
    where = override or _text(message, "MSH.F4.R1.C1") or _text(message, "PV1.F3.R1.C4")
    if not where:
        no_facility = "no facility: MSH-4, PV1-3.4 or ?facility="
        raise Invalid(Hl7Error("MSH^1^4", REQUIRED_FIELD_MISSING, no_facility))
    return where


def _locations(*, admitted: str, time: str | None = None) -> dict[str, str]:
    """Catalogue paths → HL7 fields, for naming the field of an event the catalogue rejects."""
    return {
        "$": time or admitted,  # a rule across fields: a discharge not before its admission
        "$.time": time or admitted,
        "$.data.admitted_at": admitted,
        "$.data.encounter_ref": "PV1^1^19",
        "$.data.patient_ref": "PID^1^3",
        "$.facility": "MSH^1^4",
    }


def _encounter_class(message: hl7.Message) -> str | None:
    """PV1-2 I, B → inpatient; E → emergency; any class with PV1-18 = OBS → observation."""
    if _text(message, "PV1.F18").upper() == "OBS":
        return "observation"
    return {"I": "inpatient", "B": "inpatient", "E": "emergency"}.get(_text(message, "PV1.F2").upper())


def _patient(message: hl7.Message) -> str:
    """PID-3: the repetition whose identifier type (CX.5) is MR, else the first."""
    values = []
    for repetition in range(1, MAX_REPETITIONS + 1):
        value = _text(message, f"PID.F3.R{repetition}.C1")
        kind = _text(message, f"PID.F3.R{repetition}.C5").upper()
        if not value and not kind:
            break
        values.append((value, kind))
    chosen = next((v for v, kind in values if v and kind in ("MR", "MRN")), None) or next(
        (v for v, _ in values if v), ""
    )
    if not chosen:
        raise Invalid(Hl7Error("PID^1^3", REQUIRED_FIELD_MISSING, "PID-3 (patient identifier) is empty"))
    return chosen


def disposition(code: str) -> str:
    """PV1-36 as a catalogue disposition: a table 0112 code, or a free text naming one, else other."""
    if code in DISPOSITIONS_0112:
        return DISPOSITIONS_0112[code]
    text = code.strip().lower()
    return next((value for words, value in FREE_TEXT_DISPOSITIONS if words in text), "other")


def parse_time(text: str, zone: ZoneInfo) -> datetime | None:
    """An HL7 DTM to at least minutes; without an offset it is the tenant's local time. None: not one."""
    match = _HL7_TIME.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None
    if sign is None:
        return moment.replace(tzinfo=zone)
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    return moment.replace(tzinfo=timezone(offset if sign == "+" else -offset))


def _time_of(message: hl7.Message, accessor: str, location: str, zone: ZoneInfo) -> datetime | None:
    text = _text(message, accessor + ".R1.C1")
    if not text:
        return None
    moment = parse_time(text, zone)
    if moment is None:
        raise Invalid(Hl7Error(location, DATA_TYPE_ERROR, f"{text!r} is not a date/time (YYYYMMDDHHMM[SS])"))
    return moment


def _event_time(message: hl7.Message, zone: ZoneInfo) -> datetime:
    moment = _time_of(message, "EVN.F2", "EVN^1^2", zone)
    if moment is None:
        raise Invalid(Hl7Error("EVN^1^2", REQUIRED_FIELD_MISSING, "EVN-2 (recorded date/time) is empty"))
    return moment


def _required(message: hl7.Message, accessor: str, location: str, what: str) -> str:
    value = _text(message, accessor)
    if not value:
        raise Invalid(
            Hl7Error(location, REQUIRED_FIELD_MISSING, f"{location.replace('^1^', '-')} ({what}) is empty")
        )
    return value


def _event_id(control_id: str, fact: str, moment: datetime) -> str:
    return f"{control_id}:{fact}:{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _text(message: hl7.Message, accessor: str) -> str:
    """A field or component as text ('' when the message has no such segment or field)."""
    try:
        return str(message[accessor]).strip()
    except (KeyError, IndexError):
        return ""


def acknowledgement(message: hl7.Message, code: str, error: Hl7Error | None = None, text: str = "") -> str:
    """The original-mode ACK of a message: `MSA-1` AA / AE / AR, `MSA-2` its `MSH-10`, `MSA-3` a short
    text, and for AE / AR an `ERR` segment naming the field (ERR-2), the table 0357 code (ERR-3), the
    severity (ERR-4) and the reason (ERR-8)."""
    ack = message.create_ack(code, message_id=f"ACK{_text(message, 'MSH.F10')}"[:20], application="VR")
    segments = str(ack).split("\r")
    if text or error:
        segments[1] += "|" + _escape(text or (error.message if error else ""), message)
    if error is not None:
        label = ERROR_TEXT.get(error.code, "")
        segments.append(
            f"ERR||{error.location}|{error.code}^{label}^HL70357|E||||{_escape(error.message, message)}"
        )
    return "\r".join(s for s in segments if s)


def _escape(text: str, message: hl7.Message) -> str:
    """Text made safe inside a field: the message's own delimiters escaped as HL7 says."""
    return str(message.escape(text))
