"""A period statement: every term's line, contract caps, total, and the canonical hash of a final one.

Computation is pure: the caller supplies period inputs and KPI readings (`Values`) for exactly the
requests `kpi_requests` lists, so the same contract, inputs and readings always give the same statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel

from settlement.domain.contract import Contract, KpiIncentive, RiskCorridor, SharedSavings, SlaCredit, Term
from settlement.domain.money import ZERO, decimal_text, round_money
from settlement.domain.periods import Period, Status
from settlement.domain.sources import KpiRequest, KpiSource, MissingValue, Values
from settlement.domain.terms import kpi_incentive, risk_corridor, shared_savings, sla_credit
from settlement.domain.terms.lines import Line, Outcome, Steps, zero

CONTRACT_CAPS = "contract_caps"
INCOMPLETE_REASONS = frozenset({"missing_input", "no_kpi_data", "kpi_unavailable"})
"""Reasons a line pays 0 because a value is not there: such a line is not complete (docs/settlement.md)."""


def kpi_requests(contract: Contract, period: Period) -> list[KpiRequest]:
    """Every KPI reading the contract's terms need for the period (SLA terms: one per month)."""
    requests: set[KpiRequest] = set()
    for term in contract.terms:
        ranges = period.months() if isinstance(term, SlaCredit) else [period]
        for source in _kpi_sources(term):
            requests.update(KpiRequest(source, r.start, r.end) for r in ranges)
    return sorted(requests, key=lambda r: (r.source.label(), r.start))


def kpis_used(contract: Contract) -> list[str]:
    """The KPI names the contract's terms read (what its vendor may see of the health system's KPIs)."""
    return sorted({source.kpi for term in contract.terms for source in _kpi_sources(term)})


def kpi_grants(contract: Contract) -> list[str]:
    """What of the health system's KPIs the contract's terms read, as KPI grants (`kpi`, or
    `kpi[dimension=value]` for one value of its dimension): what its vendor may see, and what
    settlement may read to compute it (docs/security.md)."""
    return sorted({source.label() for term in contract.terms for source in _kpi_sources(term)})


def _kpi_sources(model: Any) -> Iterator[KpiSource]:
    if isinstance(model, KpiSource):
        yield model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from _kpi_sources(getattr(model, name))
        if isinstance(model, KpiIncentive | SlaCredit) and isinstance(model.source, KpiSource):
            yield model.source
    elif isinstance(model, list):
        for item in model:
            yield from _kpi_sources(item)


def compute_line(term: Term, contract: Contract, period: Period, values: Values) -> Line:
    values.used, values.incomplete, values.maturing = {}, [], []
    steps = Steps()
    try:
        outcome = _outcome(term, contract, period, values, steps)
    except MissingValue as missing:
        outcome = zero(missing.reason, missing.detail)
    return Line(
        term.id,
        term.kind,
        round_money(outcome.amount, contract.currency),
        dict(values.used),
        steps.done(),
        outcome.reason,
        outcome.detail,
        outcome.amount,
        complete=not values.incomplete and outcome.reason not in INCOMPLETE_REASONS,
        maturing=tuple(sorted({(source.label(), day) for source, day in values.maturing})),
    )


def _outcome(term: Term, contract: Contract, period: Period, values: Values, steps: Steps) -> Outcome:
    match term:
        case SharedSavings():
            return shared_savings.compute(term, values, period, steps)
        case KpiIncentive():
            return kpi_incentive.compute(term, values, period, steps)
        case SlaCredit():
            return sla_credit.compute(term, values, period, steps, contract.fees)
        case RiskCorridor():
            return risk_corridor.compute(term, values, period, steps)
    raise AssertionError(f"unhandled term kind {term.kind}")  # pragma: no cover - the union is closed


def contract_caps_line(contract: Contract, lines: list[Line]) -> Line | None:
    """Contract caps limit the period's total after all terms; when one binds it becomes a line, so the
    total is always the sum of the lines."""
    caps = contract.caps
    if caps is None:
        return None
    terms_total = sum((line.amount for line in lines), ZERO)
    steps = Steps()
    steps.add("terms_total", terms_total)
    limited = terms_total
    if caps.max_reward is not None and terms_total > caps.max_reward:
        limited = steps.add("max_reward", caps.max_reward)
    if caps.max_penalty is not None and terms_total < -caps.max_penalty:
        limited = -steps.add("max_penalty", caps.max_penalty)
    if limited == terms_total:
        return None
    steps.add("amount", limited - terms_total)
    inputs = caps.model_dump(mode="json", exclude_none=True)
    return Line(
        CONTRACT_CAPS,
        CONTRACT_CAPS,
        round_money(limited - terms_total, contract.currency),
        inputs,
        steps.done(),
    )


