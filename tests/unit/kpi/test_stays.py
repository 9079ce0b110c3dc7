"""A stay (a patient's encounter) has one standing discharge, the one received last; a cancelled
admission takes its stay with it; admissions at the same time are ordered as they were received
(docs/kpis.md, docs/events.md). From scratch, events are taken in the order the engine recorded them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import CellComputation, compute_cells
from kpi_engine.domain.effects import (
    Effects,
    StoredStay,
    batch_effects,
    stay_changes,
    stays_as_facts,
    stays_now,
)
from kpi_engine.domain.readmissions import Discharge, standing_discharges
from tests.unit.kpi.builders import CALENDAR, d, ev, value
from tests.unit.kpi.test_batch_effects import decoded
from tests.unit.kpi.test_readmissions import admit, at, discharge

TENANT = "mission-health"


def _cancel_admission(patient: str, encounter: str, admitted: str):  # type: ignore[no-untyped-def]
    return ev(
        "encounter.admission_cancelled",
        admitted,
        patient_ref=patient,
        encounter_ref=encounter,
        admitted_at=admitted,
    )


def _cancel_discharge(patient: str, encounter: str, discharged: str):  # type: ignore[no-untyped-def]
    return ev(
        "encounter.discharge_cancelled",
        discharged,
        patient_ref=patient,
        encounter_ref=encounter,
        discharged_at=discharged,
    )


# One stay, admitted Jan 1, discharged Jan 5, then the discharge re-sent with a corrected time (Jan 8):
# a FHIR Encounter's period.end corrected, or an HL7 A03 sent again (the ids carry the time).
STAY = admit("R", "1", at("01-01"))
FIRST = discharge("R", "1", at("01-01"), at("01-05"))
CORRECTED = discharge("R", "1", at("01-01"), at("01-08"))


def test_a_discharge_re_sent_with_a_corrected_time_replaces_the_one_before() -> None:
    alos = value("alos_days", [STAY, FIRST, CORRECTED])
    assert (alos.numerator, alos.denominator, alos.sample_size) == (d("7"), d("1"), 1)  # not 4+7 / 2
    patient_days = value("ade_per_1000_patient_days", [STAY, FIRST, CORRECTED])
    assert (patient_days.denominator, patient_days.sample_size) == (d("7"), 1)
    index = value("readmission_rate_30d", [STAY, FIRST, CORRECTED])
    assert (index.numerator, index.denominator) == (d("0"), d("1"))  # one index stay, not two


def test_the_discharge_received_last_stands_even_when_its_time_is_earlier() -> None:
    cells = compute_cells([STAY, CORRECTED, FIRST], CALENDAR)  # corrected back to Jan 5
    alos = {key.day: cell for key, cell in cells.items() if key.kpi == "alos_days"}
    assert alos == {date(2026, 1, 5): Cell(d("4"), d("1"), 1)}
    readmission = {key.day for key in cells if key.kpi == "readmission_rate_30d"}
    assert readmission == {date(2026, 1, 5)}  # the index stay is dated by the discharge that stands


def test_a_cancel_of_the_discharge_received_last_leaves_the_stay_without_a_discharge() -> None:
    # A03 at Jan 5, A03 re-sent corrected to Jan 8, then A13 cancelling the Jan 8 discharge: the feed's
    # latest word is "not discharged" — the replaced Jan 5 discharge never stands again.
    cancel = _cancel_discharge("R", "1", at("01-08"))
    for events in ([STAY, FIRST, CORRECTED, cancel], [STAY, cancel, FIRST, CORRECTED]):  # cancel early too
        cells = compute_cells(events, CALENDAR)
        assert {key.kpi for key in cells} == set()  # no length of stay, patient days, nor index stay


def test_a_discharge_received_after_a_cancelled_one_stands() -> None:
    # A03, A13, then A03 again: the patient was discharged after all.
    events = [STAY, CORRECTED, _cancel_discharge("R", "1", at("01-08")), FIRST]
    alos = value("alos_days", events)
    assert (alos.numerator, alos.denominator) == (d("4"), d("1"))


def test_a_discharge_naming_a_cancelled_admission_leaves_its_stay_without_a_discharge() -> None:
    # The admission at 08:00 cancelled (stored first); D1 names another admission time (not matched);
    # D2, received last, names the cancelled admission: the stay is the cancelled one — nothing counts.
    cancel = _cancel_admission("R", "1", at("01-01", "08:00"))
    first = discharge("R", "1", at("01-01", "06:00"), at("01-05"))
    corrected = discharge("R", "1", at("01-01", "08:00"), at("01-05"))
    assert compute_cells([cancel, first], CALENDAR) != {}  # D1 alone counts
    assert compute_cells([cancel, first, corrected], CALENDAR) == {}


def test_only_a_retraction_lets_the_discharge_received_before_stand_again() -> None:
    # Retracted (sent in error) the corrected discharge is as if never sent: the rebuild no longer
    # streams it, and the one received before it governs the stay.
    computation = CellComputation(CALENDAR)
    for event, received in ((STAY, 1), (FIRST, 2)):  # CORRECTED (3) retracted: not streamed
        computation.take(event, received)
    alos = {key.day: cell for key, cell in computation.cells().items() if key.kpi == "alos_days"}
    assert alos == {date(2026, 1, 5): Cell(d("4"), d("1"), 1)}
    # Cancelled, it is streamed as cancelled, and governs: no discharge.
    computation = CellComputation(CALENDAR)
    computation.take(STAY, 1)
    computation.take(FIRST, 2)
    computation.take(CORRECTED, 3, cancelled=True)
    assert computation.cells() == {}


def test_the_standing_discharge_decides_whether_a_readmission_follows_it() -> None:
    # Readmitted Feb 5: 31 days after the Jan 5 discharge (no readmission), 28 after the Jan 8 one.
    readmission = admit("R", "2", at("02-05"))
    corrected_last = value("readmission_rate_30d", [STAY, FIRST, CORRECTED, readmission])
    first_last = value("readmission_rate_30d", [STAY, CORRECTED, FIRST, readmission])
    assert (corrected_last.numerator, corrected_last.denominator) == (d("1"), d("1"))
    assert (first_last.numerator, first_last.denominator) == (d("0"), d("1"))


def test_the_rebuild_order_given_with_each_event_decides_as_the_order_of_taking_does() -> None:
    computation = CellComputation(CALENDAR)
    for event, received in ((CORRECTED, 7), (STAY, 3), (FIRST, 5)):  # streamed in any order
        computation.take(event, received)
    assert computation.cells() == compute_cells([STAY, FIRST, CORRECTED], CALENDAR)


def test_a_cancelled_admission_takes_its_discharged_stay_with_it() -> None:
    # FHIR entered-in-error after finished: the admission is cancelled (and the discharge too when
    # period.end is known — here it is not): the discharge counts nowhere, not as an index stay ...
    index = admit("C", "1", at("01-01"))
    index_discharge = discharge("C", "1", at("01-01"), at("01-03"))
    cancelled = [admit("C", "2", at("01-10")), discharge("C", "2", at("01-10"), at("01-12"))]
    cancel = _cancel_admission("C", "2", at("01-10"))
    kept = value("readmission_rate_30d", [index, index_discharge])
    for order in ([index, index_discharge, *cancelled, cancel], [cancel, index, *cancelled, index_discharge]):
        # ... nor as the readmission of C/1 (it was one, through its discharge, before) ...
        assert value("readmission_rate_30d", order) == kept
        # ... nor in the length of stay.
        alos = value("alos_days", order)
        assert (alos.numerator, alos.denominator) == (d("2"), d("1"))  # C/1 only


def test_an_encounter_entered_in_error_after_a_corrected_end_leaves_no_discharge_standing() -> None:
    # FHIR: finished (end Jan 5), re-sent with end Jan 8, then entered-in-error — ingest sends the
    # admission's cancel and the known end's cancel. The Jan 5 discharge must not stand again.
    events = [
        STAY,
        FIRST,
        CORRECTED,
        _cancel_admission("R", "1", at("01-01")),
        _cancel_discharge("R", "1", at("01-08")),
    ]
    cells = compute_cells(events, CALENDAR)
    assert cells == {}  # no length of stay, patient days or index stay


def test_a_stay_admitted_again_at_another_time_after_a_cancel_counts() -> None:
    # HL7 A01 → A11 → A01 (another time) → A03 naming the new admission: the stay that stands counts.
    events = [
        admit("C", "1", at("01-01", "08:00")),
        _cancel_admission("C", "1", at("01-01", "08:00")),
        admit("C", "1", at("01-01", "11:00")),
        discharge("C", "1", at("01-01", "11:00"), at("01-04")),
    ]
    alos = value("alos_days", events)
    assert (alos.numerator, alos.denominator) == (d("3"), d("1"))


def test_class_changes_at_the_same_admission_time_are_ordered_as_received() -> None:
    # A06 upgrades an observation stay to inpatient, keeping its admission time: the message received
    # last governs — not the class's name (observation sorted after inpatient and always won).
    index = [admit("U", "1", at("01-02")), discharge("U", "1", at("01-02"), at("01-05"))]
    observation, upgraded = admit("U", "2", at("01-10"), cls="observation"), admit("U", "2", at("01-10"))
    upgraded_last = value("readmission_rate_30d", [*index, observation, upgraded])
    downgraded_last = value("readmission_rate_30d", [*index, upgraded, observation])
    assert (upgraded_last.numerator, upgraded_last.denominator) == (d("1"), d("1"))
    assert (downgraded_last.numerator, downgraded_last.denominator) == (d("0"), d("1"))


def _stored_discharge(id_: str, day: str, received: int) -> StoredStay:
    return StoredStay(
        "s",
        id_,
        "encounter.discharged",
        "e1",
        "p1",
        "north",
        datetime.fromisoformat(at(day)),
        "inpatient",
        False,
        "home",
        datetime.fromisoformat(at("03-01")),
        received,
    )


def _standing(stays: list[StoredStay]) -> dict[tuple[str, str], Discharge]:
    return standing_discharges(stays_as_facts(stays)[1])


def test_a_newer_discharge_of_a_stay_takes_the_older_ones_length_of_stay_back() -> None:
    effects = Effects()
    older, newer = _stored_discharge("d1", "03-05", 10), _stored_discharge("d2", "03-07", 11)
    stay_changes(TENANT, _standing([older]), _standing([older, newer]), CALENDAR, effects)
    alos = {key.day: cell for (_, key), cell in effects.deltas.items() if key.kpi == "alos_days"}
    assert alos == {
        date(2026, 3, 5): Cell(Decimal(-4), Decimal(-1), -1),
        date(2026, 3, 7): Cell(Decimal(6), Decimal(1), 1),
    }
    # The newer one retracted: the older one stands again.
    effects = Effects()
    stay_changes(TENANT, _standing([older, newer]), _standing([older]), CALENDAR, effects)
    assert effects.deltas[(TENANT, CellKey("alos_days", "north", date(2026, 3, 5)))] == Cell(
        Decimal(4), Decimal(1), 1
    )


def test_a_cancel_of_the_newer_discharge_takes_its_length_of_stay_back_and_restores_nothing() -> None:
    older, newer = _stored_discharge("d1", "03-05", 10), _stored_discharge("d2", "03-07", 11)
    effects = Effects()
    stay_changes(
        TENANT,
        _standing([older, newer]),
        _standing([older, replace(newer, cancelled=True)]),
        CALENDAR,
        effects,
    )
    alos = {key.day: cell for (_, key), cell in effects.deltas.items() if key.kpi == "alos_days"}
    assert alos == {date(2026, 3, 7): Cell(Decimal(-6), Decimal(-1), -1)}  # Mar 5 stays uncounted


def test_a_stored_discharge_cancelled_by_a_batch_keeps_its_row_marked_cancelled() -> None:
    cancel = _cancel_discharge("p1", "e1", at("03-07"))
    newer = discharge("p1", "e1", at("03-01"), at("03-07"))
    key = (TENANT, newer.source, newer.id)
    effects, counted = batch_effects(
        [decoded(cancel, offset=1)],
        {key: newer},
        {TENANT: CALENDAR},
        cancelled={key},
    )
    assert effects.cancelled_stays == {key} and not effects.removed.get("stays")
    assert effects.patients == {(TENANT, "p1")}
    older_row = _stored_discharge("d1", "03-05", 10)
    newer_row = replace(_stored_discharge(newer.id, "03-07", 11), source=newer.source)
    now = stays_now({(TENANT, "p1"): [older_row, newer_row]}, effects)
    assert [stay.cancelled for stay in now[(TENANT, "p1")]] == [False, True]
    # A new discharge that arrives cancelled is written too, marked, after the stored ones.
    arriving = decoded(newer, offset=2)
    effects, counted = batch_effects([arriving], {arriving.key: newer}, {TENANT: CALENDAR}, cancelled={key})
    assert counted == [] and [row["cancelled"] for row in effects.added["stays"]] == [True]
