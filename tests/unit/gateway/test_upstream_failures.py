"""A service the gateway cannot reach is a 503 with `Retry-After: 2` the client simply retries; only a
service that took the request and did not answer in time is a 504 (docs/api.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.entrypoints.proxy import UNAVAILABLE_RETRY_S, _read_raw, upstream_failure
from tests.support.waiting import exposed_metrics, metric_value
from vr_shared.web import Problem


def _count(upstream: str, kind: str) -> float:
    sample = f'vr_gateway_upstream_errors_total{{kind="{kind}",upstream="{upstream}"}}'
    return metric_value(exposed_metrics(), sample)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("no connection within the connect timeout"),
        httpx.PoolTimeout("no connection free in the pool"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
        httpx.WriteError("[Errno 32] Broken pipe"),
    ],
)
def test_a_service_that_cannot_be_reached_is_503_with_retry_after(error: httpx.HTTPError) -> None:
    before = _count("kpi-engine", "unreachable")
    problem = upstream_failure("kpi-engine", error)
    assert (problem.status, problem.title) == (503, "Service unavailable")
    assert problem.headers == {"Retry-After": "2"} and UNAVAILABLE_RETRY_S == 2
    assert problem.detail is not None and problem.detail.startswith("kpi-engine is unavailable")
    assert _count("kpi-engine", "unreachable") == before + 1


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("read timed out"), httpx.WriteTimeout("write timed out")]
)
def test_a_service_that_took_the_request_and_did_not_answer_in_time_is_504(error: httpx.HTTPError) -> None:
    before = _count("settlement", "timeout")
    problem = upstream_failure("settlement", error)
    assert (problem.status, problem.title) == (504, "Upstream timeout")
    assert "Retry-After" not in problem.headers
    assert _count("settlement", "timeout") == before + 1


class _BrokenOff(httpx.AsyncByteStream):
    """The first bytes of an answer, then the connection drops."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"accepted": '
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


async def test_an_answer_broken_off_before_the_headers_left_is_503_with_retry_after() -> None:
    response = httpx.Response(200, headers={"content-length": "40"}, stream=_BrokenOff())
    before = _count("ingest", "broken_response")
    with pytest.raises(Problem) as raised:
        await _read_raw(response, "ingest")
    assert (raised.value.status, raised.value.headers) == (503, {"Retry-After": "2"})
    assert raised.value.detail == "ingest broke off its answer; retry in 2 s"
    assert _count("ingest", "broken_response") == before + 1
