from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from kpi_engine.domain.catalogue import CATALOGUE
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.query import UptimeFacts, period_value, systems_of
from kpi_engine.domain.uptime import Outage, elapsed_minutes
from tests.unit.kpi.builders import CALENDAR, d, ev, value

UPTIME = CATALOGUE["uptime_pct"]


def outage(start: str, end: str, planned: bool = False, system: str = "ehr", facility: str = "north"):  # type: ignore[no-untyped-def]
    return ev(
        "system.outage",
        end,
        facility=facility,
        system=system,
        started_at=start,
        ended_at=end,
        planned=planned,
    )


def test_golden_sla_month_864_unplanned_minutes_is_98_percent() -> None:
    # tests/data/golden/README.md: a 30-day month has 43,200 minutes; 864 unplanned minutes → 98.0 %.
    events = [
        outage("2026-04-10T08:00:00-04:00", "2026-04-10T20:00:00-04:00"),  # 720 minutes
        outage("2026-04-20T10:00:00-04:00", "2026-04-20T12:24:00-04:00"),  # 144 minutes
        outage("2026-04-25T00:00:00-04:00", "2026-04-25T06:00:00-04:00", planned=True),  # does not count
    ]
    result = value("uptime_pct", events, start=date(2026, 4, 1), end=date(2026, 5, 1), dimension="ehr")
    assert (result.numerator, result.denominator) == (d("42336"), d("43200"))
    assert result.value == d("98")
    assert result.sample_size == 2


def test_overlapping_outages_are_merged_not_double_counted() -> None:
    events = [
        outage("2026-01-05T10:00:00-05:00", "2026-01-05T11:00:00-05:00"),
        outage("2026-01-05T10:30:00-05:00", "2026-01-05T11:30:00-05:00"),
        outage("2026-01-05T11:30:00-05:00", "2026-01-05T12:00:00-05:00"),  # touching: same outage
    ]
    day = value("uptime_pct", events, start=date(2026, 1, 5), end=date(2026, 1, 6), dimension="ehr")
    assert day.denominator - day.numerator == d("120")


def test_an_outage_across_midnight_is_clipped_to_each_day() -> None:
    events = [outage("2026-01-05T23:00:00-05:00", "2026-01-06T01:30:00-05:00")]
    first = value("uptime_pct", events, start=date(2026, 1, 5), end=date(2026, 1, 6), dimension="ehr")
    second = value("uptime_pct", events, start=date(2026, 1, 6), end=date(2026, 1, 7), dimension="ehr")
    assert (first.denominator - first.numerator, second.denominator - second.numerator) == (d("60"), d("90"))


def test_the_dst_day_has_1380_scheduled_minutes() -> None:
    events = [outage("2026-03-08T10:00:00-04:00", "2026-03-08T10:13:48-04:00")]  # 13.8 minutes
    day = value("uptime_pct", events, start=date(2026, 3, 8), end=date(2026, 3, 9), dimension="ehr")
    assert day.denominator == d("1380")
    assert day.value == d("100") * (d("1380") - d("13.8")) / d("1380")


def test_systems_are_separate_dimensions_and_facilities_roll_up_by_minutes() -> None:
    events = [
        outage("2026-01-05T10:00:00-05:00", "2026-01-05T11:00:00-05:00", system="ehr"),
        outage("2026-01-05T10:00:00-05:00", "2026-01-05T14:00:00-05:00", system="pacs"),
    ]
    both = value(
        "uptime_pct",
        events,
        facilities=("north", "south"),
        start=date(2026, 1, 5),
        end=date(2026, 1, 6),
        dimension="ehr",
    )
    # north lost 60 of 1440 EHR minutes, south none: (2880 − 60) / 2880.
    assert (both.numerator, both.denominator) == (d("2820"), d("2880"))


def test_uptime_without_a_system_counts_every_system_the_facility_has_named() -> None:
    events = [
        outage("2026-02-03T10:00:00-05:00", "2026-02-03T11:00:00-05:00", system="pacs"),  # names pacs
        outage("2026-04-10T08:00:00-04:00", "2026-04-10T20:00:00-04:00", system="ehr"),  # 720 minutes
    ]
    # January: no outage on either system, both known: every scheduled minute available — not null.
    january = value("uptime_pct", events)
    assert (january.numerator, january.denominator, january.value) == (d("89280"), d("89280"), d("100"))
    assert value("uptime_pct", events, dimension="ehr").value == d("100")
    # April: the EHR outage, and PACS (named in February) counts its 43,200 minutes too.
    april = value("uptime_pct", events, start=date(2026, 4, 1), end=date(2026, 5, 1))
    assert (april.numerator, april.denominator, april.sample_size) == (d("85680"), d("86400"), 1)


def test_uptime_without_a_system_counts_a_facility_that_named_none_as_one_system() -> None:
    events = [
        outage("2026-01-05T10:00:00-05:00", "2026-01-05T11:00:00-05:00", planned=True),
        outage("2026-01-05T10:00:00-05:00", "2026-01-05T11:00:00-05:00", facility="south"),
    ]
    # north has never reported an unplanned outage: its systems, as one, were up every minute of January
    # (the SLA reads 100 rather than no data; `complete` says whether a declaration backs it).
    north = value("uptime_pct", events)
    assert (north.numerator, north.denominator, north.value) == (d("44640"), d("44640"), d("100"))
    assert value("uptime_pct", events, dimension="ehr").value == d("100")  # a system named: it counts
    # Both facilities: south's named ehr was down 60 minutes; north counts once, fully available.
    both = value("uptime_pct", events, facilities={"north", "south"})
    assert (both.numerator, both.denominator) == (d("89220"), d("89280"))


