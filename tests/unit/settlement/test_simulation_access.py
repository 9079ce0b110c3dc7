"""Who may simulate what: a vendor simulates any period a contract with the health system shows it —
its last one too (a period's end is exclusive, a contract's end is its last day)."""

from __future__ import annotations

import pytest

from settlement.domain.contract import load_contract
from settlement.domain.periods import parse_period
from settlement.entrypoints.access import ensure_may_simulate
from tests.unit.settlement.builders import contract
from vr_shared.identity import Identity
from vr_shared.roles import Role
from vr_shared.web import Problem

VENDOR = Identity(tenant="acme-emr", role=Role.TENANT_ADMIN, key_id="key-vendor", tenant_kind="vendor")
INCENTIVE = {
    "id": "cpoe",
    "kind": "kpi_incentive",
    "kpi": "cpoe_rate",
    "direction": "higher_is_better",
    "baseline": "0.80",
    "target": "0.90",
    "max_reward": "100000.00",
}


@pytest.mark.parametrize("period_id", ["2026-Q1", "2026-Q4"])
def test_a_vendor_simulates_every_period_of_its_own_contract_the_last_one_too(period_id: str) -> None:
    own = contract(INCENTIVE)  # 2026-01-01 to 2026-12-31, quarterly
    what_if = contract({**INCENTIVE, "target": "0.95"}, id="what-if")
    period = parse_period(what_if.period, period_id, what_if.start, what_if.end)
    ensure_may_simulate(VENDOR, what_if, [period], [own])  # no Problem: the contract shows it


def test_a_vendor_may_not_simulate_a_period_after_its_contract() -> None:
    own = contract(INCENTIVE, end="2026-09-30")
    what_if = contract(INCENTIVE, id="what-if")
    q4 = parse_period(what_if.period, "2026-Q4", what_if.start, what_if.end)
    with pytest.raises(Problem) as refused:
        ensure_may_simulate(VENDOR, what_if, [q4], [own])
    assert refused.value.status == 403 and "2026-Q4" in refused.value.detail


def test_a_shared_contract_ending_on_the_last_representable_day_is_compared_without_overflow() -> None:
    """A contract stored before dates were bounded may end on 9999-12-31: it shows every period from
    its start (it answered 500 — the day after its end does not exist), and one it does not cover
    (before its start) is refused like any other."""
    stored = load_contract({**contract(INCENTIVE).as_document(), "start": "2026-07-01", "end": "9999-12-31"})
    what_if = contract(INCENTIVE, id="what-if")
    q4 = parse_period(what_if.period, "2026-Q4", what_if.start, what_if.end)
    ensure_may_simulate(VENDOR, what_if, [q4], [stored])
    q1 = parse_period(what_if.period, "2026-Q1", what_if.start, what_if.end)
    with pytest.raises(Problem) as refused:
        ensure_may_simulate(VENDOR, what_if, [q1], [stored])
    assert refused.value.status == 403 and "2026-Q1" in refused.value.detail
