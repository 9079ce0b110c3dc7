"""What a sender writes into a field cannot cost the platform more than the message's own size, nor fail
a request, nor reach a log (docs/interop.md, "Escape sequences"); and the rules that keep a message's
facts apart and name what a cancel cancels: ids carry the stay, a class update needs its admission
time, a cancel needs its visit number, an A11 given to the second names the minute too."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import hl7
import pytest

from ingest.domain.er7 import Delimiters, Unreadable, header_of, unescaped
from ingest.domain.hl7v2 import acknowledgement, map_message
from ingest.domain.intake import IntakePolicy
from ingest.domain.pseudonyms import Pseudonymiser
from ingest.handlers import Intake, ingest_hl7, read_hl7
from tests.support.data import hl7_sample
from tests.support.hl7 import parsed
from vr_shared.events import EventDocument, Origin
from vr_shared.identity import Identity
from vr_shared.roles import Role

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CALLER = Identity("t", Role.PIPELINE, "key-1", frozenset({"MAIN"}), timezone="UTC")
LONDON = "Europe/London"


def _adt(
    trigger: str,
    pv1: dict[int, str],
    *,
    control_id: str = "C1",
    pid3: str = "MRN1^^^H^MR",
    pid18: str = "",
    evn6: str = "",
) -> str:
    fields = [""] * 46
    fields[0] = "PV1"
    for number, value in pv1.items():
        fields[number] = value
    pid = ["PID", "1", "", pid3] + [""] * 14 + [pid18]
    return (
        f"MSH|^~\\&|EPIC|MAIN|||20260301080000||ADT^{trigger}|{control_id}|P|2.5\r"
        f"EVN|{trigger}|20260301090000||||{evn6}\r"
        + "|".join(pid).rstrip("|")
        + "\r"
        + "|".join(fields).rstrip("|")
    )


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[EventDocument] = []

    async def publish(self, origin: Origin, documents: Sequence[EventDocument]) -> None:
        self.published.extend(documents)


async def _acks(*texts: str) -> tuple[list[list[str]], FakePublisher]:
    publisher = FakePublisher()
    intake = Intake(IntakePolicy(max_future_skew=timedelta(minutes=5)), Pseudonymiser(b"k" * 32), publisher)
    acks = await ingest_hl7(intake, read_hl7(list(texts), CALLER.timezone, None), CALLER, NOW)
    return [ack.split("\r") for ack in acks], publisher


def _segment(ack: list[str], name: str, separator: str = "|") -> list[str]:
    return next(s for s in ack if s.startswith(name)).split(separator)


# --- Escape sequences (point 1 of the review) ------------------------------------------------------------


def test_a_huge_repetition_count_in_a_formatting_escape_costs_nothing() -> None:
    """`\\.sp20000000\\` was expanded to 20 million characters (python-hl7's unescape, no bound); a
    formatting escape is a space whatever its count."""
    message = parsed(
        _adt("A03", {2: "I", 19: "V1", 36: "Home\\.sp20000000\\", 44: "202603010800", 45: "202603020800"})
    )
    tracemalloc.start()
    try:
        (event,) = map_message(message, "UTC", None).events
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert event["data"]["disposition"] == "home"
    assert peak < 1_000_000


@pytest.mark.parametrize("disposition", ["Home\\.spX\\", "Home\\Zlocal\\", "Home\\X4\\", "Home\\.br"])
def test_an_escape_the_platform_does_not_read_is_an_error_naming_its_field(disposition: str) -> None:
    """`\\.spX\\` raised ValueError out of the mapping (AR: sent again for ever); now AE 102 at PV1-36."""
    text = _adt("A03", {2: "I", 19: "V1", 36: disposition, 44: "202603010800", 45: "202603020800"})
    mapped = map_message(parsed(text), "UTC", None)
    assert mapped.events == [] and mapped.error is not None
    assert (mapped.error.location, mapped.error.code) == ("PV1^1^36", "102")
    assert mapped.error.message.startswith("PV1-36 (discharge disposition): ")


def test_escaped_delimiters_and_hex_are_read_as_what_they_stand_for() -> None:
    text = _adt("A01", {2: "I", 19: "V\\T\\1\\X41\\", 44: "202603010800"}, pid3="M\\S\\9\\.br\\x")
    (event,) = map_message(parsed(text), "UTC", None).events
    assert event["data"]["encounter_ref"] == "V&1A"
    assert event["data"]["patient_ref"] == "M^9 x"


def test_unescaping_is_bounded_by_the_text() -> None:
    delimiters = Delimiters()
    assert unescaped("a\\.in999999999\\b\\.fi\\\\H\\c\\N\\", delimiters) == "a bc"
    assert unescaped("\\F\\\\R\\\\E\\", delimiters) == "|~\\"
    with pytest.raises(Unreadable):
        unescaped("unterminated\\F", delimiters)


async def test_a_bad_escape_in_the_control_id_is_answered_for_its_message_alone() -> None:
    """MSH-10 `A\\.brQ\\1` made the error branch read the control id again and fail: a 500 for the
    request. The control id is read once, as sent, and echoed as sent."""
    acks, publisher = await _acks(
        _adt("A01", {2: "I", 19: "V1", 44: "202603010800"}, control_id="A\\.brQ\\1"),
        _adt("A01", {2: "I", 19: "V2", 44: "202603010800"}, control_id="GOOD"),
    )
    assert [_segment(a, "MSA")[1:3] for a in acks] == [["AA", "A\\.brQ\\1"], ["AA", "GOOD"]]
    assert len(publisher.published) == 2


async def test_no_field_content_reaches_a_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _acks(_adt("A03", {2: "I", 19: "V1", 36: "SECRET\\Zx\\", 44: "202603010800", 45: "202603020800"}))
    hl7.parse("MSH|^~\\&|A\rPID|1||SECRET2").unescape("SECRET2\\Zbad\\")  # python-hl7's own, silenced
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()]


async def test_a_text_python_hl7_cannot_parse_is_an_error_of_its_message_alone() -> None:
    """python-hl7 raises AssertionError on an MSH whose field separator is a segment end: it was a 500."""
    acks, _ = await _acks("MSH\r^~\\&|EPIC|MAIN", _adt("A01", {2: "I", 19: "V1", 44: "202603010800"}))
    assert [_segment(a, "MSA")[1] for a in acks] == ["AE", "AA"]
    assert _segment(acks[0], "ERR")[2] == "MSH^1^1"


# --- ACKs in the message's own delimiters (point 6) ------------------------------------------------------


def _own(text: str) -> str:
    """The message with MSH-1 `#` and components `%`, as some feeds are configured."""
    return text.replace("|", "#").replace("^", "%")


async def test_an_ack_is_written_with_the_messages_own_delimiters() -> None:
    (ack,), _ = await _acks(_own(_adt("A01", {2: "I", 19: "V1", 44: "2026030108#0"})))
    assert ack[0].startswith("MSH#%~\\&#VR#")
    assert _segment(ack, "MSA", "#")[1:3] == ["AE", "C1"]
    err = _segment(ack, "ERR", "#")
    assert err[2:5] == ["PV1%1%44", "102%Data type error%HL70357", "E"]
    assert err[8] == "PV1-44 (admit date/time) '2026030108' is not a date/time (YYYYMMDDHHMM[SS][+/-ZZZZ])"


async def test_a_header_too_short_to_answer_from_still_gets_its_control_id_and_delimiters() -> None:
    (ack,), _ = await _acks("MSH#%~\\&#EPIC#MAIN#####ADT%A01#C7")  # no MSH-11, MSH-12: no python-hl7 ACK
    assert _segment(ack, "MSA", "#")[1:3] == ["AE", "C7"]
    assert _segment(ack, "ERR", "#")[3] == "101%Required field missing%HL70357"


def test_the_header_of_an_unparsed_text_is_read_as_far_as_it_goes() -> None:
    delimiters, control_id = header_of("MSH#%~\\&#A#B#####ADT%A01#C9#P\rPID")
    assert (delimiters.field, delimiters.component, control_id) == ("#", "%", "C9")
    assert header_of("MSH\r^~\\&") == (Delimiters(), "")


def test_an_ack_text_escapes_the_messages_delimiters() -> None:
    message = parsed(_own(_adt("A01", {2: "I", 19: "V1", 44: "202603010800"})))
    ack = acknowledgement(message, "AA", text="a#b%c").split("\r")
    assert _segment(ack, "MSA", "#")[3] == "a\\F\\b\\S\\c"


# --- Ids keep stays apart (point 5) -----------------------------------------------------------------------


def test_a_reused_control_id_keeps_two_patients_admissions_in_one_minute_apart() -> None:
    first = map_message(parsed(_adt("A01", {2: "I", 19: "V1", 44: "202603010800"})), "UTC", None)
    second = map_message(
        parsed(_adt("A01", {2: "I", 19: "V2", 44: "202603010800"}, pid3="MRN2")), "UTC", None
    )
    again = map_message(parsed(_adt("A01", {2: "I", 19: "V1", 44: "202603010800"})), "UTC", None)
    assert first.events[0]["id"] != second.events[0]["id"]
    assert first.events[0]["id"] == again.events[0]["id"] == "C1:admitted:20260301T080000Z:0eb2491a"


async def test_the_second_patient_in_the_same_minute_is_stored_not_deduplicated() -> None:
    _, publisher = await _acks(
        _adt("A01", {2: "I", 19: "V1", 44: "202603010800"}),
        _adt("A01", {2: "I", 19: "V2", 44: "202603010800"}, pid3="MRN2"),
    )
    assert len({d["id"] for d in publisher.published}) == 2


# --- Class updates need PV1-44 (point 4) -----------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["A06", "A07", "A08"])
def test_a_class_update_without_its_admission_time_is_an_error_not_a_new_admission(trigger: str) -> None:
    """EVN-6 of an update is when the update happened: timed by it, the update was an admission that
    never was."""
    text = _adt(trigger, {2: "I", 19: "V1"}, evn6="20260301090000")
    mapped = map_message(parsed(text), "UTC", None)
    assert mapped.events == [] and mapped.error is not None
    assert (mapped.error.location, mapped.error.code) == ("PV1^1^44", "101")


def test_an_admission_without_pv1_44_is_still_timed_when_it_occurred() -> None:
    (event,) = map_message(parsed(_adt("A01", {2: "I", 19: "V1"}, evn6="20260301070000")), "UTC", None).events
    assert event["time"] == "2026-03-01T07:00:00+00:00"


# --- An A11 to the second names the minute too (point 3) -------------------------------------------------


def test_a_cancelled_admission_given_to_the_second_names_the_minute_its_discharge_states() -> None:
    """Emap's generic A03 states its admission (PV1-44 10:00:52) at its PV1-45's minute, 10:00: the A11
    naming 10:00:52 names 10:00 too, so the engine's cancelled stay takes that discharge."""
    (discharge,) = map_message(parsed(hl7_sample("generic_A03")), LONDON, None).events
    a11 = hl7_sample("CancelAdmit_02_A11").replace("20130211110052", "20130211100052")
    cancels = map_message(parsed(a11), LONDON, None).events
    assert [c["data"]["admitted_at"] for c in cancels] == [
        "2013-02-11T10:00:00+00:00",
        "2013-02-11T10:00:52+00:00",
    ]
    assert discharge["data"]["admitted_at"] == cancels[0]["data"]["admitted_at"]
    assert len({c["id"] for c in cancels}) == 2


def test_a_discharge_cancel_names_only_the_times_it_gives() -> None:
    text = _adt("A13", {2: "I", 19: "V1", 45: "20260302080030"}, evn6="")
    (cancel,) = map_message(parsed(text), "UTC", None).events
    assert cancel["data"]["discharged_at"] == "2026-03-02T08:00:30+00:00"


# --- A cancel names its visit by PV1-19 (point 8) --------------------------------------------------------


@pytest.mark.parametrize("trigger", ["A11", "A13"])
def test_a_cancel_without_a_visit_number_is_an_error_even_with_an_account_number(trigger: str) -> None:
    """Its A01 may have named the visit by PV1-19: by PID-18 it would cancel nothing, answered AA."""
    text = _adt(trigger, {2: "I", 44: "202603010800", 45: "202603020800"}, pid18="ACC1")
    mapped = map_message(parsed(text), "UTC", None)
    assert mapped.events == [] and mapped.error is not None
    assert (mapped.error.location, mapped.error.code) == ("PV1^1^19", "101")


async def test_a_message_type_without_components_is_answered_not_a_500() -> None:
    """python-hl7's ACK reads MSH-9.2 and raised TypeError on an MSH-9 without components."""
    text = _adt("A01", {2: "I", 19: "V1", 44: "202603010800"}, control_id="C9").replace("ADT^A01", "ADTA01")
    (ack,), publisher = await _acks(text)
    assert _segment(ack, "MSA")[1:3] == ["AE", "C9"]
    assert _segment(ack, "ERR")[3] == "200^Unsupported message type^HL70357"
    assert publisher.published == []
