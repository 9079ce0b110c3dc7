"""A vendor's billing system: a webhook receiver on 127.0.0.1 that verifies every delivery with the
`standardwebhooks` package (the specification's reference library) and records its id — and that is
down part of the time, in seeded windows: closed (the port refuses connections) or answering 503.

A plain asyncio HTTP/1.1 server: one request per connection (the sender keeps none alive), so closing
the listening socket is a receiver that is really gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack.soak.checks import Delivery
from devstack.soak.timing import sleep_until

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Window:
    start: float  # seconds after the soak's start
    end: float
    mode: str  # "closed" or "503"


def down_windows(seed: int, duration_s: float) -> list[Window]:
    """Up 20–60 s, then down 10–30 s (closed or 503), and so on until `duration_s`: seeded."""
    rng = random.Random(seed)
    windows, at = [], rng.uniform(20, 60)
    while at < duration_s:
        length = rng.uniform(10, 30)
        windows.append(
            Window(round(at, 1), round(min(at + length, duration_s), 1), rng.choice(("closed", "503")))
        )
        at += length + rng.uniform(20, 60)
    return windows


@dataclass
class Receiver:
    port: int
    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    unverified: int = 0
    refused: int = 0  # attempts answered 503 while down
    answering_503: bool = False
    _server: asyncio.Server | None = None

    async def open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def follow(self, windows: list[Window], now: Callable[[], float], stop: asyncio.Event) -> None:
        """Be down in each window, up otherwise; up for good once `stop` is set."""
        try:
            for window in windows:
                if not await sleep_until(window.start, now, stop):
                    return
                print(f"[soak] {window.start:7.1f} s  billing receiver down ({window.mode})", flush=True)
                if window.mode == "closed":
                    await self.close()
                else:
                    self.answering_503 = True
                await sleep_until(window.end, now, stop)
                self.answering_503 = False
                await self.open()
        finally:
            self.answering_503 = False
            await self.open()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status = await self._handle(reader)
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader) -> str:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            return "413 Content Too Large"
        body = await reader.readexactly(length)
        if self.answering_503:
            self.refused += 1
            return "503 Service Unavailable"
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.unverified += 1
            return "400 Bad Request"
        digest = hashlib.sha256(body).hexdigest()
        self.deliveries.append(Delivery(headers["webhook-id"], str(payload["type"]), digest))
        return "204 No Content"
