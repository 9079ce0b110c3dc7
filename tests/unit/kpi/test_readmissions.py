"""Readmission fixture: eight patients, each exercising one rule (worked out per patient below)."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_engine.domain.computation import compute_cells
from tests.support.streams import messy_stays
from tests.unit.kpi.builders import CALENDAR, d, ev, value

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)


def admit(
    patient: str,
    encounter: str,
    time: str,
    facility: str = "north",
    cls: str = "inpatient",
    planned: bool = False,
):  # type: ignore[no-untyped-def]
    return ev(
        "encounter.admitted",
        time,
        facility=facility,
        patient_ref=patient,
        encounter_ref=encounter,
        encounter_class=cls,
        planned=planned,
    )


def discharge(
    patient: str,
    encounter: str,
    admitted: str,
    time: str,
    disposition: str = "home",
    facility: str = "north",
    cls: str = "inpatient",
):  # type: ignore[no-untyped-def]
    return ev(
        "encounter.discharged",
        time,
        facility=facility,
        patient_ref=patient,
        encounter_ref=encounter,
        encounter_class=cls,
        admitted_at=admitted,
        disposition=disposition,
    )


def at(day: str, clock: str = "10:00") -> str:
    return f"2026-{day}T{clock}:00-05:00"


STAYS = [
    # P1: index A (north, Jan 5) readmitted at the other facility on Jan 20 (day 15) by B; B is an index
    # stay itself (south, Jan 25), readmitted by C on Feb 24 (day 30, counts); C expired: not an index.
    admit("P1", "A", at("01-01")),
    discharge("P1", "A", at("01-01"), at("01-05")),
    admit("P1", "B", at("01-20"), facility="south"),
    discharge("P1", "B", at("01-20"), at("01-25"), facility="south"),
    admit("P1", "C", at("02-24")),
    discharge("P1", "C", at("02-24"), at("02-26"), disposition="expired"),
    # P2: readmitted on day 31: does not count.
    admit("P2", "D", at("01-01")),
    discharge("P2", "D", at("01-01"), at("01-03")),
    admit("P2", "E", at("02-03")),
    # P3: transferred to another acute hospital: not an index stay.
    admit("P3", "F", at("01-02")),
    discharge("P3", "F", at("01-02"), at("01-04"), disposition="transfer_acute"),
    admit("P3", "G", at("01-06")),
    # P4: left against medical advice: not an index stay.
    admit("P4", "H", at("01-02")),
    discharge("P4", "H", at("01-02"), at("01-06"), disposition="ama"),
    admit("P4", "I", at("01-08")),
    # P5: the readmission was planned: does not count.
    admit("P5", "J", at("01-02")),
    discharge("P5", "J", at("01-02"), at("01-07")),
    admit("P5", "K", at("01-10"), planned=True),
    # P6: the return was an observation stay: no readmission, and its discharge is no index stay.
    admit("P6", "L", at("01-02")),
    discharge("P6", "L", at("01-02"), at("01-08")),
    admit("P6", "M", at("01-12"), cls="observation"),
    discharge("P6", "M", at("01-12"), at("01-13"), cls="observation"),
    # P7: readmitted the same day, after the discharge (day 0): counts.
    admit("P7", "N", at("01-02")),
    discharge("P7", "N", at("01-02"), at("01-09", "08:00")),
    admit("P7", "O", at("01-09", "20:00")),
    # P8: the readmission is known only from its discharge (no admission event): counts; its own
    # discharge (Jan 20, home) is an index stay that is not readmitted.
    admit("P8", "P", at("01-02")),
    discharge("P8", "P", at("01-02"), at("01-10")),
    discharge("P8", "Q", at("01-15"), at("01-20")),
]


def test_readmission_rate_applies_every_rule() -> None:
    # Index stays in January: A, B, D, J, L, N, P, Q = 8; readmitted: A, B, N, P = 4.
    both = value("readmission_rate_30d", STAYS, facilities=("north", "south"), start=JAN, end=FEB)
    assert (both.numerator, both.denominator, both.value) == (d("4"), d("8"), d("0.5"))


def test_readmissions_are_attributed_to_the_index_stays_facility() -> None:
    north = value("readmission_rate_30d", STAYS, facilities=("north",), start=JAN, end=FEB)
    south = value("readmission_rate_30d", STAYS, facilities=("south",), start=JAN, end=FEB)
    assert (north.numerator, north.denominator) == (d("3"), d("7"))  # A, N, P of A, D, J, L, N, P, Q
    assert (south.numerator, south.denominator) == (d("1"), d("1"))  # B, readmitted on day 30


def test_an_expired_stay_is_no_index_even_when_it_is_a_readmission() -> None:
    february = value(
        "readmission_rate_30d", STAYS, facilities=("north", "south"), start=FEB, end=date(2026, 3, 1)
    )
    assert february.denominator == d("0")  # C (expired) is the only February discharge


def test_day_30_counts_and_day_31_does_not() -> None:
    index = [admit("X", "1", at("01-02")), discharge("X", "1", at("01-02"), at("01-10", "23:00"))]
    day_30 = value("readmission_rate_30d", [*index, admit("X", "2", at("02-09", "00:30"))])
    day_31 = value("readmission_rate_30d", [*index, admit("X", "2", at("02-10", "00:30"))])
    assert (day_30.numerator, day_31.numerator) == (d("1"), d("0"))


@settings(max_examples=60, deadline=None)
@given(st.permutations(STAYS))
def test_arrival_order_does_not_change_any_cell(shuffled: list) -> None:  # type: ignore[type-arg]
    assert compute_cells(shuffled, CALENDAR) == compute_cells(STAYS, CALENDAR)


def test_the_class_at_discharge_governs_the_index_stay_and_the_readmission() -> None:
    # Y1 is admitted as observation and discharged as inpatient: an inpatient index stay (Jan 6). Y2,
    # 5 days later, is admitted as observation and discharged as inpatient too: an inpatient
    # readmission of Y1 (it was not counted as one before: its admission's class was used).
    stays = [
        admit("Y", "1", at("01-02"), cls="observation"),
        discharge("Y", "1", at("01-02"), at("01-06")),
        admit("Y", "2", at("01-11"), cls="observation"),
        discharge("Y", "2", at("01-11"), at("01-14")),
    ]
    january = value("readmission_rate_30d", stays, start=JAN, end=FEB)
    assert (january.numerator, january.denominator) == (d("1"), d("2"))  # Y1 readmitted; Y2 not


def test_the_latest_admission_message_of_an_open_stay_governs_its_class() -> None:
    # Z2 was first sent as inpatient, then corrected to observation (later message): no readmission,
    # whichever message arrives first.
    index = [admit("Z", "1", at("01-02")), discharge("Z", "1", at("01-02"), at("01-05"))]
    corrected = [
        admit("Z", "2", at("01-08", "09:00")),
        admit("Z", "2", at("01-08", "11:00"), cls="observation"),
    ]
    for stays in ([*index, *corrected], [*index, *reversed(corrected)]):
        assert value("readmission_rate_30d", stays, start=JAN, end=FEB).numerator == d("0")


def test_encounter_refs_that_collide_across_patients_stay_apart() -> None:
    # Facilities number their own encounters: patient V (north) and patient W (south) both have an
    # encounter "100". V's stay 100 is known only by its discharge and readmits V's stay 50; W's
    # admission 100 must not stand in for it (it did, keyed by encounter alone), in any order.
    stays = [
        admit("V", "50", at("01-02")),
        discharge("V", "50", at("01-02"), at("01-04")),
        discharge("V", "100", at("01-10"), at("01-12")),
        admit("W", "100", at("01-20"), facility="south"),
    ]
    for order in (stays, list(reversed(stays))):
        north = value("readmission_rate_30d", order, facilities=("north",), start=JAN, end=FEB)
        assert (north.numerator, north.denominator) == (d("1"), d("2"))  # V/50 readmitted; V/100 not


@settings(max_examples=60, deadline=None)
@given(st.permutations(messy_stays(seed=3, stays=30)))
def test_colliding_refs_and_class_changes_give_the_same_cells_in_any_order(shuffled: list) -> None:  # type: ignore[type-arg]
    assert compute_cells(shuffled, CALENDAR) == compute_cells(messy_stays(seed=3, stays=30), CALENDAR)


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


def test_a_cancelled_admission_or_discharge_counts_nowhere_and_another_at_another_time_counts() -> None:
    """HL7 A01 → A11 → A01 → A03 and A01 → A03 → A13 → A03: the stay that stands is the one counted."""
    events = [
        admit("Q1", "S", at("01-02", "08:00")),  # cancelled (A11) ...
        _cancel_admission("Q1", "S", at("01-02", "08:00")),
        admit("Q1", "S", at("01-02", "11:00")),  # ... admitted again, later
        discharge("Q1", "S", at("01-02", "11:00"), at("01-04")),  # discharged (A03) ...
        _cancel_discharge("Q1", "S", at("01-04")),  # ... cancelled (A13) ...
        discharge("Q1", "S", at("01-02", "11:00"), at("01-06")),  # ... and discharged again (A03)
        admit("Q1", "T", at("01-10")),  # readmitted 4 days after the discharge that stands
    ]
    alos = value("alos_days", events)
    assert (alos.numerator, alos.denominator) == (d("4"), d("1"))  # one discharge: Jan 2 → Jan 6
    readmitted = value("readmission_rate_30d", events)
    assert (readmitted.numerator, readmitted.denominator) == (d("1"), d("1"))
    # In any order that receives the two discharges as the feed sent them, the same answer ...
    cancels_first = [events[1], events[4], events[6], events[2], events[3], events[0], events[5]]
    assert value("alos_days", cancels_first) == alos
    assert value("readmission_rate_30d", cancels_first) == readmitted
    # ... but the discharge received last governs its stay: received last, the cancelled one leaves the
    # stay with no discharge (docs/kpis.md, "A stay is a patient's encounter").
    reversed_alos = value("alos_days", list(reversed(events)))
    assert (reversed_alos.numerator, reversed_alos.denominator) == (d("0"), d("0"))
