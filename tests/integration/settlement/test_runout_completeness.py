"""`data_completeness: runout` — for pipelines that cannot declare: feeds count as complete once the
period's run-out has passed; the default, `declared`, waits for `feed.complete` (docs/settlement.md)."""

from __future__ import annotations

from typing import Any

from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.support.waiting import eventually

FACILITY = "run-main"
HEALTH = as_party("run-health", facilities=(FACILITY,))
PIPELINE = as_party("run-health", role="pipeline", facilities=(FACILITY,))


def claim(n: int, clean: bool) -> dict[str, Any]:
    return {
        "id": f"run-claim-{n}",
        "source": "billing",
        "type": "claim.submitted",
        "time": f"2026-02-{n + 1:02d}T10:00:00Z",
        "facility": FACILITY,
        "data": {"claim_ref": f"C{n}", "amount": "100.00", "clean": clean},
    }


def contract(id_: str, completeness: str) -> dict[str, Any]:
    return {
        "id": id_,
        "name": "Clean claims",
        "health_system": "run-health",
        "vendor": "run-vendor",
        "facilities": [FACILITY],
        "currency": "USD",
        "timezone": "UTC",
        "start": "2026-01-01",
        "end": "2026-12-31",
        "period": "quarter",
        "runout_days": 30,
        "data_completeness": completeness,
        "terms": [
            {
                "id": "clean",
                "kind": "kpi_incentive",
                "kpi": "clean_claim_rate",
                "direction": "higher_is_better",
                "baseline": "0.5",
                "target": "1.0",
                "max_reward": "1000.00",
            }
        ],
    }


async def test_runout_takes_feeds_as_complete_once_it_has_passed_and_declared_waits(
    stack: SettlementStack,
) -> None:
    # Three clean claims of four: 0.75, halfway from 0.5 to 1.0 → 500.00.
    claims = [claim(n, clean=n != 0) for n in range(4)]
    assert (await stack.ingest.client.post("/v1/events", json=claims, headers=PIPELINE)).status_code == 202
    for id_, completeness in (("run-runout", "runout"), ("run-declared", "declared")):
        created = await stack.settlement.post(
            "/v1/contracts", json=contract(id_, completeness), headers=HEALTH
        )
        assert created.status_code == 201, created.text

    async def q1(id_: str) -> dict[str, Any]:
        return dict(
            (await stack.settlement.get(f"/v1/contracts/{id_}/settlements/2026-Q1", headers=HEALTH)).json()
        )

    runout = await eventually(lambda: q1("run-runout"), lambda s: s["total"] == "500.00")
    assert (runout["status"], runout["data_complete"], runout["data_completeness"]) == (
        "draft",
        True,
        "runout",
    )
    assert runout["lines"][0]["inputs"]["kpi"]["missing"] == []
    declared = await q1("run-declared")
    assert (declared["status"], declared["data_complete"], declared["total"]) == ("blocked", False, "500.00")

    finalized = await stack.settlement.post(
        "/v1/contracts/run-runout/settlements/2026-Q1/finalize", headers=HEALTH
    )
    assert finalized.status_code == 201, finalized.text
    refused = await stack.settlement.post(
        "/v1/contracts/run-declared/settlements/2026-Q1/finalize", headers=HEALTH
    )
    assert refused.status_code == 409
    assert refused.json()["missing_feeds"][0]["feed"] == "claims"
    # Q4 2026 has not ended: under either rule it is open and incomplete (nothing is taken for granted).
    open_q4 = await stack.settlement.get("/v1/contracts/run-runout/settlements/2026-Q4", headers=HEALTH)
    assert (open_q4.json()["status"], open_q4.json()["data_complete"]) == ("open", False)
