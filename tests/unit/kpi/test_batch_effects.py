"""The recorder's pure parts, without a database: how messages are classified, what each event does to a
batch's effects (and undoes exactly), which scopes it locks, how readmission outcomes become deltas."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.classification import classify
from kpi_engine.domain.effects import (
    AR_SNAPSHOTS,
    OUTAGES,
    STAYS,
    Effects,
    IndexChanges,
    StoredStay,
    batch_effects,
    readmission_changes,
    scope_of,
    stays_as_facts,
)
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.domain.readmissions import IndexOutcome, index_outcomes
from kpi_engine.handlers import decode
from tests.unit.kpi.builders import CALENDAR, ev
from vr_shared.events import Event, Origin, encode_event, event_document

TENANT = "mission-health"
ORIGIN = Origin(TENANT, "America/New_York")


def decoded(event: Event, partition: int = 0, offset: int = 0) -> Decoded:
    result = decode(Message(partition, offset, encode_event(ORIGIN, event_document(event))))
    assert isinstance(result, Decoded)
    return result


def test_a_batch_is_classified_as_new_replay_duplicate_and_conflict() -> None:
    first = ev("claim.submitted", "2026-03-02T10:00:00-05:00", clean=True)
    stored = ev("claim.submitted", "2026-03-03T10:00:00-05:00", clean=True)
    changed = first.model_copy(update={"data": first.data.model_copy(update={"clean": False})})
    batch = [
        decoded(first, offset=1),
        decoded(first, offset=2),  # the same event again in the batch: a duplicate of the new one
        decoded(changed, offset=3),  # the same key, other content: a conflict
        decoded(stored, offset=7),  # stored from this very message before a crash: a replay
        decoded(stored, offset=9),  # stored, delivered again later: a duplicate
    ]
    stored_key = batch[3].key
    result = classify(batch, {batch[0].key}, {stored_key: (batch[3].payload_hash, 0, 7)})
    assert [d.offset for d in result.new] == [1]
    assert result.replays == 1
    assert dict(result.duplicates) == {batch[0].key: 1, stored_key: 1}
    assert [d.offset for d in result.conflicting] == [3]


def test_a_key_neither_inserted_nor_stored_is_a_bug_not_a_guess() -> None:
    message = decoded(ev("claim.submitted", "2026-03-02T10:00:00-05:00", clean=True))
    with pytest.raises(ValueError, match="neither inserted nor stored"):
        classify([message], set(), {})


def outage(*, planned: bool) -> Event:
    """The EHR down from 23:00 to 01:00 across two local days."""
    return ev(
        "system.outage",
        "2026-03-03T09:00:00-05:00",
        system="ehr",
        started_at="2026-03-02T23:00:00-05:00",
        ended_at="2026-03-03T01:00:00-05:00",
        planned=planned,
    )


EVERY_KIND = [
    ev("claim.submitted", "2026-03-02T10:00:00-05:00", clean=True),
    ev(
        "payment.received",
        "2026-03-02T11:00:00-05:00",
        amount="80.00",
        patient_payment=True,
        point_of_service=True,
    ),
    ev("cost.incurred", "2026-03-02T12:00:00-05:00", category="revenue_cycle", amount="7.50"),
    outage(planned=False),
    ev("ar.snapshot", "2026-03-04T10:00:00-05:00", net_ar="900.00", avg_daily_net_revenue="30.00"),
    ev(
        "encounter.admitted",
        "2026-03-01T10:00:00-05:00",
        encounter_ref="e1",
        patient_ref="p1",
        encounter_class="inpatient",
    ),
    ev(
        "encounter.discharged",
        "2026-03-05T10:00:00-05:00",
        encounter_ref="e1",
        patient_ref="p1",
        encounter_class="inpatient",
        admitted_at="2026-03-01T10:00:00-05:00",
        disposition="home",
    ),
]


def test_applying_then_taking_back_every_kind_of_event_leaves_no_delta() -> None:
    effects = Effects()
    for event in EVERY_KIND:
        effects.apply(TENANT, event, CALENDAR, 1)
    assert any(not cell.is_empty() for cell in effects.deltas.values())
    for event in EVERY_KIND:
        effects.apply(TENANT, event, CALENDAR, -1)
    assert all(cell.is_empty() for cell in effects.deltas.values())
    # Rows added for the non-additive KPIs, and the same keys to remove when taken back.
    assert {kind: len(rows) for kind, rows in effects.added.items()} == {
        OUTAGES: 1,
        AR_SNAPSHOTS: 1,
        STAYS: 2,
    }
    assert {kind: len(keys) for kind, keys in effects.removed.items()} == {
        OUTAGES: 1,
        AR_SNAPSHOTS: 1,
        STAYS: 2,
    }
    # What is recomputed: both local days of the outage, the snapshot's day, the patient.
    assert dict(effects.uptime_days) == {(TENANT, "north", "ehr"): {date(2026, 3, 2), date(2026, 3, 3)}}
    assert effects.ar_days == {(TENANT, "north", date(2026, 3, 4))}
    assert effects.patients == {(TENANT, "p1")}
    assert effects.recomputed_scopes() == [
        (TENANT, "ar:north"),
        (TENANT, "patient:p1"),
        (TENANT, "uptime:north:ehr"),
    ]


def test_each_event_locks_the_scope_it_recomputes_and_additive_ones_none() -> None:
    assert [scope_of(event) for event in EVERY_KIND] == [
        None,
        None,
        None,
        "uptime:north:ehr",
        "ar:north",
        "patient:p1",
        "patient:p1",
    ]
    assert scope_of(outage(planned=True)) is None  # planned downtime is not in uptime


def test_a_changed_index_outcome_becomes_minus_old_plus_new() -> None:
    effects, changes = Effects(), IndexChanges()
    day = date(2026, 3, 5)
    before = {
        ("src", "d1"): IndexOutcome("north", day, False),
        ("src", "d2"): IndexOutcome("north", day, True),
    }
    now = {("src", "d1"): IndexOutcome("north", day, True), ("src", "d2"): IndexOutcome("north", day, True)}
    readmission_changes(TENANT, "p1", before, now, effects, changes)
    key = CellKey("readmission_rate_30d", "north", day)
    # −(0/1) + (1/1): one more readmitted, same denominator and sample.
    assert effects.deltas == {(TENANT, key): Cell(Decimal(1), Decimal(0), 0)}
    assert changes.removed == [(TENANT, "src", "d1")]
    assert [row["readmitted"] for row in changes.added] == [True]


def test_stored_stays_give_the_same_outcomes_as_their_events() -> None:
    stays = [
        StoredStay(
            "s",
            "a1",
            "encounter.admitted",
            "e1",
            "p1",
            "north",
            _t("2026-03-01T10:00:00-05:00"),
            "inpatient",
            False,
            None,
            None,
            1,
        ),
        StoredStay(
            "s",
            "d1",
            "encounter.discharged",
            "e1",
            "p1",
            "north",
            _t("2026-03-05T10:00:00-05:00"),
            "inpatient",
            False,
            "home",
            _t("2026-03-01T10:00:00-05:00"),
            2,
        ),
        StoredStay(
            "s",
            "a2",
            "encounter.admitted",
            "e2",
            "p1",
            "south",
            _t("2026-03-20T10:00:00-05:00"),
            "inpatient",
            False,
            None,
            None,
            3,
        ),
    ]
    admissions, discharges = stays_as_facts(stays)
    assert index_outcomes(discharges, admissions, CALENDAR) == {
        ("s", "d1"): IndexOutcome("north", date(2026, 3, 5), True)
    }


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_batch_takes_back_stored_events_that_stop_counting_and_adds_the_new_ones_that_count() -> None:
    kept = decoded(ev("claim.submitted", "2026-03-02T10:00:00-05:00", clean=True), offset=1)
    retracted_new = decoded(ev("claim.submitted", "2026-03-02T11:00:00-05:00", clean=False), offset=2)
    retraction = decoded(
        ev("event.retracted", "2026-03-02T12:00:00-05:00", retracted_id=retracted_new.event.id), offset=3
    )
    stored = ev("claim.submitted", "2026-03-01T10:00:00-05:00", clean=False)  # counted in an earlier batch
    stopped = {retracted_new.key: retracted_new.event, (TENANT, stored.source, stored.id): stored}
    effects, counted = batch_effects([kept, retracted_new, retraction], stopped, {TENANT: CALENDAR})
    assert counted == [kept]
    clean = {key.day: cell for (_, key), cell in effects.deltas.items() if key.kpi == "clean_claim_rate"}
    assert clean == {
        date(2026, 3, 2): Cell(Decimal(1), Decimal(1), 1),  # the kept claim only
        date(2026, 3, 1): Cell(Decimal(0), Decimal(-1), -1),  # the stored one taken back
    }
    # Delivered, counted or not: both claims of the batch arrived on the claims feed that day.
    assert [count for count, _ in effects.activity.values()] == [2]
