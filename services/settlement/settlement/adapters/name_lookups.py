"""Webhook hosts' names looked up on threads of their own, a few per tenant (docs/webhooks.md,
"Looking names up").

The system resolver (`getaddrinfo`) holds a thread until a name server answers or it gives up — about
30 s with common `resolv.conf` settings when none answers — and a thread cannot be cancelled: an attempt
that gives up at its deadline leaves the thread busy. So the look-ups run on a pool of their own (the
event loop's default pool serves the rest of the process and never waits behind a name server), and a
tenant's look-ups are counted for as long as their *threads* are busy, not as long as someone awaits
them: a tenant holds at most `per_tenant` threads, and one already looking a name up never takes the
last free thread, which stays for a tenant holding none. A look-up that may not start fails at once
(`NoLookupThread`): the attempt is retried on the schedule, the endpoint's creation is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from settlement.domain.webhooks import Address

PER_TENANT = 2  # threads one tenant's look-ups may hold: one name server that never answers is not more

GetAddrInfo = Callable[..., list[tuple[Any, ...]]]


class NoLookupThread(Exception):
    """The look-up may not start now: the message says why."""


def may_take_thread(holds: int, busy: int, threads: int, per_tenant: int) -> bool:
    """Whether a tenant holding `holds` of the `busy` threads (of `threads`) may take one more: never
    past its share, and never the last free one unless it holds none."""
    if holds >= per_tenant or busy >= threads:
        return False
    return holds == 0 or busy + 1 < threads


class NameLookups:
    """`await lookups(host, port, tenant)`: every address the system resolver gives for the name, in
    its order (the order to try them); none if it does not resolve. Raises NoLookupThread."""

    def __init__(self, *, threads: int, per_tenant: int = PER_TENANT, getaddrinfo: GetAddrInfo | None = None):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook-lookup")
        self._threads, self._per_tenant = threads, per_tenant
        self._getaddrinfo = getaddrinfo  # None: socket.getaddrinfo, read at each look-up
        self._lock = threading.Lock()  # the counts change on the loop and on the pool's threads
        self._held: Counter[str] = Counter()

    async def __call__(self, host: str, port: int, tenant: str) -> list[Address]:
        self._take(tenant)
        try:
            running = self._pool.submit(self._lookup, host, port)
        except RuntimeError:  # shut down
            self._release(tenant)
            raise NoLookupThread("name look-ups have stopped (shutting down)") from None
        # Released when the thread is done (or a look-up not yet started is cancelled): a caller that
        # gives up at its deadline does not free a thread still waiting for a name server.
        running.add_done_callback(lambda _: self._release(tenant))
        return await asyncio.wrap_future(running)

    def busy(self, tenant: str | None = None) -> int:
        """Threads busy with look-ups (of one tenant's hosts)."""
        with self._lock:
            return self._held[tenant] if tenant is not None else self._held.total()

    def close(self) -> None:
        """Starts no more look-ups; those under way end when their name servers answer or give up."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _take(self, tenant: str) -> None:
        with self._lock:
            holds, busy = self._held[tenant], self._held.total()
            if not may_take_thread(holds, busy, self._threads, self._per_tenant):
                raise NoLookupThread(_why_not(holds, busy, self._threads, self._per_tenant))
            self._held[tenant] += 1

    def _release(self, tenant: str) -> None:
        with self._lock:
            self._held[tenant] -= 1
            if self._held[tenant] <= 0:
                del self._held[tenant]

    def _lookup(self, host: str, port: int) -> list[Address]:
        getaddrinfo = self._getaddrinfo or socket.getaddrinfo
        try:
            found = getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))


def _why_not(holds: int, busy: int, threads: int, per_tenant: int) -> str:
    if holds >= per_tenant:
        return f"this tenant's earlier look-ups ({holds}) are still unanswered"
    if busy >= threads:
        return f"all {threads} look-up threads wait for name servers"
    return "the last free look-up thread is kept for tenants with none under way"
