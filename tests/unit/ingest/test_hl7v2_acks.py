"""The ACK an interface engine acts on (docs/interop.md, "What the sender does with each answer"), for each
message of a request, through ingest's HL7 handlers with a publisher that keeps what it is given. HL7 v2
original mode: AA accepted; AE an error in the message — sent again as it is, it would be refused again;
AR rejected for a reason unrelated to its content — send it again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import hl7
import pytest

from ingest import handlers
from ingest.domain.hl7v2 import Hl7Events
from ingest.domain.intake import IntakePolicy
from ingest.domain.pseudonyms import Pseudonymiser
from ingest.handlers import Intake, ingest_hl7, read_hl7
from tests.support.data import hl7_sample
from vr_shared.events import EventDocument, Origin
from vr_shared.identity import Identity
from vr_shared.roles import Role

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
STAY = "0eb2491a"  # the tag of the stay (V1, MRN1) in event ids
CALLER = Identity("uclh", Role.PIPELINE, "key-1", frozenset({"UCLH"}), timezone="Europe/London")


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[EventDocument] = []

    async def publish(self, origin: Origin, documents: Sequence[EventDocument]) -> None:
        self.published.extend(documents)


def _intake() -> tuple[Intake, FakePublisher]:
    publisher = FakePublisher()
    policy = IntakePolicy(max_future_skew=timedelta(minutes=5))
    return Intake(policy, Pseudonymiser(b"k" * 32), publisher), publisher


async def _acks(*texts: str, facility: str | None = None) -> tuple[list[list[str]], FakePublisher]:
    intake, publisher = _intake()
    messages = read_hl7([t.replace("\n", "\r").strip() for t in texts], CALLER.timezone, facility)
    acks = await ingest_hl7(intake, messages, CALLER, NOW)
    return [ack.split("\r") for ack in acks], publisher


def _msa(ack: list[str]) -> list[str]:
    return next(s for s in ack if s.startswith("MSA|")).split("|")


def _err(ack: list[str]) -> list[str]:
    return next(s for s in ack if s.startswith("ERR|")).split("|")


def _a01(pv1_44: str, control_id: str = "C1", msh4: str = "UCLH") -> str:
    pv1 = ["PV1", "1", "I"] + [""] * 16 + ["V1"] + [""] * 24 + [pv1_44]
    return (
        f"MSH|^~\\&|EPIC|{msh4}|||20260301080000||ADT^A01|{control_id}|P|2.5\r"
        f"EVN|A01|20260301080000\rPID|1||MRN1^^^H^MR\r" + "|".join(pv1)
    )


async def test_a_time_with_a_24_hour_offset_is_an_error_of_its_message_alone() -> None:
    """It was a 500 for the whole request (the relay answered AR, and an engine retried for ever)."""
    acks, publisher = await _acks(_a01("202603010800", "GOOD"), _a01("202603010800+2400", "BAD"))
    assert [_msa(a)[1:3] for a in acks] == [["AA", "GOOD"], ["AE", "BAD"]]
    assert _err(acks[1])[2:5] == ["PV1^1^44", "102^Data type error^HL70357", "E"]
    assert _err(acks[1])[8].startswith("PV1-44 (admit date/time) '202603010800+2400' is not a date/time")
    assert [d["id"] for d in publisher.published] == [f"GOOD:admitted:20260301T080000Z:{STAY}"]


async def test_a_time_in_the_future_is_a_rule_of_the_platform_not_a_data_type_error() -> None:
    (ack,), publisher = await _acks(_a01("202612081200", "LATER"))
    assert _msa(ack)[1] == "AE" and publisher.published == []
    assert _err(ack)[2:4] == ["PV1^1^44", "207^Application internal error^HL70357"]
    assert _err(ack)[8] == "PV1-44 (admit date/time): event time is more than 5 minutes in the future"


async def test_a_discharge_in_the_future_names_the_field_that_timed_it() -> None:
    """No PV1-45: the discharge is timed at EVN-6, so EVN-6 is the field named."""
    a03 = (
        "MSH|^~\\&|EPIC|UCLH|||20260301080000||ADT^A03|D1|P|2.5\rEVN|A03|20260301080000||||202612081200\r"
        "PID|1||MRN1^^^H^MR\rPV1|1|I" + "|" * 17 + "V1" + "|" * 25 + "202603010800"
    )
    (ack,), _ = await _acks(a03)
    assert _err(ack)[2:4] == ["EVN^1^6", "207^Application internal error^HL70357"]
    assert _err(ack)[8].startswith("EVN-6 (event occurred): ")


async def test_an_unknown_facility_is_an_error_of_the_message_naming_where_it_was_read() -> None:
    """The facility is the message's content (MSH-4, or the request's ?facility=): AE 204, not AR — an
    AR would hold the sender's queue, re-sending the same message for ever."""
    (from_msh,), _ = await _acks(_a01("202603010800", msh4="ELSEWHERE"))
    assert _msa(from_msh)[1] == "AE"
    assert _err(from_msh)[2:4] == ["MSH^1^4", "204^Unknown key identifier^HL70357"]
    assert _err(from_msh)[8].startswith("MSH-4 (sending facility): facility 'ELSEWHERE' is not a facility")
    (from_request,), _ = await _acks(_a01("202603010800"), facility="nowhere")
    assert _err(from_request)[8].startswith("the facility of the request (?facility=): facility 'nowhere'")


