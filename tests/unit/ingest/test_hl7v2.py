"""HL7 v2 ADT → catalogue events, rule by rule (docs/interop.md), on public sample messages (UCLH's
Emap, tests/data/hl7v2/) and on small messages that isolate one field."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import hl7
import pytest

from ingest.domain.hl7v2 import (
    MSH_4,
    PV1_19,
    PV1_45,
    Hl7Error,
    acknowledgement,
    disposition,
    map_message,
    parse_time,
    refusal,
)
from ingest.entrypoints.routes import split_messages
from tests.support.data import hl7_sample
from tests.support.hl7 import blanked, parsed, wikipedia_a01
from vr_shared.events import validate_event, validate_events

LONDON = "Europe/London"


def _message(text: str) -> hl7.Message:
    return hl7.parse(text.replace("\n", "\r").strip())


def _adt(trigger: str, pv1: dict[int, str], pid3: str = "MRN1^^^H^MR", msh4: str = "MAIN") -> hl7.Message:
    fields = [""] * 46
    fields[0] = "PV1"
    for number, value in pv1.items():
        fields[number] = value
    return _message(
        f"MSH|^~\\&|EPIC|{msh4}|||20260301080000||ADT^{trigger}|C{trigger}|P|2.5\n"
        f"EVN|{trigger}|20260301080000\nPID|1||{pid3}\n" + "|".join(fields).rstrip("|")
    )


def test_a_public_a01_is_an_admission_with_its_time_class_and_mr_number() -> None:
    mapped = map_message(_message(hl7_sample("generic_A01")), LONDON, None)
    (event,) = mapped.events
    assert event == {
        "id": "31644:admitted:20130211T100052Z:c20d9724",
        "source": "hl7v2-epic",
        "type": "encounter.admitted",
        "time": "2013-02-11T10:00:52+00:00",
        "facility": "UCLH",
        "data": {
            "encounter_ref": "123412341234",
            "patient_ref": "40800000",  # PID-3's first repetition: no MR type among them
            "encounter_class": "inpatient",
            "planned": False,
        },
    }


def test_a_public_a03_is_a_discharge_with_its_admission_and_a_free_text_disposition() -> None:
    (event,) = map_message(_message(hl7_sample("CancelAdmit_05_A03")), LONDON, "uclh-main").events
    assert (event["type"], event["time"], event["facility"]) == (
        "encounter.discharged",
        "2013-02-11T15:00:52+00:00",
        "uclh-main",  # ?facility= wins over MSH-4
    )
    assert event["data"]["admitted_at"] == "2013-02-11T13:00:52+00:00"
    assert event["data"]["disposition"] == "other"  # "Feeling great" names none


def test_an_outpatient_registration_is_understood_and_not_measured() -> None:
    mapped = map_message(_message(hl7_sample("generic_A04")), LONDON, None)
    assert mapped.events == [] and mapped.error is None and "'O'" in (mapped.note or "")


def test_a_transfer_is_understood_without_an_event() -> None:
    mapped = map_message(_message(hl7_sample("CancelAdmit_04_A02")), LONDON, None)
    assert mapped.events == [] and mapped.error is None and "A02" in (mapped.note or "")


def test_a08_states_the_stays_class_as_it_is_now() -> None:
    (event,) = map_message(_message(hl7_sample("generic_A08_v1")), LONDON, None).events
    assert (event["type"], event["data"]["encounter_class"]) == ("encounter.admitted", "inpatient")


@pytest.mark.parametrize(
    ("pv1", "expected"),
    [
        ({2: "I"}, "inpatient"),
        ({2: "B"}, "inpatient"),
        ({2: "E"}, "emergency"),
        ({2: "I", 18: "OBS"}, "observation"),
        ({2: "E", 18: "OBS"}, "observation"),
        ({2: "O"}, None),
        ({2: "R"}, None),
        ({2: "P"}, None),
    ],
)
def test_each_patient_class(pv1: dict[int, str], expected: str | None) -> None:
    mapped = map_message(_adt("A01", {**pv1, 19: "V1", 44: "202603010800"}), "UTC", None)
    assert [e["data"]["encounter_class"] for e in mapped.events] == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("01", "home"),
        ("06", "home_health"),
        ("02", "transfer_acute"),
        ("03", "snf"),
        ("61", "snf"),
        ("64", "snf"),
        ("62", "rehab"),
        ("50", "hospice"),
        ("51", "hospice"),
        ("07", "ama"),
        ("20", "expired"),
        ("40", "expired"),
        ("41", "expired"),
        ("42", "expired"),
        ("05", "other"),
        ("", "other"),
        ("Home", "home"),
        ("Died on ward", "expired"),
        ("Left against medical advice", "ama"),
    ],
)
def test_each_discharge_disposition(code: str, expected: str) -> None:
    assert disposition(code) == expected


def test_elective_admissions_are_planned_and_pid3_prefers_the_mr_number() -> None:
    message = _adt("A01", {2: "I", 4: "C", 19: "V1", 44: "202603010800"}, pid3="X1^^^H^PI~M9^^^H^MR")
    (event,) = map_message(message, "America/New_York", None).events
    assert event["data"]["planned"] is True and event["data"]["patient_ref"] == "M9"
    assert event["time"] == "2026-03-01T08:00:00-05:00"  # no offset: the tenant's local time


@pytest.mark.parametrize(
    ("trigger", "pv1", "location", "code"),
    [
        ("A01", {2: "I", 44: "202603010800"}, "PV1^1^19", "101"),  # no visit number
        ("A03", {2: "I", 19: "V1", 45: "202603050800"}, "PV1^1^44", "101"),  # discharge without admit time
        ("A01", {2: "I", 19: "V1", 44: "2026-03-01"}, "PV1^1^44", "102"),  # not an HL7 date/time
    ],
)
def test_a_missing_or_malformed_field_is_an_error_naming_it(
    trigger: str, pv1: dict[int, str], location: str, code: str
) -> None:
    mapped = map_message(_adt(trigger, pv1), "UTC", None)
    assert mapped.events == [] and mapped.error is not None
    assert (mapped.error.location, mapped.error.code) == (location, code)


def test_other_adt_triggers_are_understood_and_other_message_types_are_errors() -> None:
    """An ADT trigger the platform does not use (a pre-admission A05) is processed with nothing to
    store: AA with a note, so a feed sending every ADT event never has its queue held by it. Another
    message type is the sender's routing error: AE 200 — sent again as it is, it would be refused."""
    a05 = map_message(_adt("A05", {2: "I", 19: "V1"}), "UTC", None)
    assert (a05.events, a05.error) == ([], None)
    assert a05.note == "ADT A05 states nothing the platform measures"
    orm = map_message(
        _message("MSH|^~\\&|EPIC|MAIN|||20260301080000||ORM^O01|X1|P|2.5\nPID|1||M1"), "UTC", None
    )
    assert orm.error is not None
    assert (orm.error.location, orm.error.code) == ("MSH^1^9", "200")


