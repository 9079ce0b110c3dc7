"""What the gateway answers when a service did not (docs/api.md, "Try again later"): 503 with
`Retry-After: 2` when the request never reached the service, or when the connection broke and sending
the request again cannot act twice; 502 "check before retrying" when it broke and the service may have
acted; 504 for a service that took the request and did not answer in time; 502, logged, for any other
error of the HTTP client — a bug that no retry cures."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.domain.routes import match
from gateway.entrypoints.proxy import UNAVAILABLE_RETRY_S, _read_raw, repeatable, upstream_failure
from tests.support.waiting import exposed_metrics, metric_value
from vr_shared.web import Problem

MAY_HAVE_ACTED = "it may have acted on the request — check before retrying"


def _count(upstream: str, kind: str) -> float:
    sample = f'vr_gateway_upstream_errors_total{{kind="{kind}",upstream="{upstream}"}}'
    return metric_value(exposed_metrics(), sample)


def _assert_retry(problem: Problem, upstream: str) -> None:
    assert (problem.status, problem.title) == (503, "Service unavailable")
    assert problem.headers == {"Retry-After": "2"} and UNAVAILABLE_RETRY_S == 2
    assert problem.detail is not None and problem.detail.startswith(f"{upstream} is unavailable")


NO_CONNECTION = [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectTimeout("no connection within the connect timeout"),
    httpx.PoolTimeout("no connection free in the pool"),
]
BROKEN_CONNECTION = [
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadError("[Errno 104] Connection reset by peer"),
    httpx.WriteError("[Errno 32] Broken pipe"),
]


@pytest.mark.parametrize("error", NO_CONNECTION)
@pytest.mark.parametrize("retry_safe", [True, False])
def test_a_request_that_never_reached_the_service_is_503_whatever_its_method(
    error: httpx.HTTPError, retry_safe: bool
) -> None:
    before = _count("settlement", "unreachable")
    _assert_retry(upstream_failure("settlement", error, retry_safe=retry_safe), "settlement")
    assert _count("settlement", "unreachable") == before + 1


@pytest.mark.parametrize("error", BROKEN_CONNECTION)
def test_a_broken_connection_is_503_when_the_request_may_be_sent_again(error: httpx.HTTPError) -> None:
    before = _count("kpi-engine", "unreachable")
    _assert_retry(upstream_failure("kpi-engine", error, retry_safe=True), "kpi-engine")
    assert _count("kpi-engine", "unreachable") == before + 1


@pytest.mark.parametrize("error", BROKEN_CONNECTION)
def test_a_broken_connection_is_502_when_the_service_may_have_acted(error: httpx.HTTPError) -> None:
    problem = upstream_failure("settlement", error, retry_safe=False)
    assert (problem.status, problem.title) == (502, "Bad gateway")
    assert "Retry-After" not in problem.headers
    assert problem.detail == f"settlement broke off ({type(error).__name__}); {MAY_HAVE_ACTED}"


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("read timed out"), httpx.WriteTimeout("write timed out")]
)
def test_a_service_that_took_the_request_and_did_not_answer_in_time_is_504(error: httpx.HTTPError) -> None:
    before = _count("settlement", "timeout")
    problem = upstream_failure("settlement", error, retry_safe=True)
    assert (problem.status, problem.title) == (504, "Upstream timeout")
    assert "Retry-After" not in problem.headers
    assert _count("settlement", "timeout") == before + 1


@pytest.mark.parametrize(
    "error",
    [
        httpx.LocalProtocolError("Illegal header value b'\\n'"),
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
        httpx.DecodingError("Error -3 while decompressing data"),
        httpx.TooManyRedirects("Exceeded maximum allowed redirects."),
        httpx.ProxyError("the proxy refused"),
        httpx.CloseError("closing the connection failed"),
    ],
)
@pytest.mark.parametrize("retry_safe", [True, False])
def test_any_other_client_error_is_a_502_that_is_logged_not_a_retry(
    error: httpx.HTTPError, retry_safe: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug of ours answers the same each time: a client told to retry would retry forever."""
    before = _count("ingest", "error")
    with caplog.at_level(logging.ERROR, logger="gateway.entrypoints.proxy"):
        problem = upstream_failure("ingest", error, retry_safe=retry_safe)
    assert (problem.status, problem.title) == (502, "Bad gateway")
    assert "Retry-After" not in problem.headers
    assert problem.detail == "the request to ingest failed; the error was logged"
    assert _count("ingest", "error") == before + 1
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [error]


@pytest.mark.parametrize(
    ("method", "path", "safe"),
    [
        ("GET", "/v1/kpis", True),
        ("GET", "/v1/contracts/c1", True),
        ("PUT", "/v1/contracts/c1", True),
        ("PUT", "/v1/contracts/c1/periods/2026-Q1/inputs", True),
        ("DELETE", "/v1/webhook-endpoints/w1", True),
        ("POST", "/v1/kpis/readings", True),  # a query: nothing is written
        ("POST", "/v1/contracts:simulate", True),  # nothing is stored
        ("POST", "/v1/events", True),  # an event counts once by (source, id)
        ("POST", "/v1/hl7v2", True),
        ("POST", "/v1/fhir", True),
        ("POST", "/v1/contracts/c1/settlements/2026-Q1/finalize", True),  # a repeat: the same statement
        ("POST", "/v1/contracts/c1/settlements/2026-Q1/reconcile", True),  # a repeat books nothing more
        ("POST", "/v1/webhook-endpoints/w1/enable", True),
        ("POST", "/v1/contracts", False),
        ("POST", "/v1/webhook-endpoints", False),  # a second endpoint
        ("POST", "/v1/webhook-endpoints/w1/rotate-secret", False),  # the secret rotated twice
    ],
)
def test_only_requests_that_cannot_act_twice_are_repeatable(method: str, path: str, safe: bool) -> None:
    route, _ = match(method, path)
    assert route is not None
    assert repeatable(route) is safe


class _BrokenOff(httpx.AsyncByteStream):
    """The first bytes of an answer, then the connection drops."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"accepted": '
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class _Stalled(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"accepted": '
        raise httpx.ReadTimeout("the rest of the body did not come in time")


def _answer(stream: httpx.AsyncByteStream) -> httpx.Response:
    return httpx.Response(200, headers={"content-length": "40"}, stream=stream)


async def test_an_answer_broken_off_before_the_headers_left_is_503_when_a_retry_is_safe() -> None:
    before = _count("ingest", "broken_response")
    with pytest.raises(Problem) as raised:
        await _read_raw(_answer(_BrokenOff()), "ingest", retry_safe=True)
    assert (raised.value.status, raised.value.headers) == (503, {"Retry-After": "2"})
    assert raised.value.detail == "ingest broke off its answer; retry in 2 s"
    assert _count("ingest", "broken_response") == before + 1


async def test_an_answer_broken_off_is_502_when_the_service_acted_and_a_retry_is_not_safe() -> None:
    """The service answered, so it acted: a finalize or a new webhook endpoint must be checked first."""
    with pytest.raises(Problem) as raised:
        await _read_raw(_answer(_BrokenOff()), "settlement", retry_safe=False)
    assert raised.value.status == 502 and "Retry-After" not in raised.value.headers
    assert raised.value.detail == f"settlement broke off its answer; {MAY_HAVE_ACTED}"


async def test_an_answer_that_stalls_before_the_headers_left_is_504() -> None:
    with pytest.raises(Problem) as raised:
        await _read_raw(_answer(_Stalled()), "kpi-engine", retry_safe=True)
    assert (raised.value.status, raised.value.title) == (504, "Upstream timeout")
