"""`vr hl7 relay`: takes HL7 v2 over MLLP from an interface engine (Mirth/NextGen Connect, Rhapsody,
Cloverleaf) inside the hospital's network and forwards each message to the platform's `/v1/hl7v2` with
the pipeline's key, answering the sender with the platform's own ACK (docs/interop.md).

It never answers AA for a message the platform did not accept, and answers as HL7 v2's original mode
says a sender should act: while the platform answers 503/429 (or cannot be reached) it retries after
`Retry-After` for a bounded time, then answers AR so the sender keeps the message and sends it again —
a sender is never held forever; a refusal of the request's content (400, 413, 422) is AE, because the
same message sent again would be refused again; any other answer (a revoked key, a server error) is AR.
MLLP framing and the server are python-hl7's (`hl7.mllp`), the library ingest parses with.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import hl7
import httpx
from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server

RETRYABLE = (429, 503)
CONTENT_REFUSED = (400, 413, 422)  # the message itself is at fault: AE (do not send it again as it is)
HL7_TYPE = "x-application/hl7-v2+er7"


@dataclass
class RelayCounts:
    """What the relay has done, printed as it goes (its metrics on stdout)."""

    by_answer: Counter[str] = field(default_factory=Counter)  # AA / AE / AR
    retries: int = 0
    gave_up: int = 0

    def line(self) -> str:
        answers = ", ".join(f"{code} {n}" for code, n in sorted(self.by_answer.items())) or "none"
        total = sum(self.by_answer.values())
        waited = f"answered AR after waiting {self.gave_up}"
        return f"relayed {total} messages ({answers}); retries {self.retries}; {waited}"


class Relay:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_wait_s: float,
        facility: str | None = None,
        report: Callable[[str], None] = print,
        report_every_s: float = 10.0,
    ) -> None:
        self._http, self._max_wait_s, self._facility = http, max_wait_s, facility
        self._report, self._report_every_s = report, report_every_s
        self.counts = RelayCounts()
        self._reported_at = time.monotonic()

    async def serve_connection(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        """One sender's connection: each message in turn, its ACK before the next (MLLP's rule)."""
        try:
            while not reader.at_eof():
                try:
                    block = await reader.readblock()
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                ack = await self.forward(block.decode("utf-8", errors="replace"))
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def forward(self, message: str) -> str:
        """The platform's ACK for the message, or AR once the platform has not taken it in time."""
        deadline = time.monotonic() + self._max_wait_s
        params = {"facility": self._facility} if self._facility else {}
        last: httpx.Response | None = None
        while True:
            try:
                last = await self._http.post(
                    "/v1/hl7v2",
                    content=message.encode("utf-8"),
                    headers={"Content-Type": HL7_TYPE},
                    params=params,
                )
            except httpx.TransportError:
                wait = 1.0
            else:
                if last.status_code == 200:
                    return self._answered(last.text.split("\r\n", 1)[0])
                if last.status_code not in RETRYABLE:
                    code = "AE" if last.status_code in CONTENT_REFUSED else "AR"
                    reason = f"the platform answered {last.status_code}: {_detail(last)}"
                    return self._answered(_refuse(message, code, reason))
                wait = _retry_after(last)
            if time.monotonic() + wait > deadline:
                self.counts.gave_up += 1
                if last is not None and last.status_code == 503 and last.text.startswith("MSH"):
                    return self._answered(last.text.split("\r\n", 1)[0])  # the platform's own AR
                return self._answered(
                    _refuse(message, "AR", "the platform did not take it in time; send it again")
                )
            self.counts.retries += 1
            await asyncio.sleep(wait)

    def _answered(self, ack: str) -> str:
        self.counts.by_answer[_ack_code(ack)] += 1
        if time.monotonic() - self._reported_at >= self._report_every_s:
            self._reported_at = time.monotonic()
            self._report(self.counts.line())
        return ack


def _ack_code(ack: str) -> str:
    for segment in ack.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1] or "?"
    return "?"


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.1, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _detail(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200]
    return str(problem.get("detail") or problem.get("title") or "")[:200]


def _refuse(message: str, code: str, reason: str) -> str:
    """An AE or AR made here, for a message the platform did not take (python-hl7 builds the ACK)."""
    try:
        parsed = hl7.parse(message)
        ack = parsed.create_ack(code, application="VR-RELAY")
    except (hl7.ParseException, IndexError, KeyError, ValueError):
        now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        return f"MSH|^~\\&|VR-RELAY||||{now}||ACK|ACK|P|2.5\rMSA|{code}|"
    text = str(parsed.escape(reason))
    header = str(ack).rstrip("\r")  # python-hl7 ends the ACK's last segment (MSA) with CR
    return f"{header}|{text}\rERR||MSH^1^10|207^Application internal error^HL70357|E||||{text}"


async def run_relay(
    url: str,
    key: str,
    host: str,
    port: int,
    *,
    max_wait_s: float,
    facility: str | None,
    tls: ssl.SSLContext | None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve until cancelled (Ctrl-C)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        relay = Relay(http, max_wait_s=max_wait_s, facility=facility)
        server = await start_hl7_server(relay.serve_connection, host, port, ssl=tls, encoding="utf-8")
        scheme = "MLLP over TLS" if tls else "MLLP"
        print(f"relaying {scheme} on {host}:{port} to {url}/v1/hl7v2", flush=True)
        if ready is not None:
            ready.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            print(relay.counts.line(), flush=True)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