def test_cancels_name_the_fact_they_cancel_by_its_time() -> None:
    at_minute, a11 = map_message(_message(hl7_sample("CancelAdmit_02_A11")), LONDON, None).events
    assert (a11["type"], a11["id"], a11["time"]) == (
        "encounter.admission_cancelled",
        "31644:admission_cancelled:20130211T110052Z:c20d9724",
        "2013-02-11T12:05:52+00:00",  # EVN-2: when the cancel was recorded
    )
    assert a11["data"] == {
        "encounter_ref": "123412341234",
        "patient_ref": "40800000",
        "admitted_at": "2013-02-11T11:00:52+00:00",  # EVN-6: the admission it cancels
    }
    # The same admission as a discharge given to the minute states it (point 3 of the review).
    assert at_minute["data"]["admitted_at"] == "2013-02-11T11:00:00+00:00"
    (a13,) = map_message(_message(hl7_sample("CancelDischarge_04_A13")), LONDON, None).events
    assert a13["type"] == "encounter.discharge_cancelled"
    assert a13["data"]["discharged_at"] == "2013-02-11T12:30:52+00:00"  # the discharge of 03_A03
    (cancelled,) = map_message(_message(hl7_sample("CancelDischarge_03_A03")), LONDON, None).events
    assert cancelled["time"] == a13["data"]["discharged_at"]


