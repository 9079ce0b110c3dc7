"""The soak's invariants, each a pure function over what the soak gathered, answering the list of
violations in plain language (empty: the invariant holds)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from devstack.soak.faults import Fault, FaultOutcome

ZERO = Decimal(0)
# The event types of docs/webhooks.md that book money: an invoice per final statement, a note per adjustment.
FINALIZED = "statement.finalized"
ADJUSTED = "statement.adjusted"


@dataclass(frozen=True)
class AnswerKind:
    route: str  # "POST /v1/events"
    status: int
    retry_after: bool  # the answer carried Retry-After
    conflict_expected: bool = False  # a 409 the request could meet (an idempotent retry in progress)


@dataclass(frozen=True)
class CountedValue:
    """One measure of one KPI at one facility: what a pipeline's tally expects, what the API says
    (None: no value)."""

    pipeline: str
    kpi: str
    facility: str
    measure: str  # sample_size, numerator, denominator, value
    expected: Decimal
    observed: Decimal | None


@dataclass(frozen=True)
class StatementCheck:
    """A statement as read, beside its recomputation (`POST /v1/contracts:simulate` on the same data)."""

    contract: str
    period: str
    status: str
    total: Decimal
    lines: Mapping[str, Decimal]
    recomputed_total: Decimal
    recomputed_lines: Mapping[str, Decimal]
    adjustments_total: Decimal = ZERO  # Σ total_delta of the final statement's adjustments
    adjustments_lines: Mapping[str, Decimal] = field(default_factory=dict)  # Σ delta per term


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery: its id and a digest of its body."""

    webhook_id: str
    event_type: str
    body_sha256: str


@dataclass(frozen=True)
class FeedItem:
    """One event of the pull feed, with what names its statement (contract.updated has no period)."""

    event_id: str
    event_type: str
    contract: str = ""
    period: str = ""
    adjustment_id: str = ""  # statement.adjusted only


@dataclass(frozen=True)
class Booked:
    """Something a billing system books: a final statement (adjustment_id "") or one of its adjustments."""

    contract: str
    period: str
    adjustment_id: str = ""


def check_counts(values: Sequence[CountedValue]) -> list[str]:
    """Every accepted event counted exactly once: each measure equals the pipeline's own tally."""
    if not values:
        return ["no KPI value was compared: the pipelines' tallies are empty"]
    wrong = []
    for v in values:
        if v.observed != v.expected:
            seen = "no value" if v.observed is None else str(v.observed)
            wrong.append(
                f"{v.pipeline}: {v.kpi} {v.measure} at {v.facility} is {seen}, "
                f"but the pipeline had {v.expected} accepted"
            )
    return wrong


def check_statements(statements: Sequence[StatementCheck]) -> list[str]:
    """Every statement equals its recomputation; a final one plus Σ its adjustments equals it, in
    total and line by line."""
    if not statements:
        return ["no statement was compared"]
    wrong = []
    for s in statements:
        name = f"{s.contract} {s.period} ({s.status})"
        final = s.status == "final"
        booked = s.total + s.adjustments_total if final else s.total
        if booked != s.recomputed_total:
            said = (
                f"final {s.total} + adjustments {s.adjustments_total} = {booked}" if final else str(s.total)
            )
            wrong.append(f"{name}: total {said}, recomputed {s.recomputed_total}")
        for term in sorted(set(s.lines) | set(s.recomputed_lines)):
            line = s.lines.get(term, ZERO) + (s.adjustments_lines.get(term, ZERO) if final else ZERO)
            if line != s.recomputed_lines.get(term, ZERO):
                wrong.append(f"{name}: line {term} is {line}, recomputed {s.recomputed_lines.get(term)}")
    return wrong


