"""HL7 v2 ADT → catalogue events, rule by rule (docs/interop.md), on public sample messages (UCLH's
Emap, tests/data/hl7v2/) and on small messages that isolate one field."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import hl7
import pytest

from ingest.domain.hl7v2 import acknowledgement, disposition, map_message, parse_time
from ingest.entrypoints.routes import split_messages
from tests.support.data import hl7_sample

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
        "id": "31644:admitted:20130211T100052Z",
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
    assert mapped.events == [] and mapped.rejected is None and "A02" in (mapped.note or "")


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


def test_messages_the_platform_does_not_take_are_rejected() -> None:
    orm = _message("MSH|^~\\&|EPIC|MAIN|||20260301080000||ORM^O01|X1|P|2.5\nPID|1||M1")
    assert map_message(orm, "UTC", None).rejected is not None
    a05 = _adt("A05", {2: "I", 19: "V1"})
    assert map_message(a05, "UTC", None).rejected is not None


def test_cancels_name_the_fact_they_cancel_by_its_time() -> None:
    (a11,) = map_message(_message(hl7_sample("CancelAdmit_02_A11")), LONDON, None).events
    assert (a11["type"], a11["id"], a11["time"]) == (
        "encounter.admission_cancelled",
        "31644:admission_cancelled:20130211T110052Z",
        "2013-02-11T12:05:52+00:00",  # EVN-2: when the cancel was recorded
    )
    assert a11["data"] == {
        "encounter_ref": "123412341234",
        "patient_ref": "40800000",
        "admitted_at": "2013-02-11T11:00:52+00:00",  # EVN-6: the admission it cancels
    }
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
    assert readmitted[0]["id"] == "31644:admitted:20130211T130052Z"


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