def test_a_re_sent_message_has_the_same_ids_and_a_reused_control_id_keeps_facts_apart() -> None:
    first = map_message(_message(hl7_sample("CancelAdmit_01_A01")), LONDON, None).events
    again = map_message(_message(hl7_sample("CancelAdmit_01_A01")), LONDON, None).events
    readmitted = map_message(_message(hl7_sample("CancelAdmit_03_A01")), LONDON, None).events
    assert first == again
    assert first[0]["id"] != readmitted[0]["id"]  # same control id 31644, another admission time
    assert readmitted[0]["id"] == "31644:admitted:20130211T130052Z:c20d9724"


def test_times_with_and_without_an_offset() -> None:
    zone = ZoneInfo("America/New_York")
    assert parse_time("202607011200", zone).isoformat() == "2026-07-01T12:00:00-04:00"  # type: ignore[union-attr]
    assert parse_time("20260701120030.1234+0100", zone).isoformat() == "2026-07-01T12:00:30+01:00"  # type: ignore[union-attr]
    assert parse_time("2026070112", zone) is None and parse_time("20261301120000", zone) is None


def test_an_ack_echoes_the_control_id_and_names_the_field_in_err() -> None:
    message = _adt("A01", {2: "I", 44: "202603010800"})
    mapped = map_message(message, "UTC", None)
    assert mapped.error is not None
    ack = acknowledgement(message, "AE", mapped.error).split("\r")
    assert ack[0].startswith("MSH|^~\\&|VR|") and "|ACK^A01^ACK|" in ack[0]
    assert ack[1].startswith("MSA|AE|CA01|")
    assert ack[2].startswith("ERR||PV1^1^19|101^Required field missing^HL70357|E")


def test_a_body_splits_into_messages_whatever_the_line_ends() -> None:
    body = (hl7_sample("generic_A01") + hl7_sample("generic_A04").replace("\n", "\r\n")).encode()
    texts = split_messages(b"\x0b" + body + b"\x1c\r")
    assert len(texts) == 2 and all(t.startswith("MSH|") for t in texts)
    assert texts[1].split("\r")[1].startswith("EVN|A04")


# --- Cancels match whichever time the original used (issue 24, point 9) ------------------------------


@pytest.mark.parametrize(
    ("original", "blank", "cancel"),
    [
        ("CancelAdmit_01_A01", "PV1-44", "CancelAdmit_02_A11"),
        ("CancelDischarge_03_A03", "PV1-45", "CancelDischarge_04_A13"),
    ],
    ids=["A01-A11", "A03-A13"],
)
def test_a_fact_without_its_pv1_time_is_timed_when_it_occurred_as_its_cancel_names_it(
    original: str, blank: str, cancel: str
) -> None:
    """Emap's A01 and A03 without PV1-44 / PV1-45: EVN-6 (when the event occurred), not EVN-2 (when it
    was recorded, an hour later) — the time the A11 / A13 names, so the cancel matches."""
    as_sent = map_message(_message(hl7_sample(original)), LONDON, None).events
    (fact,) = map_message(parsed(blanked(original, blank)), LONDON, None).events
    *_, cancelling = map_message(_message(hl7_sample(cancel)), LONDON, None).events  # the A11: and at 11:00
    named = cancelling["data"].get("admitted_at") or cancelling["data"]["discharged_at"]
    assert fact["time"] == named == as_sent[0]["time"]
    assert fact["id"] == as_sent[0]["id"]  # the same fact, whichever field timed it


