"""Uptime and readings through the KPI engine's HTTP API, on events recorded in a real PostgreSQL, with
the app's clock fixed: tenant-wide uptime counts every system a facility has named, an open bucket
counts only the minutes that have passed, and a readings request is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables
from kpi_engine.adapters.queries import PostgresKpiReader
from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.config import Settings
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.entrypoints import deps
from kpi_engine.entrypoints.app import create_app
from kpi_engine.entrypoints.gauges import KpiGauges
from kpi_engine.entrypoints.params import MAX_RANGE_DAYS, MAX_READINGS_DAYS
from kpi_engine.handlers import decode
from kpi_engine.metrics import KPI_VALUE
from tests.support.examples import event
from tests.support.identity import GATEWAY_PUBLIC_KEY, SETTLEMENT_PUBLIC_KEY, TENANT, TIMEZONE, token
from vr_shared.events import Origin, encode_event, event_document, validate_event

FACILITY, QUIET = "asheville-main", "mission-west"  # the second never reports an outage
SIXTH_DECEMBER_10AM = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)  # 10:00 in New York


def headers() -> dict[str, str]:
    """A fresh identity per request: a token made at import would expire before a long suite reaches it."""
    return {"X-VR-Identity": token(role="ops")}


Api = Callable[[Callable[[], datetime]], httpx.AsyncClient]


def outage(start: str, end: str, *, system: str = "ehr", planned: bool = False) -> dict[str, Any]:
    return event("system.outage", time=end, system=system, started_at=start, ended_at=end, planned=planned)


async def record(engine: AsyncEngine, schema: str, events: list[dict[str, Any]]) -> None:
    origin = Origin(TENANT, TIMEZONE)
    batch = [
        decode(Message(0, i, encode_event(origin, event_document(validate_event(e)))))
        for i, e in enumerate(events)
    ]
    assert all(isinstance(d, Decoded) for d in batch)
    await PostgresRecorder(engine, schema).record(batch, [], SIXTH_DECEMBER_10AM)  # type: ignore[arg-type]


@pytest.fixture
async def api(kpi_schema: tuple[AsyncEngine, str]) -> AsyncIterator[Api]:
    """The engine's app on the test schema, its clock chosen per test (no broker: reads only)."""
    engine, _ = kpi_schema
    clients: list[httpx.AsyncClient] = []
    settings = Settings.model_validate(
        {"identity_public_key": GATEWAY_PUBLIC_KEY, "settlement_public_key": SETTLEMENT_PUBLIC_KEY}
    )

    def with_clock(clock: Callable[[], datetime]) -> httpx.AsyncClient:
        app = create_app(settings, clock=clock)
        app.dependency_overrides[deps._reader] = lambda: PostgresKpiReader(engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi-engine")
        clients.append(client)
        return client

    yield with_clock
    for client in clients:
        await client.aclose()


async def read(client: httpx.AsyncClient, *readings: dict[str, Any], facility: str = FACILITY) -> list[Any]:
    response = await client.post(
        "/v1/kpis/readings", json={"facility": [facility], "readings": list(readings)}, headers=headers()
    )
    assert response.status_code == 200, response.text
    return list(response.json()["readings"])


async def test_tenant_wide_uptime_is_100_without_outage_and_counts_every_named_system(
    kpi_schema: tuple[AsyncEngine, str], api: Api
) -> None:
    engine, schema = kpi_schema
    await record(
        engine,
        schema,
        [
            outage("2026-02-03T10:00:00-05:00", "2026-02-03T11:00:00-05:00", system="pacs"),
            outage("2026-04-10T08:00:00-04:00", "2026-04-10T20:00:00-04:00"),  # 720 minutes of EHR
            event(
                "feed.complete",
                time="2026-05-01T06:00:00-04:00",
                feed="systems",
                through="2026-05-01T00:00:00-04:00",
            ),
        ],
    )
    client = api(lambda: SIXTH_DECEMBER_10AM)
    january, january_ehr, april = await read(
        client,
        {"kpi": "uptime_pct", "from": "2026-01-01", "to": "2026-02-01"},
        {"kpi": "uptime_pct", "from": "2026-01-01", "to": "2026-02-01", "dimension": "ehr"},
        {"kpi": "uptime_pct", "from": "2026-04-01", "to": "2026-05-01"},
    )
    # January: the systems feed complete, no outage, EHR and PACS known: 100, as with system=ehr.
    assert (january["value"], january["numerator"], january["denominator"]) == ("100", "89280", "89280")
    assert january["complete"] is True and january_ehr["value"] == "100"
    # April: PACS, named in February, counts all its minutes beside the EHR outage.
    assert (april["numerator"], april["denominator"], april["sample_size"]) == ("85680", "86400", "1")
    # A facility that has named no system counts its systems as one, up every minute: 100, never a null
    # that blocks a statement forever — and not complete, since it declared nothing.
    [quiet] = await read(
        client, {"kpi": "uptime_pct", "from": "2026-01-01", "to": "2026-02-01"}, facility=QUIET
    )
    assert (quiet["value"], quiet["denominator"], quiet["complete"]) == ("100", "44640", False)


async def test_an_open_month_counts_only_the_minutes_before_the_apps_clock(
    kpi_schema: tuple[AsyncEngine, str], api: Api
) -> None:
    engine, schema = kpi_schema
    await record(
        engine,
        schema,
        [
            outage("2026-11-03T10:00:00-05:00", "2026-11-03T10:30:00-05:00", system="pacs"),
            outage("2026-12-02T10:00:00-05:00", "2026-12-02T11:00:00-05:00"),  # 60 minutes, past
            outage("2026-12-06T09:00:00-05:00", "2026-12-06T11:00:00-05:00"),  # today: 60 so far
            outage("2026-12-20T10:00:00-05:00", "2026-12-20T11:00:00-05:00"),  # reported ahead
        ],
    )
    client = api(lambda: SIXTH_DECEMBER_10AM)
    response = await client.get(
        "/v1/kpis/uptime_pct/values",
        params={
            "facility": FACILITY,
            "from": "2026-12-01",
            "to": "2027-01-01",
            "granularity": "month",
            "dimension": "ehr",
        },
        headers=headers(),
    )
    assert response.status_code == 200, response.text
    [december] = response.json()["values"]
    # Five whole days and ten hours of December have passed: 7,800 of its 44,640 minutes.
    assert (december["numerator"], december["denominator"], december["sample_size"]) == ("7680", "7800", "2")
    assert december["status"] == "provisional"
    tenant_wide, later = await read(
        client,
        {"kpi": "uptime_pct", "from": "2026-12-01", "to": "2027-01-01"},
        {"kpi": "uptime_pct", "from": "2026-12-10", "to": "2026-12-21", "dimension": "ehr"},
    )
    assert (tenant_wide["numerator"], tenant_wide["denominator"]) == ("15480", "15600")  # EHR and PACS
    assert (later["value"], later["denominator"]) == (None, "0")  # nothing of it has happened yet
    week = await client.get(
        "/v1/kpis/uptime_pct/rolling",
        params={"facility": FACILITY, "window": "7d", "at": "2026-12-06", "dimension": "ehr"},
        headers=headers(),
    )
    # 30 November and 1–5 December whole, 6 December until 10:00.
    assert (week.json()["values"][0]["numerator"], week.json()["values"][0]["denominator"]) == (
        "9120",
        "9240",
    )
    # The dashboard gauge (30 days ending today) on the same clock: 7 November – 5 December and 10 hours.
    await KpiGauges(engine, {TENANT: TIMEZONE}, clock=lambda: SIXTH_DECEMBER_10AM).refresh()
    gauge = KPI_VALUE.labels(TENANT, "uptime_pct", FACILITY, "ehr")._value.get()
    assert gauge == float(Decimal(100) * (29 * 1440 + 600 - 120) / (29 * 1440 + 600))
    # The same month read once it has ended counts every minute, the outage reported ahead included.
    closed = api(lambda: datetime(2027, 1, 2, tzinfo=UTC))
    [whole] = await read(
        closed, {"kpi": "uptime_pct", "from": "2026-12-01", "to": "2027-01-01", "dimension": "ehr"}
    )
    assert (whole["numerator"], whole["denominator"]) == (str(44640 - 60 - 120 - 60), "44640")


async def test_a_readings_request_is_bounded_per_reading_and_in_total(api: Api) -> None:
    client = api(lambda: SIXTH_DECEMBER_10AM)

    async def refused(*readings: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(
            "/v1/kpis/readings", json={"readings": list(readings)}, headers=headers()
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return dict(response.json())

    centuries = await refused({"kpi": "uptime_pct", "from": "1900-01-01", "to": "2200-01-01"})
    assert centuries["errors"][0]["path"] == "$.readings[0].to"
    assert "3700 days" in centuries["detail"]
    # Days the tenant's calendar cannot place (year 1 east of UTC, a maturation after 9999) are refused.
    year_one = await refused({"kpi": "uptime_pct", "from": "0001-01-01", "to": "0001-02-01"})
    assert year_one["errors"][0]["path"] == "$.readings[0].from"
    last = await client.get(
        "/v1/kpis/readmission_rate_30d/values",
        params={"from": "2199-12-01", "to": "9999-12-31T23:00:00Z"},
        headers={"X-VR-Identity": token(role="ops", timezone="Asia/Tokyo")},
    )
    assert last.status_code == 422 and last.json()["errors"][0]["path"] == "$.query.to"
    too_long = {"kpi": "clean_claim_rate", "from": "2020-01-01", "to": "2030-02-18"}  # 3,700 + 1 days
    assert (await refused({"kpi": "alos_days", "from": "2026-01-01", "to": "2026-02-01"}, too_long))[
        "errors"
    ][0]["path"] == "$.readings[1].to"
    longest = {"kpi": "clean_claim_rate", "from": "2020-01-01", "to": "2030-02-17"}
    assert len(await read(client, longest)) == 1  # exactly MAX_RANGE_DAYS
    # The work of one request: as many readings of the longest range as fit, and one more.
    fit = MAX_READINGS_DAYS // MAX_RANGE_DAYS
    assert len(await read(client, *[longest] * fit)) == fit
    total = await refused(*[longest] * (fit + 1))
    assert total["errors"][0]["path"] == "$.readings"


async def test_a_reading_names_a_dimension_only_as_a_values_query_may(api: Api) -> None:
    """An empty dimension is how uptime names no system (ALL_SYSTEMS): a reading asking for it, or for
    another KPI's dimension, is refused as the values API refuses it — 422 naming the reading's field."""
    client = api(lambda: SIXTH_DECEMBER_10AM)
    january = {"kpi": "uptime_pct", "from": "2026-01-01", "to": "2026-02-01"}
    for dimension, detail in (
        ("", "dimension needs a value, e.g. ehr"),
        ("system:", "dimension needs a value, e.g. ehr"),
        ("category:ehr", "the dimension of uptime_pct is system"),
    ):
        response = await client.post(
            "/v1/kpis/readings",
            json={
                "readings": [
                    {"kpi": "alos_days", "from": "2026-01-01", "to": "2026-02-01"},
                    {**january, "dimension": dimension},
                ]
            },
            headers=headers(),
        )
        assert response.status_code == 422, (dimension, response.text)
        assert response.json()["errors"][0]["path"] == "$.readings[1].dimension"
        assert response.json()["detail"] == detail
        values = await client.get(
            "/v1/kpis/uptime_pct/values",
            params={"from": "2026-01-01", "to": "2026-02-01", "dimension": dimension},
            headers=headers(),
        )
        assert (values.status_code, values.json()["detail"]) == (422, detail)
    # The values API's spelling `system:ehr` is a reading's too, answered as the system it names.
    [ehr] = await read(client, {**january, "dimension": "system:ehr"})
    assert ehr["dimension"] == {"system": "ehr"}


async def test_a_rolling_window_spans_at_most_what_a_values_query_may(api: Api) -> None:
    client = api(lambda: SIXTH_DECEMBER_10AM)

    async def rolling(window: str) -> httpx.Response:
        return await client.get(
            "/v1/kpis/alos_days/rolling", params={"window": window, "at": "2026-12-01"}, headers=headers()
        )

    assert (await rolling(f"{MAX_RANGE_DAYS}d")).status_code == 200
    longer = await rolling(f"{MAX_RANGE_DAYS + 1}d")
    assert longer.status_code == 422, longer.text
    assert longer.json()["errors"][0]["path"] == "$.query.window"
    assert f"1d to {MAX_RANGE_DAYS}d" in longer.json()["detail"]
    assert (await rolling("9999d")).status_code == 422


async def announced(engine: AsyncEngine) -> set[tuple[str, str]]:
    """The (day, system) of every queued uptime notice, then the outbox emptied as a publisher would."""
    async with engine.begin() as conn:
        rows = await conn.execute(select(tables.outbox.c.payload))
        await conn.execute(delete(tables.outbox))
    return {(r.payload["bucket"], r.payload["dimension"]) for r in rows if r.payload["kpi"] == "uptime_pct"}


async def test_a_system_becoming_known_announces_the_days_its_facility_had_other_systems_down(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """A final month with an EHR outage reads differently once PACS is known: its day is announced
    again, so settlement reconciles it; a later PACS outage changes nothing elsewhere."""
    engine, schema = kpi_schema
    await record(engine, schema, [outage("2026-01-10T10:00:00-05:00", "2026-01-10T11:00:00-05:00")])
    assert await announced(engine) == {("2026-01-10", "ehr")}
    first_pacs = outage("2026-03-03T10:00:00-05:00", "2026-03-03T11:00:00-05:00", system="pacs")
    await record(engine, schema, [first_pacs])
    assert await announced(engine) == {("2026-03-03", "pacs"), ("2026-01-10", "ehr")}
    second_pacs = outage("2026-04-05T10:00:00-05:00", "2026-04-05T11:00:00-05:00", system="pacs")
    await record(engine, schema, [second_pacs])
    assert await announced(engine) == {("2026-04-05", "pacs")}
    retractions = [event("event.retracted", retracted_id=e["id"]) for e in (first_pacs, second_pacs)]
    await record(engine, schema, retractions)
    assert await announced(engine) == {("2026-03-03", "pacs"), ("2026-04-05", "pacs"), ("2026-01-10", "ehr")}


async def announced_by_facility(engine: AsyncEngine) -> set[tuple[str, str]]:
    """The (facility, day) of every queued uptime notice — what settlement matches final statements by —
    then the outbox emptied as a publisher would."""
    async with engine.begin() as conn:
        rows = await conn.execute(select(tables.outbox.c.payload))
        await conn.execute(delete(tables.outbox))
    return {(r.payload["facility"], r.payload["bucket"]) for r in rows if r.payload["kpi"] == "uptime_pct"}


async def test_a_system_becoming_known_names_its_facility_on_every_day_another_facility_was_down(
    kpi_schema: tuple[AsyncEngine, str], api: Api
) -> None:
    """A statement over two facilities reads the tenant-wide uptime of both; settlement finds the final
    statements a notice touches by the facility it names. So when a facility names a system, a notice
    naming that facility goes out on every day the tenant had an outage — the other facility's too."""
    engine, schema = kpi_schema
    other_down = outage("2026-01-10T10:00:00-05:00", "2026-01-10T11:00:00-05:00")
    await record(engine, schema, [{**other_down, "facility": QUIET}])
    assert await announced_by_facility(engine) == {(QUIET, "2026-01-10")}
    first_system = outage("2026-03-03T10:00:00-05:00", "2026-03-03T11:00:00-05:00", system="pacs")
    await record(engine, schema, [first_system])
    assert await announced_by_facility(engine) == {(FACILITY, "2026-03-03"), (FACILITY, "2026-01-10")}

    client = api(lambda: SIXTH_DECEMBER_10AM)

    async def january_of_both() -> tuple[str, str]:
        response = await client.post(
            "/v1/kpis/readings",
            json={
                "facility": [FACILITY, QUIET],
                "readings": [{"kpi": "uptime_pct", "from": "2026-01-01", "to": "2026-02-01"}],
            },
            headers=headers(),
        )
        assert response.status_code == 200, response.text
        [january] = response.json()["readings"]
        return january["numerator"], january["denominator"]

    assert await january_of_both() == (str(2 * 44640 - 60), str(2 * 44640))  # PACS of one, EHR of the other
    # A second system of the first facility: January over both now counts three systems' minutes — the
    # final statement over both that January moves, and a notice naming the first facility reaches it.
    second_system = outage("2026-04-05T10:00:00-04:00", "2026-04-05T11:00:00-04:00", system="lab")
    await record(engine, schema, [second_system])
    assert await announced_by_facility(engine) == {
        (FACILITY, "2026-04-05"),
        (FACILITY, "2026-03-03"),  # its PACS day, announced again (another of its systems)
        (FACILITY, "2026-01-10"),
    }
    assert await january_of_both() == (str(3 * 44640 - 60), str(3 * 44640))
