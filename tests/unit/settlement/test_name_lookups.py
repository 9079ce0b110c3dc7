"""Webhook hosts' name look-ups with a name server that never answers (docs/webhooks.md, "Looking names
up"): the look-ups run on threads of their own, a tenant's hold at most its share of them for as long as
the threads wait — not as long as a caller does — the last free thread is kept for a tenant with none
under way, and an endpoint's creation and an attempt end in time, saying why."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from settlement.adapters.name_lookups import NameLookups, NoLookupThread, may_take_thread
from settlement.adapters.webhook_sender import AddressCheck, WebhookSender
from settlement.adapters.webhooks import DueDelivery
from settlement.domain.webhooks import Address, new_secret
from tests.support.waiting import eventually

NEVER_ANSWERS = "hooks.silent-dns.test"  # its name server never answers
ANSWERS = "hooks.billing.test"
PUBLIC = "93.184.216.34"


class SilentNameServer:
    """getaddrinfo as the system resolver behaves when a name's servers never answer: the thread waits
    (until the test ends, so no thread outlives it); other names answer at once."""

    def __init__(self) -> None:
        self._answer = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0
        self.threads: list[str] = []  # the thread each look-up ran on

    def getaddrinfo(self, host: str, port: int, *_: Any, **__: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            self.threads.append(threading.current_thread().name)
        if host == NEVER_ANSWERS:
            with self._lock:
                self.waiting += 1
            self._answer.wait()
            with self._lock:
                self.waiting -= 1
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]

    async def threads_waiting(self, count: int) -> None:
        async def waiting() -> int:
            return self.waiting

        await eventually(waiting, lambda n: n == count, timeout_s=10)

    def answer(self) -> None:
        self._answer.set()


@pytest.fixture
def silent() -> Iterator[SilentNameServer]:
    server = SilentNameServer()
    yield server
    server.answer()  # the waiting threads end with the test


def _due(url: str, tenant: str) -> DueDelivery:
    return DueDelivery(1, "we_test", tenant, url, (new_secret(),), "evt_1", {"data": {}}, 0)


async def _all_done(lookups: NameLookups) -> None:
    async def busy() -> int:
        return lookups.busy()

    await eventually(busy, lambda n: n == 0, timeout_s=10)


async def test_a_tenants_silent_name_holds_only_its_share_of_threads_and_other_tenants_still_resolve(
    silent: SilentNameServer,
) -> None:
    lookups = NameLookups(threads=4, per_tenant=2, getaddrinfo=silent.getaddrinfo)
    stuck = [asyncio.create_task(lookups(NEVER_ANSWERS, 443, "t-silent")) for _ in range(2)]
    await silent.threads_waiting(2)

    with pytest.raises(NoLookupThread, match=r"^this tenant's earlier look-ups \(2\) are still unanswered$"):
        await lookups(NEVER_ANSWERS, 443, "t-silent")
    assert await asyncio.wait_for(lookups(ANSWERS, 443, "t-other"), 5) == [ipaddress.ip_address(PUBLIC)]

    # The silent tenant's callers give up at their deadline; the threads still wait, and still count.
    for waiter in stuck:
        waiter.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    assert lookups.busy("t-silent") == 2 and silent.waiting == 2
    with pytest.raises(NoLookupThread):
        await lookups(ANSWERS, 443, "t-silent")

    silent.answer()  # the resolver gives up at last: the threads are free again
    await _all_done(lookups)
    assert await lookups(ANSWERS, 443, "t-silent") == [ipaddress.ip_address(PUBLIC)]
    assert await lookups(NEVER_ANSWERS, 443, "t-silent") == []  # it does not resolve
    lookups.close()


async def test_a_tenant_already_looking_up_never_takes_the_last_free_thread(silent: SilentNameServer) -> None:
    lookups = NameLookups(threads=3, per_tenant=2, getaddrinfo=silent.getaddrinfo)
    waiters = [asyncio.create_task(lookups(NEVER_ANSWERS, 443, tenant)) for tenant in ("t-a", "t-b")]
    await silent.threads_waiting(2)

    with pytest.raises(NoLookupThread, match="the last free look-up thread is kept for tenants with none"):
        await lookups(ANSWERS, 443, "t-a")
    waiters.append(asyncio.create_task(lookups(NEVER_ANSWERS, 443, "t-c")))  # holds none: takes it
    await silent.threads_waiting(3)
    with pytest.raises(NoLookupThread, match=r"^all 3 look-up threads wait for name servers$"):
        await lookups(ANSWERS, 443, "t-d")

    silent.answer()
    assert await asyncio.gather(*waiters) == [[], [], []]
    await _all_done(lookups)
    lookups.close()


async def test_look_ups_never_run_on_the_event_loops_default_threads(silent: SilentNameServer) -> None:
    """The default pool serves the rest of the process: a silent name server must never hold it."""
    lookups = NameLookups(threads=2, getaddrinfo=silent.getaddrinfo)
    waiter = asyncio.create_task(lookups(NEVER_ANSWERS, 443, "t-silent"))
    await silent.threads_waiting(1)
    await lookups(ANSWERS, 443, "t-other")

    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.run_in_executor(None, lambda: "ran"), 5) == "ran"
    assert len(silent.threads) == 2
    assert all(name.startswith("webhook-lookup") for name in silent.threads), silent.threads
    silent.answer()
    await waiter
    lookups.close()


@pytest.mark.parametrize(
    ("holds", "busy", "may"),
    [
        (0, 0, True),
        (0, 7, True),  # the last free thread: to a tenant holding none
        (1, 7, False),  # … never to one already looking up
        (1, 6, True),
        (2, 2, False),  # its share
        (0, 8, False),  # none free
    ],
)
def test_who_may_take_a_look_up_thread(holds: int, busy: int, may: bool) -> None:
    assert may_take_thread(holds, busy, threads=8, per_tenant=2) is may


async def never_answers(host: str, port: int, tenant: str) -> list[Address]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_an_endpoint_whose_name_never_resolves_is_refused_once_the_lookup_timeout_passes() -> None:
    check = AddressCheck((), never_answers, lookup_timeout_s=0.05)
    assert await check.refusal(f"https://{NEVER_ANSWERS}/hooks", "t-a") == (
        "the host could not be resolved in time (0.05 s): check its DNS"
    )


async def test_an_endpoint_whose_tenant_has_look_ups_still_unanswered_is_refused_saying_so(
    silent: SilentNameServer,
) -> None:
    lookups = NameLookups(threads=4, per_tenant=1, getaddrinfo=silent.getaddrinfo)
    check = AddressCheck((), lookups, lookup_timeout_s=0.05)
    assert (await check.refusal(f"https://{NEVER_ANSWERS}/hooks", "t-a") or "").startswith(
        "the host could not be resolved in time"
    )
    assert await check.refusal(f"https://{ANSWERS}/hooks", "t-a") == (
        "the host could not be looked up now: this tenant's earlier look-ups (1) are still unanswered; "
        "try again in a minute"
    )
    assert await check.refusal(f"https://{ANSWERS}/hooks", "t-b") is None
    silent.answer()
    await _all_done(lookups)
    lookups.close()


async def test_an_attempt_to_a_name_that_never_resolves_ends_at_its_deadline(
    silent: SilentNameServer,
) -> None:
    lookups = NameLookups(threads=4, per_tenant=1, getaddrinfo=silent.getaddrinfo)
    async with httpx.AsyncClient(trust_env=False) as http:
        sender = WebhookSender(http, AddressCheck((), lookups, lookup_timeout_s=5), deadline_s=0.1)

        timed_out = await sender.send(_due(f"https://{NEVER_ANSWERS}/hooks", "t-a"))
        held_back = await sender.send(_due(f"https://{ANSWERS}/hooks", "t-a"))

    assert (timed_out.ok, timed_out.error) == (False, "timed out (the attempt's deadline is 0.1 s)")
    assert (held_back.ok, held_back.status_code) == (False, None)
    assert held_back.error == "not looked up: this tenant's earlier look-ups (1) are still unanswered"
    silent.answer()
    await _all_done(lookups)
    lookups.close()
