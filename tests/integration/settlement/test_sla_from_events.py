"""The SLA golden example from `system.outage` events through ingest and the KPI engine; then
finalize (idempotent), and late outage events after finalization becoming an adjustment."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prometheus_client import generate_latest

from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.support.waiting import eventually, metric_value

TENANT, FACILITY = "sla-health", "sla-main"
HEALTH_SYSTEM = as_party(TENANT, facilities=(FACILITY,))
PIPELINE = as_party(TENANT, role="pipeline", facilities=(FACILITY,))
VENDOR_BILLING = as_party("sla-vendor", role="billing", vendor=True)
CONTRACT = {
    "id": "sla-2026",
    "name": "EHR hosting SLA",
    "health_system": TENANT,
    "vendor": "sla-vendor",
    "facilities": [FACILITY],
    "currency": "USD",
    "timezone": "UTC",
    "start": "2026-01-01",
    "end": "2026-12-31",
    "period": "quarter",
    "runout_days": 30,
    "fees": {"monthly_fee": "10000.00"},
    "terms": [
        {
            "id": "ehr-uptime",
            "kind": "sla_credit",
            "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
            "fee": "monthly_fee",
            "tiers": [
                {"below": "99.99", "credit_rate": "0.05"},
                {"below": "98.50", "credit_rate": "0.10"},
                {"below": "97.00", "credit_rate": "0.20"},
            ],
        }
    ],
}


def outage(id_: str, start: str, end: str, *, planned: bool = False) -> dict[str, Any]:
    return {
        "id": id_,
        "source": "monitoring",
        "type": "system.outage",
        "time": end,
        "facility": FACILITY,
        "data": {"system": "ehr", "started_at": start, "ended_at": end, "planned": planned},
    }


# Q2 2026 in UTC: April has 43,200 minutes, May 44,640, June 43,200.
# 99.995 % of April → 2.16 minutes down; 98.0 % of May → 892.8 minutes; 96.5 % of June → 1,512 minutes.
OUTAGES = [
    outage("o-apr", "2026-04-10T03:00:00Z", "2026-04-10T03:02:09.600Z"),
    outage("o-may-1", "2026-05-05T00:00:00Z", "2026-05-05T10:00:00Z"),  # 600 minutes
    outage("o-may-2", "2026-05-05T09:00:00Z", "2026-05-05T14:52:48Z"),  # overlaps: 292.8 more
    outage("o-jun", "2026-06-20T12:00:00Z", "2026-06-21T13:12:00Z"),  # 1,512 minutes over two days
    outage("o-jun-planned", "2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z", planned=True),
]


def complete(feed: str, *, through: str) -> dict[str, Any]:
    """The monitoring system's end-of-period close: everything before `through` has been sent."""
    return {
        "id": f"complete-{feed}-{through}",
        "source": "monitoring",
        "type": "feed.complete",
        "time": through,
        "facility": FACILITY,
        "data": {"feed": feed, "through": through},
    }


WRONG_DECLARATIONS = 'vr_kpi_events_before_watermark_total{feed="systems"}'