DECEMBER = (date(2026, 12, 1), date(2027, 1, 1))
SIXTH_DECEMBER_10AM = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)  # 10:00 in New York


def test_an_open_month_counts_only_the_minutes_that_have_passed() -> None:
    events = [
        *(
            outage("2026-11-03T10:00:00-05:00", "2026-11-03T10:30:00-05:00", system=s)
            for s in ("pacs", "lab")
        ),
        outage("2026-12-02T10:00:00-05:00", "2026-12-02T11:00:00-05:00"),  # 60 minutes, past
        outage("2026-12-06T09:00:00-05:00", "2026-12-06T11:00:00-05:00"),  # today: 60 of them so far
        outage("2026-12-20T10:00:00-05:00", "2026-12-20T11:00:00-05:00"),  # reported ahead: not yet
    ]
    cells = compute_cells(events, CALENDAR)
    today = Outage(datetime(2026, 12, 6, 14, tzinfo=UTC), datetime(2026, 12, 6, 16, tzinfo=UTC))
    facts = UptimeFacts(systems_of(cells), {("north", "ehr"): [today]})

    def december(system: str | None) -> tuple[Decimal, Decimal | None, int]:
        found = period_value(
            UPTIME, cells, {"north"}, *DECEMBER, system, CALENDAR, SIXTH_DECEMBER_10AM, facts
        )
        assert found.status == "provisional"
        return found.numerator, found.denominator, found.sample_size

    # Five whole days and ten hours have passed: 7,800 of December's 44,640 minutes.
    assert december("ehr") == (d("7680"), d("7800"), 2)
    assert december("pacs") == (d("7800"), d("7800"), 0)
    assert december(None) == (d("23280"), d("23400"), 2)  # three systems known
    later = period_value(
        UPTIME,
        cells,
        {"north"},
        date(2026, 12, 10),
        date(2026, 12, 11),
        "ehr",
        CALENDAR,
        SIXTH_DECEMBER_10AM,
        facts,
    )
    assert (later.denominator, later.value) == (d("0"), None)  # nothing has happened yet


def test_an_open_dst_day_counts_its_elapsed_hours_in_utc() -> None:
    noon = datetime(2026, 3, 8, 16, 0, tzinfo=UTC)  # 12:00 EDT; the clocks jumped from 02:00 to 03:00
    day = period_value(UPTIME, {}, {"north"}, date(2026, 3, 8), date(2026, 3, 9), "ehr", CALENDAR, noon)
    assert (day.numerator, day.denominator) == (d("660"), d("660"))


def test_elapsed_minutes_compare_instants_not_wall_clocks_when_dst_ends() -> None:
    # 1 November 2026 in New York: 01:00–02:00 happens twice (EDT, then EST). The bucket ends at 01:45
    # EDT; `now`, in the tenant's zone, is 01:15 EST — half an hour after that end, though its wall clock
    # reads earlier. All of [00:00, 01:45 EDT) has passed: 105 minutes, not the 135 up to now.
    zone = CALENDAR.zone
    start = datetime(2026, 11, 1, 0, 0, tzinfo=zone)
    end = datetime(2026, 11, 1, 1, 45, tzinfo=zone)  # fold 0: EDT
    now = datetime(2026, 11, 1, 1, 15, fold=1, tzinfo=zone)  # fold 1: EST
    assert now.astimezone(UTC) > end.astimezone(UTC)
    assert elapsed_minutes(start, end, now) == d("105")
    # Before the end (01:15 EDT), only the minutes up to now have passed.
    assert elapsed_minutes(start, end, now.replace(fold=0)) == d("75")


def test_days_in_ar_takes_the_latest_snapshot_of_each_facility_in_the_period() -> None:
    events = [
        ev(
            "ar.snapshot", "2026-01-10T08:00:00-05:00", net_ar="5000000.00", avg_daily_net_revenue="100000.00"
        ),
        ev(
            "ar.snapshot", "2026-01-31T08:00:00-05:00", net_ar="4000000.00", avg_daily_net_revenue="100000.00"
        ),
        ev(
            "ar.snapshot", "2026-01-31T18:00:00-05:00", net_ar="4500000.00", avg_daily_net_revenue="100000.00"
        ),
        ev(
            "ar.snapshot",
            "2026-01-20T08:00:00-05:00",
            facility="south",
            net_ar="1000000.00",
            avg_daily_net_revenue="50000.00",
        ),
    ]
    north = value("days_in_ar", events)
    assert north.value == d("45")  # the 18:00 snapshot of the 31st
    both = value("days_in_ar", events, facilities=("north", "south"))
    assert (both.numerator, both.denominator, both.sample_size) == (d("5500000.00"), d("150000.00"), 2)
    early = value("days_in_ar", events, end=date(2026, 1, 15))
    assert early.value == d("50")


def test_a_bucket_is_provisional_until_its_maturation_has_passed() -> None:
    kpi = CATALOGUE["readmission_rate_30d"]
    january = (date(2026, 1, 1), date(2026, 2, 1))
    before = datetime(2026, 3, 3, 4, 59, tzinfo=UTC)  # 2026-03-02 23:59 local: 29 days after the end
    after = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)  # 30 days after 2026-02-01 00:00 local
    assert period_value(kpi, {}, {"north"}, *january, None, CALENDAR, before).status == "provisional"
    assert period_value(kpi, {}, {"north"}, *january, None, CALENDAR, after).status == "mature"
    alos = CATALOGUE["alos_days"]
    assert period_value(alos, {}, {"north"}, *january, None, CALENDAR, before).status == "mature"
    assert Decimal(kpi.maturation_days) == 30