def test_a_cancel_names_each_distinct_time_its_message_gives() -> None:
    """Emap's generic A13 names the discharge of its generic A03 by PV1-45 (10:00); its EVN-6 is a 2010
    time that names nothing. Both are named, so the discharge is cancelled either way."""
    (discharge,) = map_message(_message(hl7_sample("generic_A03")), LONDON, None).events
    cancels = map_message(_message(hl7_sample("generic_A13")), LONDON, None).events
    assert [c["data"]["discharged_at"] for c in cancels] == [
        "2010-09-16T11:00:00+01:00",  # EVN-6, British Summer Time
        "2013-02-11T10:00:00+00:00",  # PV1-45
    ]
    assert discharge["time"] == cancels[1]["data"]["discharged_at"]
    assert [c["id"] for c in cancels] == [
        "100000:discharge_cancelled:20100916T100000Z:c20d9724",
        "100000:discharge_cancelled:20130211T100000Z:c20d9724",
    ]
    assert validate_events(cancels) == [validate_event(c) for c in cancels]


def test_a_cancel_whose_times_agree_names_one_fact_and_one_without_any_is_an_error() -> None:
    same = str(_adt("A11", {2: "I", 19: "V1", 44: "202603010800"})).replace(
        "EVN|A11|20260301080000",
        "EVN|A11|20260301080000||||20260301080000",  # EVN-6 to the second
    )
    (cancel,) = map_message(parsed(same), "UTC", None).events
    assert cancel["data"]["admitted_at"] == "2026-03-01T08:00:00+00:00"
    mapped = map_message(_adt("A13", {2: "I", 19: "V1"}), "UTC", None)
    assert mapped.error is not None and (mapped.error.location, mapped.error.code) == ("EVN^1^6", "101")
    assert "PV1-45" in mapped.error.message


# --- Real messages that were refused (point 13) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "disposition_"), [("generic_A03", "other"), ("generic_A03_death_3", "expired")]
)
def test_a_discharge_given_to_the_minute_is_not_before_an_admission_in_that_minute(
    name: str, disposition_: str
) -> None:
    """PV1-45 `201302111000` (to the minute) and PV1-44 `20130211100052` (to the second) are the same
    minute: the discharge stands, its admission stated at the discharge's precision."""
    mapped = map_message(_message(hl7_sample(name)), LONDON, None)
    (event,) = mapped.events
    assert (event["time"], event["data"]["admitted_at"]) == ("2013-02-11T10:00:00+00:00",) * 2
    assert event["data"]["disposition"] == disposition_  # PV1-36 "Dead": a death discharge
    assert validate_events(mapped.events) == [validate_event(event)]  # the catalogue takes it


def test_a_death_indicator_makes_the_discharge_expired() -> None:
    message = _message(
        hl7_sample("generic_A03").replace("|||||||||||||N\nPD1", "||||||||||||20130211083456|Y\nPD1")
    )
    assert str(message["PID.F30"]) == "Y"
    (event,) = map_message(message, LONDON, None).events
    assert event["data"]["disposition"] == "expired"


@pytest.mark.parametrize(
    ("admitted", "discharged", "location"),
    [
        ("20130211100052", "201302110959", "PV1^1^45"),  # a minute before: before at any precision
        ("201302111001", "20130211100059", "PV1^1^45"),  # to the second, before the admission's minute
        ("20130211100052", "20130211100051", "PV1^1^45"),  # both to the second
    ],
)
def test_a_discharge_before_its_admission_is_an_error_naming_both_fields(
    admitted: str, discharged: str, location: str
) -> None:
    mapped = map_message(_adt("A03", {2: "I", 19: "V1", 44: admitted, 45: discharged}), "UTC", None)
    assert mapped.events == [] and mapped.error is not None
    assert (mapped.error.location, mapped.error.code) == (location, "207")
    assert mapped.error.message == (
        f"PV1-45 (discharge date/time) {discharged} is before PV1-44 (admit date/time) {admitted}"
    )


