"""Recording batches gives exactly the cells a full recomputation gives, whatever arrives how often."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables as t
from kpi_engine.adapters.rebuild import Difference, PostgresRebuild
from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.messages import DeadLetter, Decoded, Message
from kpi_engine.handlers import decode
from tests.integration.kpi.conftest import stored_cells
from tests.unit.kpi.builders import CALENDAR, ev
from tests.unit.kpi.test_readmissions import STAYS, admit, at, discharge
from vr_shared.events import Event, Origin, encode_event, event_document

TENANT = "mission-health"
ORIGIN = Origin(TENANT, "America/New_York")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def mixed_events() -> list[Event]:
    def at(day: int) -> str:
        return f"2026-01-{day:02d}T10:00:00-05:00"

    return [
        *STAYS,
        ev("claim.submitted", at(3), clean=True),
        ev("claim.submitted", at(3), clean=False),
        ev(
            "claim.adjudicated", at(4), outcome="denied", initial=True, paid_amount="0", denied_amount="10.00"
        ),
        ev("payment.received", at(5), amount="100.00", patient_payment=True, point_of_service=True),
        ev("cost.incurred", at(5), category="revenue_cycle", amount="7.50"),
        ev("medication.ordered", at(6), entry_method="verbal"),
        ev("medication.administered", at(6), patient_scanned=True, medication_scanned=True),
        ev("adverse_drug_event.recorded", at(7), harm_category="F"),
        ev("sepsis.case_evaluated", at(7), bundle_compliant=True, excluded=False),
        ev(
            "system.outage",
            at(8),
            system="ehr",
            started_at="2026-01-07T23:00:00-05:00",
            ended_at="2026-01-08T01:00:00-05:00",
            planned=False,
        ),
        ev(
            "system.outage",
            at(8),
            system="ehr",
            started_at="2026-01-08T00:30:00-05:00",
            ended_at="2026-01-08T02:00:00-05:00",
            planned=False,
        ),
        ev("ar.snapshot", at(9), net_ar="900.00", avg_daily_net_revenue="30.00"),
        ev("ar.snapshot", at(9).replace("10:00", "11:00"), net_ar="600.00", avg_daily_net_revenue="30.00"),
    ]


def messages(events: list[Event], first_offset: int = 0) -> list[Message]:
    return [
        Message(0, first_offset + i, encode_event(ORIGIN, event_document(e))) for i, e in enumerate(events)
    ]


async def record(engine: AsyncEngine, batch: list[Message], schema: str) -> None:
    decoded = [decode(m) for m in batch]
    await PostgresRecorder(engine, schema).record(
        [d for d in decoded if isinstance(d, Decoded)], [d for d in decoded if isinstance(d, DeadLetter)], NOW
    )


async def test_shuffled_batches_with_redeliveries_equal_the_full_recomputation(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = kpi_schema
    events = mixed_events()
    stream = messages(events)
    shuffled = random.Random(7).sample(stream, len(stream))
    redelivered = shuffled + shuffled[:10] + random.Random(8).sample(stream, 15)  # replays and duplicates
    for start in range(0, len(redelivered), 9):
        await record(engine, redelivered[start : start + 9], schema)
    assert await stored_cells(engine, TENANT) == compute_cells(events, CALENDAR)


async def test_retraction_before_or_after_the_event_removes_exactly_its_contribution(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = kpi_schema
    events = mixed_events()
    # An admission (readmission join) retracted before it arrives; an outage (merged intervals) and a
    # claim (additive) retracted after they counted.
    early_target, late_targets = events[0], (events[-3], events[len(STAYS)])
    retract = [
        ev("event.retracted", "2026-02-01T10:00:00-05:00", retracted_id=e.id, source=e.source)
        for e in (early_target, *late_targets)
    ]
    stream = messages(events)
    await record(engine, messages([retract[0]], first_offset=1000), schema)
    await record(engine, stream, schema)
    await record(engine, messages(retract[1:], first_offset=1001), schema)
    effective = [e for e in events if e not in (early_target, *late_targets)]
    assert await stored_cells(engine, TENANT) == compute_cells(effective, CALENDAR)


async def test_same_key_other_payload_is_a_recorded_conflict_and_the_first_one_counts(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = kpi_schema
    first = ev("claim.submitted", "2026-01-03T10:00:00-05:00", clean=True)
    other = first.model_copy(update={"data": first.data.model_copy(update={"clean": False})})
    await record(engine, messages([first]), schema)
    await record(engine, messages([other, other], first_offset=5), schema)
    cells = await stored_cells(engine, TENANT)
    assert cells == compute_cells([first], CALENDAR)
    async with engine.connect() as conn:
        [row] = (await conn.execute(select(t.conflicts))).all()
    assert (row.id, row.deliveries, row.payload["data"]["clean"]) == (first.id, 2, False)


async def test_poison_messages_are_dead_lettered_with_their_reason(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = kpi_schema
    good = messages([ev("claim.submitted", "2026-01-03T10:00:00-05:00", clean=True)])
    poison = [
        Message(0, 50, b"not json"),
        Message(0, 51, b'{"tenant": "mission-health", "source": "s", "id": "x", "type": "claim.submitted"}'),
    ]
    await record(engine, good + poison, schema)
    async with engine.connect() as conn:
        rows = {r.offset: r for r in await conn.execute(select(t.dead_letters))}
    assert set(rows) == {50, 51}
    assert rows[50].reason.startswith("undecodable message")
    assert (rows[51].tenant, rows[51].source, rows[51].id) == ("mission-health", "s", "x")
    assert rows[51].reason.startswith("invalid event")
    assert len(await stored_cells(engine, TENANT)) == 1


async def test_repeats_in_the_same_batch_and_later_are_counted_as_duplicates(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = kpi_schema
    claim = ev("claim.submitted", "2026-01-03T10:00:00-05:00", clean=True)
    [message] = messages([claim])
    again = Message(0, 1, message.value)
    await record(engine, [message, again], schema)  # first delivery and a repeat in one batch
    await record(
        engine, [Message(0, 2, message.value), message], schema
    )  # a later repeat, and a replay of offset 0
    async with engine.connect() as conn:
        [row] = (await conn.execute(select(t.events.c.duplicates))).all()
    assert row.duplicates == 2
    assert await stored_cells(engine, TENANT) == compute_cells([claim], CALENDAR)


async def test_a_cancel_before_or_after_its_fact_keeps_exactly_that_fact_out(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """A11 and A13 (docs/events.md): the admission and the discharge they name stop counting whichever
    arrives first — one cancel recorded before its fact, one after it counted; a fact of the encounter
    at another time counts. Equal to the full recomputation."""
    engine, schema = kpi_schema

    def at(day: str, clock: str = "10:00") -> str:
        return f"2026-01-{day}T{clock}:00-05:00"

    def cancel(kind: str, patient: str, encounter: str, when: str) -> Event:
        field = "admitted_at" if kind == "admission" else "discharged_at"
        return ev(
            f"encounter.{kind}_cancelled", when, patient_ref=patient, encounter_ref=encounter, **{field: when}
        )

    admitted = ev(
        "encounter.admitted",
        at("02", "08:00"),
        patient_ref="Z1",
        encounter_ref="S",
        encounter_class="inpatient",
    )
    again = ev(
        "encounter.admitted",
        at("02", "11:00"),
        patient_ref="Z1",
        encounter_ref="S",
        encounter_class="inpatient",
    )
    first_discharge = ev(
        "encounter.discharged",
        at("04"),
        patient_ref="Z1",
        encounter_ref="S",
        encounter_class="inpatient",
        admitted_at=at("02", "11:00"),
        disposition="home",
    )
    second_discharge = ev(
        "encounter.discharged",
        at("06"),
        patient_ref="Z1",
        encounter_ref="S",
        encounter_class="inpatient",
        admitted_at=at("02", "11:00"),
        disposition="home",
    )
    readmission = ev(
        "encounter.admitted", at("10"), patient_ref="Z1", encounter_ref="T", encounter_class="inpatient"
    )
    cancel_admission = cancel("admission", "Z1", "S", at("02", "08:00"))
    cancel_discharge = cancel("discharge", "Z1", "S", at("04"))
    other = mixed_events()

    await record(engine, messages([cancel_admission], first_offset=2000), schema)  # before its fact
    await record(engine, messages([*other, admitted, again, first_discharge]), schema)
    await record(engine, messages([cancel_discharge], first_offset=2001), schema)  # after its fact counted
    await record(engine, messages([second_discharge, readmission], first_offset=2002), schema)
    everything = [
        *other,
        admitted,
        again,
        first_discharge,
        second_discharge,
        readmission,
        cancel_admission,
        cancel_discharge,
    ]
    assert await stored_cells(engine, TENANT) == compute_cells(everything, CALENDAR)
    standing = [*other, again, second_discharge, readmission]
    assert await stored_cells(engine, TENANT) == compute_cells(standing, CALENDAR)


def _kpi(cells: dict[CellKey, Cell], kpi: str) -> dict[date, Cell]:
    return {key.day: cell for key, cell in cells.items() if key.kpi == kpi}


async def test_a_discharge_re_sent_with_a_corrected_time_replaces_the_one_recorded_before(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """FHIR Encounter re-sent with a corrected period.end (or HL7 A03 sent again): one stay, one
    standing discharge, the one recorded last — the first one's length of stay, patient days and index
    stay are taken back; retract the correction and the first one stands again."""
    engine, schema = kpi_schema
    stay = admit("R", "1", at("01-01"))
    first, corrected = (
        discharge("R", "1", at("01-01"), at("01-05")),
        discharge("R", "1", at("01-01"), at("01-08")),
    )
    await record(engine, messages([stay, first]), schema)
    await record(engine, messages([corrected], first_offset=2), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {date(2026, 1, 8): Cell(Decimal(7), Decimal(1), 1)}  # not 4 + 7 / 2
    assert _kpi(cells, "readmission_rate_30d") == {date(2026, 1, 8): Cell(Decimal(0), Decimal(1), 1)}
    assert cells == compute_cells([stay, first, corrected], CALENDAR)
    async with engine.connect() as conn:
        index = (await conn.execute(select(t.readmission_index.c.id))).scalars().all()
    assert index == [corrected.id]
    retraction = ev("event.retracted", at("01-09"), retracted_id=corrected.id, source=corrected.source)
    await record(engine, messages([retraction], first_offset=3), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {date(2026, 1, 5): Cell(Decimal(4), Decimal(1), 1)}
    assert cells == compute_cells([stay, first], CALENDAR)


async def test_discharges_of_one_stay_in_one_batch_leave_the_last_one_standing(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, schema = kpi_schema
    stay = admit("R", "1", at("01-01"))
    later, earlier = (
        discharge("R", "1", at("01-01"), at("01-08")),
        discharge("R", "1", at("01-01"), at("01-05")),
    )
    await record(engine, messages([stay, later, earlier]), schema)  # corrected back, in the same batch
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {date(2026, 1, 5): Cell(Decimal(4), Decimal(1), 1)}
    assert cells == compute_cells([stay, later, earlier], CALENDAR)


async def test_a_cancelled_admission_takes_back_the_stay_it_started_in_either_order(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """FHIR entered-in-error after finished, as ingest sends it (the admission cancelled): the stay's
    discharge stops counting — its length of stay, and the readmission it made of an earlier stay."""
    engine, schema = kpi_schema
    index = [admit("C", "1", at("01-01")), discharge("C", "1", at("01-01"), at("01-03"))]
    erroneous = [admit("C", "2", at("01-10")), discharge("C", "2", at("01-10"), at("01-12"))]
    cancel = ev(
        "encounter.admission_cancelled",
        at("01-13"),
        patient_ref="C",
        encounter_ref="2",
        admitted_at=at("01-10"),
    )
    await record(engine, messages([*index, *erroneous]), schema)
    readmitted = await stored_cells(engine, TENANT)
    assert _kpi(readmitted, "readmission_rate_30d")[date(2026, 1, 3)] == Cell(Decimal(1), Decimal(1), 1)
    await record(engine, messages([cancel], first_offset=10), schema)  # after the stay counted
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "readmission_rate_30d") == {date(2026, 1, 3): Cell(Decimal(0), Decimal(1), 1)}
    assert _kpi(cells, "alos_days") == {date(2026, 1, 3): Cell(Decimal(2), Decimal(1), 1)}
    assert cells == compute_cells(index, CALENDAR)
    # The cancel first, then the stay (another tenant's copy of the same story): the same cells.
    other = Origin("mission-health-2", ORIGIN.timezone)
    first = [Message(0, 20, encode_event(other, event_document(cancel)))]
    rest = [
        Message(0, 21 + i, encode_event(other, event_document(e))) for i, e in enumerate([*index, *erroneous])
    ]
    for batch in (first, rest):
        decoded = [d for d in (decode(m) for m in batch) if isinstance(d, Decoded)]
        await PostgresRecorder(engine, schema).record(decoded, [], NOW)
    assert await stored_cells(engine, other.tenant) == cells


async def test_a_class_change_at_the_same_admission_time_governs_when_recorded_last(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """An observation stay upgraded to inpatient (HL7 A06, same PV1-44): it readmits the earlier stay
    (the class's name decided before, and observation won)."""
    engine, schema = kpi_schema
    index = [admit("U", "1", at("01-02")), discharge("U", "1", at("01-02"), at("01-05"))]
    observation, upgraded = admit("U", "2", at("01-10"), cls="observation"), admit("U", "2", at("01-10"))
    await record(engine, messages([*index, observation]), schema)
    await record(engine, messages([upgraded], first_offset=5), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "readmission_rate_30d") == {date(2026, 1, 5): Cell(Decimal(1), Decimal(1), 1)}
    assert cells == compute_cells([*index, observation, upgraded], CALENDAR)


async def _rebuilt_differences(engine: AsyncEngine, tenant: str) -> list[Difference]:
    """What the rebuild, reading the stored events with their stay rows, finds different from the cells
    the engine kept incrementally (none: the two agree)."""
    return (await PostgresRebuild(engine).compare(tenant, CALENDAR)).differences


async def test_a_cancel_of_the_discharge_received_last_never_brings_back_the_one_it_replaced(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """HL7 A03 at Jan 5, the A03 re-sent corrected to Jan 8, then an A13 cancelling the Jan 8 discharge:
    the feed's latest word is "not discharged" — no discharge of the stay counts, and the rebuild agrees.
    A new A03 then stands; a retraction (sent in error) of that one lets the one before it govern again:
    the cancelled one, so still nothing."""
    engine, schema = kpi_schema
    stay = admit("R", "1", at("01-01"))
    first, corrected = (
        discharge("R", "1", at("01-01"), at("01-05")),
        discharge("R", "1", at("01-01"), at("01-08")),
    )
    cancel = ev(
        "encounter.discharge_cancelled",
        at("01-09"),
        patient_ref="R",
        encounter_ref="1",
        discharged_at=at("01-08"),
    )
    await record(engine, messages([stay, first]), schema)
    await record(engine, messages([corrected], first_offset=2), schema)
    await record(engine, messages([cancel], first_offset=3), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {} and _kpi(cells, "readmission_rate_30d") == {}
    assert cells == compute_cells([stay, first, corrected, cancel], CALENDAR)
    assert await _rebuilt_differences(engine, TENANT) == []
    async with engine.connect() as conn:
        rows = await conn.execute(select(t.stays.c.id, t.stays.c.cancelled).order_by(t.stays.c.received))
        assert [(r.id, r.cancelled) for r in rows] == [
            (stay.id, False),
            (first.id, False),
            (corrected.id, True),
        ]
        assert (await conn.execute(select(t.readmission_index.c.id))).all() == []
    # Discharged after all (a new A03): it stands.
    again = discharge("R", "1", at("01-01"), at("01-10"))
    await record(engine, messages([again], first_offset=4), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {date(2026, 1, 10): Cell(Decimal(9), Decimal(1), 1)}
    assert await _rebuilt_differences(engine, TENANT) == []
    # That A03 withdrawn as sent in error: the discharge received before it governs — the cancelled one.
    retraction = ev("event.retracted", at("01-11"), retracted_id=again.id, source=again.source)
    await record(engine, messages([retraction], first_offset=5), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {}
    assert cells == compute_cells([stay, first, corrected, cancel], CALENDAR)
    assert await _rebuilt_differences(engine, TENANT) == []
    # The cancelled discharge withdrawn as sent in error too: the first one stands again.
    withdrawn = ev("event.retracted", at("01-12"), retracted_id=corrected.id, source=corrected.source)
    await record(engine, messages([withdrawn], first_offset=6), schema)
    cells = await stored_cells(engine, TENANT)
    assert _kpi(cells, "alos_days") == {date(2026, 1, 5): Cell(Decimal(4), Decimal(1), 1)}
    assert cells == compute_cells([stay, first], CALENDAR)
    assert await _rebuilt_differences(engine, TENANT) == []


async def test_a_discharge_received_last_naming_a_cancelled_admission_stops_the_one_before(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """The admission at 08:00 cancelled (stored first); a discharge naming an admission at 06:00 (no
    cancel matches it) counts; the discharge re-sent naming the cancelled 08:00 admission governs the
    stay — the cancelled stay: nothing counts any more, incrementally as in the rebuild."""
    engine, schema = kpi_schema
    cancel = ev(
        "encounter.admission_cancelled",
        at("01-01", "09:00"),
        patient_ref="R",
        encounter_ref="1",
        admitted_at=at("01-01", "08:00"),
    )
    first = discharge("R", "1", at("01-01", "06:00"), at("01-05"))
    corrected = discharge("R", "1", at("01-01", "08:00"), at("01-05"))
    await record(engine, messages([cancel]), schema)
    await record(engine, messages([first], first_offset=1), schema)
    assert _kpi(await stored_cells(engine, TENANT), "alos_days") == {
        date(2026, 1, 5): Cell(Decimal(4), Decimal(1), 1)
    }
    await record(engine, messages([corrected], first_offset=2), schema)
    cells = await stored_cells(engine, TENANT)
    assert cells == {} == compute_cells([cancel, first, corrected], CALENDAR)
    assert await _rebuilt_differences(engine, TENANT) == []