async def statement(stack: SettlementStack, period: str) -> dict[str, Any]:
    response = await stack.settlement.get(
        f"/v1/contracts/sla-2026/settlements/{period}", headers=HEALTH_SYSTEM
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_sla_credits_from_outage_events_then_finalize_then_adjust(stack: SettlementStack) -> None:
    posted = await stack.ingest.client.post("/v1/events", json=OUTAGES, headers=PIPELINE)
    assert posted.status_code == 202, posted.text
    created = await stack.settlement.post("/v1/contracts", json=CONTRACT, headers=HEALTH_SYSTEM)
    assert created.status_code == 201, created.text

    q2 = await eventually(lambda: statement(stack, "2026-Q2"), lambda s: s["total"] == "-3000.00")
    steps = {s["name"]: s["value"] for s in q2["lines"][0]["steps"]}
    assert [steps[f"2026-0{m}.value"] for m in (4, 5, 6)] == ["99.995", "98.0", "96.5"]
    assert [steps[f"2026-0{m}.credit"] for m in (4, 5, 6)] == ["0.00", "1000.0000", "2000.0000"]
    may = q2["lines"][0]["inputs"]["2026-05"]
    assert (may["numerator"], may["denominator"]) == ("43747.2", "44640")

    # Nothing declared the monitoring feed complete: finalize refuses and says what is missing.
    path = "/v1/contracts/sla-2026/settlements/2026-Q2/finalize"
    assert q2["data_complete"] is False and q2["status"] == "blocked"  # run-out (30 days) long passed
    refused = await stack.settlement.post(path, headers=VENDOR_BILLING)
    assert refused.status_code == 409
    gaps = {(m["source"], m["facility"], m["feed"]) for m in refused.json()["missing_feeds"]}
    assert gaps == {(month, FACILITY, "systems") for month in ("2026-04", "2026-05", "2026-06")}
    declared = [complete("systems", through="2026-07-01T00:00:00Z")]
    assert (await stack.ingest.client.post("/v1/events", json=declared, headers=PIPELINE)).status_code == 202
    q2 = await eventually(lambda: statement(stack, "2026-Q2"), lambda s: s["data_complete"])
    assert q2["status"] == "draft" and q2["lines"][0]["inputs"]["2026-06"]["missing"] == []

    # Finalize: vendor billing may; a retry with the same key returns the same statement.
    first = await stack.settlement.post(path, headers={**VENDOR_BILLING, "Idempotency-Key": "fin-q2"})
    assert first.status_code == 201, first.text
    again = await stack.settlement.post(path, headers={**VENDOR_BILLING, "Idempotency-Key": "fin-q2"})
    assert again.status_code == 200
    final = first.json()
    assert again.json()["sha256"] == final["sha256"] and final["status"] == "final"
    assert final["basis"]["contract"]["id"] == "sla-2026"
    not_over = await stack.settlement.post(
        "/v1/contracts/sla-2026/settlements/2026-Q4/finalize", headers=VENDOR_BILLING
    )
    assert not_over.status_code == 409

    # A late outage in May pushes it below 97 %: the final statement stays, an adjustment appears.
    # It is dated before the feed's watermark: counted, and the declaration shows as wrong.
    before = metric_value(generate_latest().decode(), WRONG_DECLARATIONS)
    late = [outage("o-may-late", "2026-05-20T00:00:00Z", "2026-05-20T12:00:00Z")]
    assert (await stack.ingest.client.post("/v1/events", json=late, headers=PIPELINE)).status_code == 202

    after = await eventually(lambda: statement(stack, "2026-Q2"), lambda s: len(s["adjustments"]) == 1)
    assert after["sha256"] == final["sha256"] and after["total"] == "-3000.00"
    adjustment = after["adjustments"][0]
    assert adjustment["total_delta"] == "-1000.00"
    assert adjustment["lines"] == [{"term_id": "ehr-uptime", "delta": "-1000.00"}]
    assert adjustment["total_after"] == "-4000.00"
    assert metric_value(generate_latest().decode(), WRONG_DECLARATIONS) == before + 1

    # Reconciling again on the same data records nothing new.
    again_reconciled = await stack.settlement.post(
        "/v1/contracts/sla-2026/settlements/2026-Q2/reconcile", headers=VENDOR_BILLING
    )
    assert again_reconciled.json() == {"adjustment": None}
    assert Decimal(after["total"]) + Decimal(adjustment["total_delta"]) == Decimal("-4000.00")


NY, NY_FACILITY = "America/New_York", "dst-main"
NY_HEALTH = as_party("dst-health", facilities=(NY_FACILITY,), tz=NY)
NY_PIPELINE = as_party("dst-health", role="pipeline", facilities=(NY_FACILITY,), tz=NY)


def ny_outage(id_: str, start: str, end: str) -> dict[str, Any]:
    return {**outage(id_, start, end), "facility": NY_FACILITY}


async def test_an_sla_month_with_the_clock_change_is_counted_in_local_minutes(stack: SettlementStack) -> None:
    """March 2026 in New York has 31 days but one of 23 hours (clocks go forward on the 8th at 02:00):
    31 × 1,440 − 60 = 44,580 scheduled minutes. Unplanned EHR outages:
    - 8 March 01:30 EST → 03:30 EDT: 06:30Z → 07:30Z, 60 minutes (not 120: the hour 02:00–03:00 never was);
    - 20 March 10:00 → 14:00 EDT: 240 minutes;
    - 31 March 23:30 → 1 April 00:30 EDT: 30 minutes in March, the rest in April.
    Down 330, available 44,250: uptime 100 × 44,250 / 44,580 = 99.2597… %, below 99.5 → credit rate 0.10
    of the 10,000.00 monthly fee → −1,000.00."""
    events = [
        ny_outage("dst-1", "2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"),
        ny_outage("dst-2", "2026-03-20T10:00:00-04:00", "2026-03-20T14:00:00-04:00"),
        ny_outage("dst-3", "2026-03-31T23:30:00-04:00", "2026-04-01T00:30:00-04:00"),
        {
            **complete("systems", through="2026-04-01T00:00:00-04:00"),
            "facility": NY_FACILITY,
            "time": "2026-04-01T06:00:00-04:00",  # the morning close
        },
    ]
    assert (await stack.ingest.client.post("/v1/events", json=events, headers=NY_PIPELINE)).status_code == 202
    contract = {
        **CONTRACT,
        "id": "dst-2026",
        "health_system": "dst-health",
        "facilities": [NY_FACILITY],
        "timezone": NY,
        "period": "month",
        "runout_days": 0,
        "terms": [
            {
                **CONTRACT["terms"][0],  # type: ignore[index]
                "tiers": [
                    {"below": "99.9", "credit_rate": "0.05"},
                    {"below": "99.5", "credit_rate": "0.10"},
                    {"below": "99.0", "credit_rate": "0.20"},
                ],
            }
        ],
    }
    created = await stack.settlement.post("/v1/contracts", json=contract, headers=NY_HEALTH)
    assert created.status_code == 201, created.text

    async def march() -> dict[str, Any]:
        got = await stack.settlement.get("/v1/contracts/dst-2026/settlements/2026-03", headers=NY_HEALTH)
        assert got.status_code == 200, got.text
        return dict(got.json())

    statement_ = await eventually(march, lambda s: s["data_complete"] and s["total"] == "-1000.00")
    reading = statement_["lines"][0]["inputs"]["2026-03"]
    assert (Decimal(reading["numerator"]), Decimal(reading["denominator"])) == (
        Decimal(44250),
        Decimal(44580),
    )
    assert Decimal(reading["value"]).quantize(Decimal("0.0001")) == Decimal("99.2598")
    final = await stack.settlement.post(
        "/v1/contracts/dst-2026/settlements/2026-03/finalize", headers=NY_HEALTH
    )
    assert final.status_code == 201, final.text
    assert final.json()["total"] == "-1000.00"
