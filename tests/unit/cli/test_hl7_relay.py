"""`vr hl7 relay` answers the sender as HL7 v2's original mode says it should act (docs/interop.md): the
platform's own ACK when it answers one; AE when the platform refused the message's content (sent again
as it is, it would be refused again); AR when the platform did not take it for any other reason (send
it again). The platform here is httpx's mock transport answering as ingest would."""

from __future__ import annotations

import httpx
import pytest

from tests.support.data import hl7_sample
from vr_cli.hl7_relay import Relay

MESSAGE = hl7_sample("generic_A01").replace("\n", "\r").strip()


def _relay(status: int, body: str = "", headers: dict[str, str] | None = None) -> Relay:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body, headers=headers or {})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://platform")
    return Relay(http, max_wait_s=0.0, report=lambda _: None)


def _segments(ack: str) -> dict[str, list[str]]:
    return {segment[:3]: segment.split("|") for segment in ack.split("\r") if segment}


async def test_the_platforms_own_ack_is_returned_as_it_is() -> None:
    platform_ack = "MSH|^~\\&|VR||EPIC|UCLH|20261207||ACK^A01^ACK|ACK31644|T|2.4\rMSA|AE|31644|why"
    ack = await _relay(200, platform_ack + "\r\n").forward(MESSAGE)
    assert ack == platform_ack


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_a_refusal_of_the_content_is_ae_do_not_send_again(status: int) -> None:
    problem = '{"title": "No messages", "detail": "the body holds no HL7 message (MSH)"}'
    relay = _relay(status, problem, {"content-type": "application/problem+json"})
    segments = _segments(await relay.forward(MESSAGE))
    assert segments["MSA"][1:3] == ["AE", "31644"]
    assert segments["MSA"][3] == f"the platform answered {status}: the body holds no HL7 message (MSH)"
    assert segments["ERR"][2:4] == ["MSH^1^10", "207^Application internal error^HL70357"]
    assert set(segments) == {"MSH", "MSA", "ERR"}  # no stray segment between MSA and ERR
    assert relay.counts.by_answer == {"AE": 1}


@pytest.mark.parametrize("status", [401, 403, 500, 502])
async def test_any_other_failure_is_ar_send_again(status: int) -> None:
    segments = _segments(await _relay(status, "{}").forward(MESSAGE))
    assert segments["MSA"][1:3] == ["AR", "31644"]


async def test_a_platform_that_stays_busy_is_ar_after_the_wait() -> None:
    relay = _relay(503, "{}", {"retry-after": "1"})
    segments = _segments(await relay.forward(MESSAGE))
    assert segments["MSA"][1:3] == ["AR", "31644"] and relay.counts.gave_up == 1


# A feed with its own delimiters (MSH-1 `#`, MSH-2 `%~\&`): its sender parses the ACK with them.
OWN_DELIMITERS = MESSAGE.replace("|", "#").replace("^", "%")


def _own_segments(ack: str) -> dict[str, list[str]]:
    return {segment[:3]: segment.split("#") for segment in ack.split("\r") if segment}


async def test_an_ack_made_here_uses_the_messages_own_delimiters() -> None:
    problem = '{"title": "Refused", "detail": "no #good"}'
    relay = _relay(422, problem, {"content-type": "application/problem+json"})
    segments = _own_segments(await relay.forward(OWN_DELIMITERS))
    assert segments["MSA"][1:4] == ["AE", "31644", "the platform answered 422: no \\F\\good"]
    assert segments["ERR"][2:4] == ["MSH%1%10", "207%Application internal error%HL70357"]
    assert relay.counts.by_answer == {"AE": 1}


async def test_the_platforms_ack_in_the_messages_delimiters_is_counted_by_its_code() -> None:
    platform_ack = "MSH#%~\\&#VR##EPIC#UCLH#20261207##ACK%A01%ACK#ACK31644#T#2.4\rMSA#AA#31644"
    relay = _relay(200, platform_ack)
    assert await relay.forward(OWN_DELIMITERS) == platform_ack
    assert relay.counts.by_answer == {"AA": 1}


async def test_a_header_too_short_to_answer_from_still_gets_its_control_id_back() -> None:
    """python-hl7 cannot build an ACK of an MSH without MSH-11 / MSH-12: the answer is made from what
    can be read of it — its delimiters and MSH-10."""
    short = "MSH#%~\\&#EPIC#UCLH#####ADT%A01#C7\rPID#1##M1"
    segments = _own_segments(await _relay(500, "{}").forward(short))
    assert segments["MSH"][1] == "%~\\&"
    assert segments["MSA"][1:3] == ["AR", "C7"]