async def test_what_the_platform_does_not_use_never_holds_a_queue() -> None:
    """A transfer, a pre-admission, an outpatient: AA with a note (MSA-3), nothing stored."""
    a05 = _a01("202603010800", "PRE").replace("ADT^A01", "ADT^A05").replace("EVN|A01", "EVN|A05")
    acks, publisher = await _acks(hl7_sample("CancelAdmit_04_A02"), a05, hl7_sample("generic_A04"))
    assert [_msa(a)[1:4] for a in acks] == [
        ["AA", "31644", "ADT A02 states nothing the platform measures"],
        ["AA", "PRE", "ADT A05 states nothing the platform measures"],
        ["AA", "31644", "patient class 'O' is not measured"],
    ]
    assert publisher.published == []


async def test_a_message_that_is_not_adt_or_not_er7_is_an_error_not_a_rejection() -> None:
    orm = "MSH|^~\\&|EPIC|UCLH|||20260301080000||ORM^O01|O1|P|2.5\rPID|1||M1"
    acks, _ = await _acks(orm, "this is not HL7", "MSH|^~\\&|EPIC")
    assert [_msa(a)[1] for a in acks] == ["AE", "AE", "AE"]
    assert _err(acks[0])[2:4] == ["MSH^1^9", "200^Unsupported message type^HL70357"]
    assert _err(acks[1])[2:4] == ["MSH^1^1", "102^Data type error^HL70357"]


async def test_a_fault_of_the_mapping_is_ae_for_its_message_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapping that fails on a message fails on it every time: AE 207 (do not send it again as it
    is — the engine keeps it as errored and its queue moves on), never AR, which had it sent for ever.
    The request's other messages are answered as they deserve, and the log names no field content."""
    real = handlers.map_message

    def failing_on_bad(message: hl7.Message, zone: str, facility: str | None) -> Hl7Events:
        if "|BAD|" in str(message):
            raise RuntimeError("a bug near MRN1")
        return real(message, zone, facility)

    monkeypatch.setattr(handlers, "map_message", failing_on_bad)
    acks, publisher = await _acks(_a01("202603010800", "BAD"), _a01("202603010800", "GOOD"))
    assert [_msa(a)[1:3] for a in acks] == [["AE", "BAD"], ["AA", "GOOD"]]
    assert _err(acks[0])[2:4] == ["MSH^1^10", "207^Application internal error^HL70357"]
    assert len(publisher.published) == 1
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "MRN1" not in logged


async def test_the_broker_away_is_still_ar_send_again() -> None:
    """AR stays for what sending the same message again cures: the platform could not store it now."""
    messages = read_hl7([_a01("202603010800", "LATER")], CALLER.timezone, None)
    (ack,) = handlers.broker_unavailable_acks(messages)
    assert _msa(ack.split("\r"))[1:3] == ["AR", "LATER"]
