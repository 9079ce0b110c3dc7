"""Hospital pipelines: JSON events, FHIR R4 Claims (Bulk NDJSON) and HL7 v2 ADT through the MLLP relay
(`vr hl7 relay`'s own code, run in this process). Each sends until told to stop, resends what was not
taken (the API client retries 429/503 and no answer; the relay answers AR, which is sent again), and
keeps its own tally of what was accepted per facility and KPI measure — the numbers the KPI engine
must show at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from hl7.mllp import open_hl7_connection, start_hl7_server

from devstack.soak.api import RETRY_BOUND_SECONDS, Answers, Api, Clock, Stuck
from vr_cli.formats import as_fhir, as_hl7
from vr_cli.hl7_relay import Relay

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 330  # 2026-01-01 … late November: in the past, and inside every soak contract's year
RELAY_MAX_WAIT_SECONDS = 20.0  # then the relay answers AR and the pipeline sends the message again
# A message still answered AR this long after the traffic stopped is given up, as a violation: whether
# the platform took it is unknown, so the tallies could no longer be trusted to match.
AR_AFTER_STOP_SECONDS = 60.0


@dataclass
class Tally:
    """What a pipeline knows was accepted: (kpi, facility, measure) → amount; events per minute."""

    pipeline: str
    expected: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    per_minute: Counter[int] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # events the platform refused: each a violation

    def add(self, kpi: str, facility: str, measure: str, amount: Decimal | int = 1) -> None:
        self.expected[(kpi, facility, measure)] += Decimal(amount)  # type: ignore[assignment]

    def accepted(self, clock: Clock, n: int = 1) -> None:
        self.per_minute[int(clock() // 60)] += n


def _moment(rng: random.Random) -> datetime:
    return YEAR_START + timedelta(days=rng.randrange(DAYS), minutes=rng.randrange(600, 1200))


def claim(seq: int, prefix: str, facility: str, rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"{prefix}-claim-{seq}",
        "source": f"soak-{prefix}",
        "type": "claim.submitted",
        "time": _moment(rng).isoformat(),
        "facility": facility,
        "data": {
            "claim_ref": f"{prefix}-C{seq}",
            "amount": f"{rng.randrange(100, 99_999)}.00",
            "clean": rng.random() < 0.8,
        },
    }


def count_claim(tally: Tally, event: dict[str, Any]) -> None:
    tally.add("clean_claim_rate", event["facility"], "sample_size")
    tally.add("clean_claim_rate", event["facility"], "numerator", int(event["data"]["clean"]))


class JsonPipeline:
    """Catalogue JSON to `POST /v1/events`, a batch at a time. Like a real pipeline unsure whether its
    last batch arrived, it sends `resent` events of the batch before again with each batch (same id,
    same content): the platform must count each once, and the tally counts each once."""

    def __init__(
        self,
        api: Api,
        facilities: list[str],
        seed: int,
        clock: Clock,
        batch: int = 100,
        pause: float = 0.5,
        resent: int = 5,
    ) -> None:
        self.tally = Tally("json")
        self._api, self._facilities, self._clock = api, facilities, clock
        self._rng, self._batch, self._pause, self._seq = random.Random(seed), batch, pause, 0
        self._resent = resent
        self._before: list[dict[str, Any]] = []
        self.sent_again = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            events = [self._next() for _ in range(self._batch)]
            again = self._before[: self._resent]
            answer = await self._api.call("POST", "/v1/events", json=events + again)
            if answer.status_code != 202:
                self.tally.refused.append(f"json batch answered {answer.status_code}: {answer.text[:200]}")
            else:
                results = answer.json()["results"]
                for index, (result, event) in enumerate(zip(results, events + again, strict=True)):
                    if result["status"] != "accepted":
                        self.tally.refused.append(
                            f"json event {event['id']} {result['status']}: {result.get('errors')}"
                        )
                    elif index < len(events):  # one sent again was counted when first accepted
                        count_claim(self.tally, event)
                        self.tally.accepted(self._clock)
                self.sent_again += len(again)
                self._before = events
            await asyncio.sleep(self._pause)

    def _next(self) -> dict[str, Any]:
        self._seq += 1
        return claim(self._seq, "json", self._rng.choice(self._facilities), self._rng)


class FhirPipeline:
    """FHIR R4 Claims (with the project's clean-claim extension) as Bulk NDJSON to `POST /v1/fhir`."""

    def __init__(
        self, api: Api, facilities: list[str], seed: int, clock: Clock, batch: int = 50, pause: float = 1.0
    ) -> None:
        self.tally = Tally("fhir")
        self._api, self._facilities, self._clock = api, facilities, clock
        self._rng, self._batch, self._pause, self._seq = random.Random(seed), batch, pause, 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            facility = self._rng.choice(self._facilities)
            events = []
            for _ in range(self._batch):
                self._seq += 1
                events.append(claim(self._seq, "fhir", facility, self._rng))
            lines, _ = as_fhir(events)
            answer = await self._api.call(
                "POST",
                "/v1/fhir",
                params={"facility": facility},
                content="\n".join(lines[facility]).encode(),
                headers={"Content-Type": "application/fhir+ndjson"},
            )
            self._count(answer, events)
            await asyncio.sleep(self._pause)

    def _count(self, answer: httpx.Response, events: list[dict[str, Any]]) -> None:
        if answer.status_code != 200:
            self.tally.refused.append(f"fhir batch answered {answer.status_code}: {answer.text[:200]}")
            return
        for entry, event in zip(answer.json()["entry"], events, strict=True):
            status = entry["response"]["status"]
            if status.startswith("202"):
                count_claim(self.tally, event)
                self.tally.accepted(self._clock)
            else:
                self.tally.refused.append(f"fhir Claim {event['id']} answered {status}")


def stay(seq: int, facility: str, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any], int]:
    """An inpatient stay as its admission and discharge events, and its length in days."""
    admitted = _moment(rng).replace(hour=9, minute=0)
    days = rng.randrange(0, 8)
    data = {"encounter_ref": f"V{seq}", "patient_ref": f"P{seq}", "encounter_class": "inpatient"}
    admission = {
        "id": f"hl7-{seq}-a",
        "type": "encounter.admitted",
        "time": admitted.isoformat(),
        "facility": facility,
        "data": data,
    }
    discharged = admitted + timedelta(days=days, hours=5)
    discharge = {
        "id": f"hl7-{seq}-d",
        "type": "encounter.discharged",
        "time": discharged.isoformat(),
        "facility": facility,
        "data": {**data, "admitted_at": admitted.isoformat(), "disposition": "home"},
    }
    return admission, discharge, days


