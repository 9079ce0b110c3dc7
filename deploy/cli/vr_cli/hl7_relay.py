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
    """MSA-1, whatever delimiters the ACK is written with (the platform answers with the message's)."""
    for segment in ack.split("\r"):
        if segment.startswith("MSA") and len(segment) > 3:
            fields = segment.split(segment[3])
            return fields[1] if len(fields) > 1 and fields[1] else "?"
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
    """An AE or AR made here, for a message the platform did not take (python-hl7 builds the ACK), with
    the message's own delimiters (MSH-1, MSH-2), which its sender parses the answer with."""
    try:
        parsed = hl7.parse(message)
        ack = parsed.create_ack(code, application="VR-RELAY")
    except Exception:
        return _refuse_unparsed(message, code, reason)
    separators = str(parsed.separators)  # segment, field, repetition, component, subcomponent
    field_, component = separators[1], separators[3]
    text = _escaped(reason, separators[1:], str(parsed.esc))
    header = str(ack).rstrip("\r")  # python-hl7 ends the ACK's last segment (MSA) with CR
    location = component.join(("MSH", "1", "10"))
    condition = component.join(("207", "Application internal error", "HL70357"))
    err = field_.join(("ERR", "", location, condition, "E", "", "", "", text))
    return f"{header}{field_}{text}\r{err}"


def _refuse_unparsed(message: str, code: str, reason: str) -> str:
    """The same for a text python-hl7 cannot parse: its MSH-1, MSH-2 and MSH-10 as far as they can be
    read (else HL7's defaults and no MSA-2)."""
    delimiters, control_id = "|^~\\&", ""
    first = message.split("\r", 1)[0]
    if first.startswith("MSH") and len(first) >= 8 and len(set(first[3:8])) == 5:
        delimiters = first[3:8]
        fields = first.split(first[3])
        control_id = fields[9].strip() if len(fields) > 9 else ""
    f = delimiters[0]
    now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    text = _escaped(reason, delimiters[0] + delimiters[2] + delimiters[1] + delimiters[4], delimiters[3])
    msh = f.join(("MSH", delimiters[1:], "VR-RELAY", "", "", "", now, "", "ACK", "ACK", "P", "2.5"))
    return f"{msh}\r{f.join(('MSA', code, control_id, text))}"


def _escaped(text: str, separators: str, escape: str) -> str:
    """Text safe inside a field: `separators` are field, repetition, component, subcomponent."""
    codes = dict(zip(separators, "FRST", strict=True)) | {escape: "E"}
    return "".join(f"{escape}{codes[c]}{escape}" if c in codes else " " if c in "\r\n" else c for c in text)


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
