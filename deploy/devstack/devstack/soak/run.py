"""One soak: set up tenants, keys, a webhook subscription and contracts through the gateway; run the
pipelines, the settling contracts, steady reads, the billing receiver's down windows and the fault
injector for the given time (longer if a planned fault is still due: every one is injected); then let
everything settle and check the invariants through the public API."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

from devstack.ports import free_port
from devstack.soak.api import Answers, Api, expect
from devstack.soak.billing import Receiver, down_windows
from devstack.soak.checks import (
    CountedValue,
    FeedItem,
    check_answers,
    check_booked_events,
    check_counts,
    check_faults,
    check_restarts,
    check_statements,
    check_webhooks,
)
from devstack.soak.faults import Fault, FaultOutcome, Injector, Target, all_ready
from devstack.soak.pipelines import FhirPipeline, Hl7Pipeline, JsonPipeline, Tally, relay_running
from devstack.soak.reads import SteadyReads
from devstack.soak.settling import MONTHS, Parties, Settling

SETTLE_BOUND_SECONDS = 300.0  # after the traffic: how long the stack has to show every invariant
EVERY_EVENT = [
    "statement.ready",
    "statement.blocked",
    "statement.finalized",
    "statement.adjusted",
    "contract.updated",
]
T = TypeVar("T")


@dataclass
class Plan:
    seed: int
    duration_s: float
    faults: list[Fault]
    gateway_url: str
    admin_key: str
    ready_urls: list[str]
    target: Callable[[httpx.AsyncClient], Target] | None
    restarts: Callable[[], dict[str, int]]  # restarts per part, read at the end
    receiver_reachable: bool = True  # compose: settlement may not deliver to this machine
    # The local supervisor restarts exactly the parts killed; compose's count leaves the injector's
    # own starts out, so there every restart is a part that exited by itself.
    restarts_are_kills: bool = True
    suffix: str = field(default_factory=lambda: f"{int(time.time()) % 100_000:05d}")


@dataclass
class Gathered:
    faults: list[FaultOutcome]
    restarts: dict[str, int]
    tallies: list[Tally]
    invariants: dict[str, list[str]]
    activity: list[str]  # what happened, in numbers, for the report


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.started


async def soak(plan: Plan) -> Gathered:
    """Set up, traffic with faults for the plan's duration, then the invariants once all is back."""
    answers, clock = Answers(), Clock()
    async with httpx.AsyncClient(base_url=plan.gateway_url, timeout=30) as http:
        keys = await _parties(Api(http, plan.admin_key, answers), plan.suffix)
        receiver = Receiver(free_port())
        await receiver.open()
        if plan.receiver_reachable:
            receiver.secret = await _subscribe(Api(http, keys["vendor:billing"], answers), receiver.port)
        settling = _settling(plan, http, keys, answers, clock)
        await settling.prepare()
        reads = SteadyReads(
            Api(http, keys["json:ops"], answers),
            _facilities("json", plan.suffix)[0],
            Api(http, keys["vendor:billing"], answers),
            f"/v1/contracts/{next(iter(settling.contracts))}/settlements/{MONTHS[0]}",
        )
        relay_port = free_port()
        async with relay_running(plan.gateway_url, keys["hl7:pipeline"], relay_port, answers):
            pipelines = _pipelines(plan, http, keys, answers, clock, relay_port)
            injector = Injector(plan.target(http), plan.faults, clock) if plan.target else None
            clock.started = time.monotonic()
            planned = f"{len(plan.faults)} faults planned"
            print(f"[soak] traffic for {plan.duration_s:.0f} s; {planned}", flush=True)
            await _traffic(plan, clock, [*pipelines, reads], settling, receiver, injector)
        tallies = [*(pl.tally for pl in pipelines), settling.tally]
        await _until(lambda: all_ready(http, plan.ready_urls), bool, SETTLE_BOUND_SECONDS)
        outcomes = injector.outcomes if injector else []
        restarts = plan.restarts()
        invariants = await _check(plan, http, keys, answers, tallies, settling, receiver)
        invariants.update(_fault_invariants(plan, outcomes, restarts))
        await receiver.close()
        activity = _activity(settling, receiver, pipelines, answers, reads)
    return Gathered(outcomes, restarts, tallies, invariants, activity)


def _settling(
    plan: Plan, http: httpx.AsyncClient, keys: dict[str, str], answers: Answers, clock: Clock
) -> Settling:
    s = plan.suffix
    parties = Parties(f"soak-settle-{s}", f"soak-vendor-{s}", [f"settle-a-{s}", f"settle-b-{s}"])
    return Settling(
        admin=Api(http, keys["settle:tenant_admin"], answers),
        billing=Api(http, keys["vendor:billing"], answers),
        pipeline=Api(http, keys["settle:pipeline"], answers),
        parties=parties,
        seed=plan.seed,
        clock=clock,
        suffix=s,
    )