def statement(
    contract: Contract,
    version: int,
    period: Period,
    status: Status,
    lines: list[Line],
    *,
    data_cutoff: datetime,
    computed_at: datetime,
) -> dict[str, Any]:
    if (capped := contract_caps_line(contract, lines)) is not None:
        lines = [*lines, capped]
    total = sum((line.amount for line in lines), ZERO)
    complete = all(line.complete for line in lines)
    maturing = [
        {"term_id": line.term_id, "kpi": kpi, "matures_on": day.isoformat()}
        for line in lines
        for kpi, day in line.maturing
    ]
    return {
        "contract_id": contract.id,
        "contract_version": version,
        "period": period.id,
        "period_start": period.start.isoformat(),
        "period_end": (period.end - timedelta(days=1)).isoformat(),  # the last day, inclusive
        "status": _status(status, complete=complete, maturing=bool(maturing)),
        "data_complete": complete,
        # Readings still within their KPI's maturation: no money is final from them (docs/settlement.md).
        "maturing": maturing,
        "data_completeness": contract.data_completeness,
        "currency": contract.currency,
        "total": decimal_text(round_money(total, contract.currency)),
        "lines": [line.as_json() for line in lines],
        "data_cutoff": data_cutoff.isoformat(),
        "computed_at": computed_at.isoformat(),
        "adjustments": [],
    }


def _status(by_calendar: Status, *, complete: bool, maturing: bool) -> Status:
    if by_calendar != "draft":
        return by_calendar
    if not complete:  # past its run-out and still incomplete: the parties must see it, not at invoice time
        return "blocked"
    return "maturing" if maturing else "draft"  # a reading that can still change is not money yet


def canonical_hash(statement_json: dict[str, Any]) -> str:
    """SHA-256 of the statement's canonical JSON (sorted keys, no whitespace), without the fields that
    are added after finalization (the hash itself and adjustments)."""
    body = {k: v for k, v in statement_json.items() if k not in ("sha256", "adjustments", "finalized_at")}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def line_deltas(final: dict[str, Any], current: dict[str, Any]) -> tuple[list[dict[str, str]], Decimal]:
    """Per-line and total differences between what was finalized (plus earlier adjustments) and now."""
    before = {line["term_id"]: Decimal(line["amount"]) for line in final["lines"]}
    after = {line["term_id"]: Decimal(line["amount"]) for line in current["lines"]}
    deltas = []
    for term_id in sorted(set(before) | set(after)):
        delta = after.get(term_id, ZERO) - before.get(term_id, ZERO)
        if delta:
            deltas.append({"term_id": term_id, "delta": decimal_text(delta)})
    return deltas, Decimal(current["total"]) - Decimal(final["total"])


def what_is_missing(statement_json: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Everything that keeps a statement from being complete: facility × feed pairs not declared
    complete (per line and KPI source), period inputs not entered, lines without KPI data."""
    feeds: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    no_data: list[dict[str, Any]] = []
    incomplete = [line for line in statement_json["lines"] if not line.get("complete", True)]
    for line in statement_json["lines"]:
        for name, used in line["inputs"].items():
            if isinstance(used, dict) and "kpi" in used:
                for gap in used.get("missing", ()):
                    feeds.append({"term_id": line["term_id"], "source": name, "kpi": used["kpi"], **gap})
        if line.get("reason") == "missing_input":
            inputs.append({"term_id": line["term_id"], "detail": line.get("detail")})
        if line.get("reason") in ("no_kpi_data", "kpi_unavailable"):
            no_data.append(
                {"term_id": line["term_id"], "reason": line["reason"], "detail": line.get("detail")}
            )
    return {
        "lines": [
            {
                "term_id": line["term_id"],
                "reason": line.get("reason", "incomplete_data"),
                "detail": line.get("detail"),
            }
            for line in incomplete
        ],
        "missing_feeds": feeds,
        "missing_inputs": inputs,
        "no_kpi_data": no_data,
    }