def ack_code(ack: str) -> str:
    for segment in ack.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    return "?"


class Hl7Pipeline:
    """An interface engine: ADT A01 and A03 over MLLP to the relay, one message at a time (MLLP's
    rule), each sent again while the relay answers AR — for at most `retry_bound_s` (then the soak is
    stuck), and for at most `after_stop_s` once the traffic has stopped."""

    def __init__(
        self,
        relay_port: int,
        facilities: list[str],
        seed: int,
        clock: Clock,
        pause: float = 0.03,
        *,
        again_after_s: float = 1.0,
        after_stop_s: float = AR_AFTER_STOP_SECONDS,
        retry_bound_s: float = RETRY_BOUND_SECONDS,
    ) -> None:
        self.tally = Tally("hl7")
        self._port, self._facilities, self._clock = relay_port, facilities, clock
        self._rng, self._pause, self._seq = random.Random(seed), pause, 0
        self._again_after_s = again_after_s
        self._after_stop_s, self._retry_bound_s = after_stop_s, retry_bound_s
        self.rejected_again = 0  # AR answers: sent again

    async def run(self, stop: asyncio.Event) -> None:
        reader, writer = await open_hl7_connection("127.0.0.1", self._port, encoding="utf-8")
        try:
            while not stop.is_set():
                self._seq += 1
                admission, discharge, days = stay(self._seq, self._rng.choice(self._facilities), self._rng)
                messages, _ = as_hl7([admission, discharge])
                for message in messages:
                    if not await self.until_answered(reader, writer, message, stop):
                        break
                else:
                    self.tally.add("alos_days", discharge["facility"], "denominator")
                    self.tally.add("alos_days", discharge["facility"], "numerator", days)
                await asyncio.sleep(self._pause)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def until_answered(self, reader: Any, writer: Any, message: str, stop: asyncio.Event) -> bool:
        """True once the message is answered AA; False (recorded as refused) on AE, or when it is still
        answered AR `after_stop_s` after `stop`; Stuck when still AR after `retry_bound_s`."""
        first_line = message.split(chr(13))[0]
        deadline = time.monotonic() + self._retry_bound_s
        stopped_at: float | None = None
        while True:
            writer.writeblock(message.encode("utf-8"))
            await writer.drain()
            ack = (await reader.readblock()).decode("utf-8", errors="replace")
            code = ack_code(ack)
            if code == "AA":
                self.tally.accepted(self._clock)
                return True
            if code != "AR":
                self.tally.refused.append(f"hl7 message {first_line} answered {code}: {ack[:300]}")
                return False
            self.rejected_again += 1
            now = time.monotonic()
            if now > deadline:
                raise Stuck(f"hl7 message {first_line} still answered AR after {self._retry_bound_s:.0f} s")
            if stop.is_set():
                stopped_at = now if stopped_at is None else stopped_at
                if now - stopped_at >= self._after_stop_s:
                    self.tally.refused.append(
                        f"hl7 message {first_line} still answered AR {self._after_stop_s:.0f} s after the "
                        "traffic stopped: given up, its fate unknown"
                    )
                    return False
            await asyncio.sleep(self._again_after_s)


@contextlib.asynccontextmanager
async def relay_running(gateway_url: str, key: str, port: int, answers: Answers) -> Any:
    """`vr hl7 relay`'s relay on 127.0.0.1:`port`, its answers from the gateway tallied like ours."""
    async with httpx.AsyncClient(
        base_url=gateway_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        event_hooks={"response": [answers.hook]},
    ) as http:
        relay = Relay(http, max_wait_s=RELAY_MAX_WAIT_SECONDS, report=lambda _line: None)
        server = await start_hl7_server(relay.serve_connection, "127.0.0.1", port, encoding="utf-8")
        async with server:
            yield relay