def _pipelines(
    plan: Plan, http: httpx.AsyncClient, keys: dict[str, str], answers: Answers, clock: Clock, relay_port: int
) -> tuple[JsonPipeline, FhirPipeline, Hl7Pipeline]:
    """Each pipeline with data of its own seed (the fault schedule has the plan's)."""
    s = plan.suffix
    return (
        JsonPipeline(Api(http, keys["json:pipeline"], answers), _facilities("json", s), plan.seed + 1, clock),
        FhirPipeline(Api(http, keys["fhir:pipeline"], answers), _facilities("fhir", s), plan.seed + 2, clock),
        Hl7Pipeline(relay_port, _facilities("hl7", s), plan.seed + 3, clock),
    )


async def _traffic(
    plan: Plan,
    clock: Clock,
    senders: Sequence[JsonPipeline | FhirPipeline | Hl7Pipeline | SteadyReads],
    settling: Settling,
    receiver: Receiver,
    injector: Injector | None,
) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(sender.run(stop)) for sender in senders]
    tasks.append(asyncio.create_task(settling.run(stop, plan.duration_s)))
    tasks.append(asyncio.create_task(receiver.follow(down_windows(plan.seed, plan.duration_s), clock, stop)))
    injecting = asyncio.create_task(injector.run(stop)) if injector is not None else None
    tasks += [injecting] if injecting is not None else []
    await asyncio.wait(tasks, timeout=plan.duration_s, return_when=asyncio.FIRST_EXCEPTION)
    if injecting is not None and not injecting.done() and not _failed(tasks):
        # A fault waits while the one before is recovering: the traffic goes on until every one is in.
        print(
            f"[soak] {clock():7.1f} s  time is up; traffic goes on until every planned fault is in",
            flush=True,
        )
        await _until_done(injecting, tasks)
    stop.set()
    print(
        f"[soak] {clock():7.1f} s  traffic stopped; waiting for the senders and the last recovery", flush=True
    )
    await asyncio.gather(*tasks)  # raises what a task raised (a request stuck for good)


def _failed(tasks: Sequence[asyncio.Task[None]]) -> bool:
    return any(t.done() and t.exception() is not None for t in tasks)


async def _until_done(task: asyncio.Task[None], tasks: Sequence[asyncio.Task[None]]) -> None:
    """Until `task` ends, or another of `tasks` raises."""
    pending = {t for t in tasks if not t.done()}
    while task in pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if _failed(list(done)):
            return


async def _check(
    plan: Plan,
    http: httpx.AsyncClient,
    keys: dict[str, str],
    answers: Answers,
    tallies: list[Tally],
    settling: Settling,
    receiver: Receiver,
) -> dict[str, list[str]]:
    check_api = Answers()  # the checks' own reads are not the soak's traffic
    ops = {name: Api(http, keys[f"{name}:ops"], check_api) for name in ("json", "fhir", "hl7", "settle")}
    by_pipeline = {"json": ops["json"], "fhir": ops["fhir"], "hl7": ops["hl7"], "settling": ops["settle"]}
    print("[soak] checking: counts", flush=True)
    counts = check_counts(
        await _until(
            lambda: _counted(tallies, by_pipeline), lambda v: not check_counts(v), SETTLE_BOUND_SECONDS
        )
    )
    print("[soak] checking: statements", flush=True)
    statements = check_statements(
        await _until(settling.statements, lambda s: not check_statements(s), SETTLE_BOUND_SECONDS)
    )
    invariants = {
        "every accepted event counted exactly once (per facility and KPI)": counts,
        "every statement equal to its recomputation; final + Σ adjustments = recomputed": statements,
    }
    billing = Api(http, keys["vendor:billing"], check_api)
    name = "every webhook event delivered at least once with a stable id; the feed holds each exactly once"
    if plan.receiver_reachable:
        print("[soak] checking: webhooks and the feed", flush=True)

        async def webhooks() -> list[str]:
            return check_webhooks(await _feed(billing), receiver.deliveries, receiver.unverified)

        invariants[name] = await _until(webhooks, lambda v: not v, SETTLE_BOUND_SECONDS)
    booked = [*settling.finalized(), *settling.booked_adjustments]

    async def events() -> list[str]:
        return check_booked_events(await _feed(billing), booked)

    invariants["every finalize and every adjustment booked has its event in the feed"] = await _until(
        events, lambda v: not v, SETTLE_BOUND_SECONDS
    )
    refused = [r for t in tallies for r in t.refused] + settling.problems
    invariants["no answer other than 2xx, 409 where expected, 429 or 503 with Retry-After"] = [
        *check_answers(answers.counts),
        *refused,
    ]
    return invariants


def _fault_invariants(
    plan: Plan, outcomes: list[FaultOutcome], restarts: dict[str, int]
) -> dict[str, list[str]]:
    killed = Counter(o.part for o in outcomes if o.injected) if plan.restarts_are_kills else Counter[str]()
    return {
        "every planned fault injected; every part killed came back": check_faults(
            plan.faults, outcomes, asked=plan.target is not None
        ),
        "each part restarted exactly as often as it was killed": check_restarts(restarts, killed),
    }