def check_webhooks(feed: Sequence[FeedItem], deliveries: Sequence[Delivery], unverified: int) -> list[str]:
    """Every event of the feed delivered at least once under its id, always with the same body; the
    feed holding each event exactly once; no delivery that was not the feed's or not verifiable."""
    wrong = []
    if not feed:
        wrong.append("the settlement-event feed is empty: no settlement event to check")
    repeated = [event_id for event_id, n in Counter(item.event_id for item in feed).items() if n > 1]
    wrong += [f"the feed holds {event_id} more than once" for event_id in sorted(repeated)]
    bodies: dict[str, set[str]] = {}
    types: dict[str, str] = {}
    for d in deliveries:
        bodies.setdefault(d.webhook_id, set()).add(d.body_sha256)
        types[d.webhook_id] = d.event_type
    fed = {item.event_id: item.event_type for item in feed}
    for event_id, event_type in fed.items():
        if event_id not in bodies:
            wrong.append(f"{event_type} {event_id} is in the feed but was never delivered")
        elif types[event_id] != event_type:
            wrong.append(f"{event_id} was delivered as {types[event_id]} but is {event_type} in the feed")
    wrong += [f"{i} was delivered but is not in the feed" for i in sorted(set(bodies) - set(fed))]
    unstable = sorted(i for i, b in bodies.items() if len(b) > 1)
    wrong += [f"{i} was delivered with {len(bodies[i])} different bodies" for i in unstable]
    if unverified:
        wrong.append(f"{unverified} deliveries failed Standard Webhooks verification")
    return wrong


def answer_allowed(kind: AnswerKind) -> bool:
    """2xx; 409 where the request could meet one; 429 or 503 with Retry-After."""
    if 200 <= kind.status < 300:
        return True
    if kind.status == 409:
        return kind.conflict_expected
    return kind.status in (429, 503) and kind.retry_after


def check_answers(counts: Mapping[AnswerKind, int]) -> list[str]:
    """No answer other than 2xx, 409 where expected, 429 or 503 with Retry-After."""
    wrong = []
    for kind, n in sorted(counts.items(), key=lambda item: (item[0].route, item[0].status)):
        if n and not answer_allowed(kind):
            without = " without Retry-After" if kind.status in (429, 503) and not kind.retry_after else ""
            wrong.append(f"{kind.route} answered {kind.status}{without} {n} time(s)")
    if not any(200 <= k.status < 300 for k in counts):
        wrong.append("no request was answered 2xx")
    return wrong


def check_booked_events(feed: Sequence[FeedItem], booked: Sequence[Booked]) -> list[str]:
    """Each statement finalized has exactly one `statement.finalized` in the feed for its contract and
    period, and each adjustment booked on a final statement its `statement.adjusted` (by adjustment id)."""
    finalized = Counter((i.contract, i.period) for i in feed if i.event_type == FINALIZED)
    adjusted = {(i.contract, i.period, i.adjustment_id) for i in feed if i.event_type == ADJUSTED}
    wrong = []
    for b in sorted(set(booked), key=lambda b: (b.contract, b.period, b.adjustment_id)):
        if b.adjustment_id:
            if (b.contract, b.period, b.adjustment_id) not in adjusted:
                wrong.append(
                    f"adjustment {b.adjustment_id} of {b.contract} {b.period} is booked, "
                    f"but the feed has no {ADJUSTED} for it"
                )
        elif finalized[(b.contract, b.period)] != 1:
            n = finalized[(b.contract, b.period)]
            wrong.append(f"{b.contract} {b.period} was finalized, but the feed has {n} {FINALIZED} for it")
    return wrong


def check_faults(planned: Sequence[Fault], outcomes: Sequence[FaultOutcome], *, asked: bool) -> list[str]:
    """Every planned fault injected — at least one when faults were asked for — and every part killed
    back within the recovery bound."""
    wrong = []
    if asked and not planned:
        wrong.append("faults were asked for, but none was planned: the run ends before the first one is due")
    happened = Counter((o.planned_at, o.part) for o in outcomes)
    for fault in planned:
        if happened[(fault.at, fault.part)] > 0:
            happened[(fault.at, fault.part)] -= 1
        else:
            wrong.append(f"fault planned at {fault.at} s on {fault.part} was never injected")
    for o in outcomes:
        if not o.injected:
            wrong.append(f"fault at {o.injected_at} s on {o.part} not injected: {o.note}")
        elif o.recovered_after is None:
            wrong.append(f"{o.part}, killed at {o.injected_at} s, did not recover")
    return wrong


def check_restarts(restarts: Mapping[str, int], killed: Mapping[str, int]) -> list[str]:
    """Each part restarted exactly as often as it was killed: one restart more is a part that exited by
    itself (a crash, a restart loop), one fewer a kill that nothing noticed."""
    if not restarts:
        return ["the restarts per part could not be read"]
    wrong = []
    for part in sorted(set(restarts) | set(killed)):
        n, k = restarts.get(part, 0), killed.get(part, 0)
        if n > k:
            wrong.append(f"{part} restarted {n} time(s) but was killed {k} time(s): it exited by itself")
        elif n < k:
            wrong.append(f"{part} was killed {k} time(s) but restarted {n} time(s)")
    return wrong