def test_an_admission_without_a_visit_number_is_keyed_by_the_account_number() -> None:
    """Wikipedia's A01 (a US feed's shape): PV1-19 empty, PID-18 `0105I30001^^^99DEF^AN`."""
    mapped = map_message(parsed(wikipedia_a01()), "America/Chicago", None)
    assert mapped.error is None
    (event,) = mapped.events
    assert event == {
        "id": "01052901:admitted:20060529T140000Z:3781e3d1",
        "source": "hl7v2-megareg",
        "type": "encounter.admitted",
        "time": "2006-05-29T09:00:00-05:00",  # PV1-44 without an offset: the tenant's local time
        "facility": "XYZHospC",
        "data": {
            "encounter_ref": "0105I30001",  # PID-18.1
            "patient_ref": "56782445",
            "encounter_class": "inpatient",
            "planned": False,
        },
    }
    assert mapped.locations["$.data.encounter_ref"].location == "PID^1^18"


def test_no_visit_number_and_no_account_number_is_an_error_naming_both() -> None:
    mapped = map_message(_adt("A01", {2: "I", 44: "202603010800"}), "UTC", None)
    assert mapped.error is not None and (mapped.error.location, mapped.error.code) == ("PV1^1^19", "101")
    assert mapped.error.message == (
        "no encounter: PV1-19 (visit number) and PID-18 (patient account number) are empty"
    )


@pytest.mark.parametrize("trigger", ["A01", "A03", "A08"])
def test_an_empty_patient_class_is_an_error_not_an_acceptance(trigger: str) -> None:
    """PV1-2 is required: a discharge without it is refused (AE), never answered AA and dropped."""
    message = _adt(trigger, {19: "V1", 44: "202603010800", 45: "202603020800"})
    mapped = map_message(message, "UTC", None)
    assert mapped.events == [] and mapped.note is None and mapped.error is not None
    assert (mapped.error.location, mapped.error.code, mapped.error.message) == (
        "PV1^1^2",
        "101",
        "PV1-2 (patient class) is empty",
    )


# --- Times that are not times (point 12) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "202603010800+2400",  # 24 h: no such offset
        "202603010800-2500",
        "202603010800+0060",  # 60 minutes
        "00010101000000+0100",  # before year 1 in UTC
        "99991231235900-0500",  # after year 9999 in UTC
    ],
)
def test_a_time_with_an_impossible_offset_is_a_data_type_error_naming_the_field(text: str) -> None:
    mapped = map_message(_adt("A01", {2: "I", 19: "V1", 44: text}), "UTC", None)
    assert mapped.events == [] and mapped.error is not None
    assert (mapped.error.location, mapped.error.code) == ("PV1^1^44", "102")
    assert mapped.error.message.startswith(f"PV1-44 (admit date/time) {text!r} is not a date/time")


def test_the_largest_offsets_that_exist_are_times() -> None:
    assert str(parse_time("202603010800+2359", ZoneInfo("UTC"))) == "2026-03-01 08:00:00+23:59"
    assert str(parse_time("202603010800-1200", ZoneInfo("UTC"))) == "2026-03-01 08:00:00-12:00"


def test_refusals_of_the_catalogue_name_the_hl7_field_and_their_table_0357_code() -> None:
    future = refusal(PV1_45, "time_in_future", "event time is more than 5 minutes in the future")
    assert future == Hl7Error(
        "PV1^1^45", "207", "PV1-45 (discharge date/time): event time is more than 5 minutes in the future"
    )
    assert (
        refusal(MSH_4, "facility_not_in_tenant", "facility 'X' is not a facility of tenant 't'").code == "204"
    )
    assert refusal(PV1_19, "string_too_long", "String should have at most 128 characters").code == "102"
    assert refusal(PV1_19, "something_else", "why").code == "207"