def _activity(
    settling: Settling,
    receiver: Receiver,
    pipelines: tuple[JsonPipeline, FhirPipeline, Hl7Pipeline],
    answers: Answers,
    reads: SteadyReads,
) -> list[str]:
    json, _, hl7 = pipelines
    statuses = Counter[int]()
    for kind, n in answers.counts.items():
        statuses[kind.status] += n
    finalized = sum(1 for f in settling.finalizations if f.status in (200, 201))
    return [
        f"{finalized} of {len(settling.finalizations)} finalizations answered 200/201; "
        f"{settling.adjustments} adjustments booked on the final statements",
        f"{len(receiver.deliveries)} webhook deliveries verified "
        f"({len({d.webhook_id for d in receiver.deliveries})} distinct ids); "
        f"{receiver.refused} attempts answered 503 while the receiver was down",
        f"{json.sent_again} JSON events sent again on purpose (each must count once)",
        f"{hl7.rejected_again} HL7 messages answered AR by the relay and sent again",
        f"{reads.answered} steady reads (KPI values, a statement) answered during the traffic",
        "answers by status: " + ", ".join(f"{s} × {n}" for s, n in sorted(statuses.items())),
        f"requests without an answer (sent again): {sum(answers.unanswered.values())}",
    ]


async def _until(get: Callable[[], Awaitable[T]], good: Callable[[T], bool], within_s: float) -> T:
    """`get()` until `good`, or its last value after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        value = await get()
        if good(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(2)


async def _counted(tallies: list[Tally], ops: dict[str, Api]) -> list[CountedValue]:
    values = []
    for tally in tallies:
        rows: dict[tuple[str, str], dict[str, object]] = {}
        for (kpi, facility, measure), expected in sorted(tally.expected.items()):
            if (kpi, facility) not in rows:
                rows[(kpi, facility)] = await _kpi_row(ops[tally.pipeline], kpi, facility)
            seen = rows[(kpi, facility)].get(measure)
            observed = None if seen is None else Decimal(str(seen))
            values.append(CountedValue(tally.pipeline, kpi, facility, measure, Decimal(expected), observed))
    return values


async def _kpi_row(ops: Api, kpi: str, facility: str) -> dict[str, object]:
    params = {"from": "2026-01-01", "to": "2027-01-01", "granularity": "year", "facility": facility}
    if kpi == "cost_total":
        params["dimension"] = "total_cost_of_care"
    answer = await ops.call("GET", f"/v1/kpis/{kpi}/values", params=params)
    if answer.status_code != 200 or not answer.json()["values"]:
        return {}
    row = answer.json()["values"][0]
    return row if isinstance(row, dict) else {}


async def _feed(billing: Api) -> list[FeedItem]:
    items: list[FeedItem] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 200, **({"after": cursor} if cursor else {})}
        page = expect(await billing.call("GET", "/v1/settlement-events", params=params), 200)
        items += [_feed_item(i) for i in page["items"]]
        if not page["items"]:
            return items
        cursor = page["next"]


def _feed_item(item: dict[str, Any]) -> FeedItem:
    data = item.get("data") or {}
    return FeedItem(
        str(item["id"]),
        str(item["type"]),
        str(data.get("contract_id", "")),
        str(data.get("period", "")),
        str(data.get("adjustment_id", "")),
    )


def _facilities(name: str, suffix: str) -> list[str]:
    return [f"{name}-1-{suffix}", f"{name}-2-{suffix}"]


async def _parties(admin: Api, suffix: str) -> dict[str, str]:
    """Four health systems (one per pipeline, and the one that settles) and a vendor; keys by
    "name:role"."""
    keys = {}
    roles = {
        "json": ("pipeline", "ops"),
        "fhir": ("pipeline", "ops"),
        "hl7": ("pipeline", "ops"),
        "settle": ("pipeline", "ops", "tenant_admin"),
        "vendor": ("billing",),
    }
    for name, wanted in roles.items():
        tenant = f"soak-{name}-{suffix}"
        body: dict[str, object] = {"id": tenant, "name": tenant, "kind": "vendor"}
        if name != "vendor":
            facilities = (
                [f"settle-a-{suffix}", f"settle-b-{suffix}"]
                if name == "settle"
                else _facilities(name, suffix)
            )
            body = {**body, "kind": "health_system", "timezone": "UTC", "facilities": facilities}
        expect(await admin.call("POST", "/v1/tenants", json=body, idempotent=True, headers=_once()), 201)
        for role in wanted:
            made = await admin.call(
                "POST",
                "/v1/api-keys",
                json={"tenant_id": tenant, "role": role, "name": f"soak {role}"},
                idempotent=True,
                headers=_once(),
            )
            keys[f"{name}:{role}"] = str(expect(made, 201)["key"])
    return keys


async def _subscribe(billing: Api, port: int) -> str:
    body = {"url": f"http://127.0.0.1:{port}/hooks/vr", "events": EVERY_EVENT, "description": "soak"}
    made = await billing.call("POST", "/v1/webhook-endpoints", json=body, idempotent=True, headers=_once())
    return str(expect(made, 201)["secret"])


def _once() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def repository_root() -> Path:
    return Path(__file__).resolve().parents[4]
