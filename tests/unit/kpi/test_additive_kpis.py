"""One hand-computed fixture per additive KPI (numbers worked out in the comments)."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from tests.unit.kpi.builders import d, ev, value

JAN = "2026-01-{:02d}T{}-05:00"


def t(day: int, clock: str = "10:00:00") -> str:
    return JAN.format(day, clock)


_encounters = itertools.count(1)


def discharge(day: int, admitted_day: int, cls: str = "inpatient", disposition: str = "home", **kw: object):  # type: ignore[no-untyped-def]
    # Each its own stay: discharges of one encounter are one stay, of which only one stands.
    return ev(
        "encounter.discharged",
        t(day),
        encounter_class=cls,
        admitted_at=t(admitted_day, "08:00:00"),
        disposition=disposition,
        **{"encounter_ref": f"ENC-{next(_encounters)}", **kw},
    )


def test_alos_is_total_length_of_stay_over_inpatient_discharges() -> None:
    # LOS 0 (same day), 3 and 5 days; the observation stay and the other facility do not count: 8 / 3.
    events = [
        discharge(10, 10),
        discharge(13, 10),
        discharge(20, 15),
        discharge(20, 12, cls="observation"),
        discharge(20, 1, facility="south"),
    ]
    result = value("alos_days", events)
    assert (result.numerator, result.denominator, result.sample_size) == (d("8"), d("3"), 3)
    assert result.value == Decimal(8) / Decimal(3)


def test_los_uses_local_dates_not_hours() -> None:
    # Admitted 23:30 on the 9th, discharged 00:30 on the 10th (local): one day, although one hour.
    stay = ev("encounter.discharged", t(10, "00:30:00"), admitted_at=t(9, "23:30:00"))
    assert value("alos_days", [stay]).numerator == d("1")


def test_ade_rate_is_per_1000_patient_days_counting_harm_e_to_i() -> None:
    # ADEs E and I count, D does not: 2. Patient days: max(0,1) + 3 = 4. 1000 × 2 / 4 = 500.
    events = [
        ev("adverse_drug_event.recorded", t(5), harm_category="E"),
        ev("adverse_drug_event.recorded", t(6), harm_category="I"),
        ev("adverse_drug_event.recorded", t(7), harm_category="D"),
        discharge(10, 10),
        discharge(13, 10),
    ]
    result = value("ade_per_1000_patient_days", events)
    assert (result.numerator, result.denominator, result.sample_size) == (d("2"), d("4"), 2)
    assert result.value == d("500")


def test_cpoe_rate_excludes_protocol_orders() -> None:
    methods = ["cpoe", "cpoe", "cpoe", "verbal", "protocol"]
    events = [
        ev("medication.ordered", t(3), entry_method=m, order_ref=f"o{i}") for i, m in enumerate(methods)
    ]
    result = value("cpoe_rate", events)
    assert (result.numerator, result.denominator, result.value) == (d("3"), d("4"), d("0.75"))


def test_bcma_needs_both_scans() -> None:
    scans = [(True, True), (True, True), (True, True), (True, False), (False, True)]
    events = [ev("medication.administered", t(3), patient_scanned=p, medication_scanned=m) for p, m in scans]
    assert value("bcma_compliance", events).value == d("0.6")


def test_sepsis_compliance_ignores_excluded_cases() -> None:
    cases = [(True, False), (True, False), (False, False), (True, True)]
    events = [ev("sepsis.case_evaluated", t(3), bundle_compliant=c, excluded=x) for c, x in cases]
    result = value("sepsis_bundle_compliance", events)
    assert (result.numerator, result.denominator) == (d("2"), d("3"))


def test_denial_rate_counts_initial_adjudications_only() -> None:
    outcomes = [("denied", True), ("paid", True), ("paid", True), ("partial", True), ("denied", False)]
    events = [
        ev(
            "claim.adjudicated",
            t(3),
            outcome=o,
            initial=i,
            paid_amount="0" if o == "denied" else "10.00",
            denied_amount="0" if o == "paid" else "5.00",
        )
        for o, i in outcomes
    ]
    result = value("claim_denial_rate", events)
    assert (result.numerator, result.denominator, result.value) == (d("1"), d("4"), d("0.25"))


def test_clean_claim_rate() -> None:
    events = [ev("claim.submitted", t(3), clean=c) for c in (True, True, True, True, False)]
    assert value("clean_claim_rate", events).value == d("0.8")


def test_a_claim_of_unknown_cleanliness_is_in_the_sample_and_never_in_the_denominator() -> None:
    # Three clean of four known, and two unknown (a FHIR Claim says nothing of it): 3 / 4 — neither
    # 5 / 6 (unknown as clean) nor 3 / 6 (as unclean); sample 6 − denominator 4 = 2 unknown.
    known = [ev("claim.submitted", t(3), clean=c) for c in (True, True, True, False)]
    unknown = [ev("claim.submitted", t(4), clean=None) for _ in range(2)]
    result = value("clean_claim_rate", known + unknown)
    assert (result.numerator, result.denominator, result.sample_size) == (d("3"), d("4"), 6)
    assert result.value == d("0.75")
    only_unknown = value("clean_claim_rate", unknown)
    assert (only_unknown.value, only_unknown.denominator, only_unknown.sample_size) == (None, d("0"), 2)


def test_cost_to_collect_is_revenue_cycle_cost_over_payments() -> None:
    events = [
        ev("cost.incurred", t(3), category="revenue_cycle", amount="300.00"),
        ev("cost.incurred", t(3), category="operating", amount="1000.00"),
        ev("payment.received", t(4), amount="9000.00", patient_payment=False, point_of_service=False),
        ev("payment.received", t(4), amount="1000.00", patient_payment=True, point_of_service=False),
    ]
    result = value("cost_to_collect", events)
    assert (result.numerator, result.denominator, result.value) == (d("300.00"), d("10000.00"), d("0.03"))


def test_point_of_service_rate_is_over_patient_payments_only() -> None:
    events = [
        ev("payment.received", t(4), amount="100.00", patient_payment=True, point_of_service=True),
        ev("payment.received", t(4), amount="300.00", patient_payment=True, point_of_service=False),
        ev("payment.received", t(4), amount="1000.00", patient_payment=False, point_of_service=False),
    ]
    result = value("pos_collection_rate", events)
    assert (result.numerator, result.denominator, result.value) == (d("100.00"), d("400.00"), d("0.25"))


def test_cost_total_is_an_exact_sum_by_category() -> None:
    events = [
        ev("cost.incurred", t(3), category="total_cost_of_care", amount="0.10"),
        ev("cost.incurred", t(9), category="total_cost_of_care", amount="0.20"),
        ev("cost.incurred", t(9), category="operating", amount="5.00"),
    ]
    care = value("cost_total", events, dimension="total_cost_of_care")
    assert (care.value, care.denominator, care.sample_size) == (d("0.30"), None, 2)  # exact, no float
    assert value("cost_total", events).value == d("5.30")


def test_events_count_in_the_tenants_local_day() -> None:
    # 2026-02-01T03:00Z is still January 31 in New York: a January value.
    late = ev("claim.submitted", "2026-02-01T03:00:00Z", clean=True)
    assert value("clean_claim_rate", [late]).denominator == d("1")
    assert value("clean_claim_rate", [late], start=date(2026, 2, 1), end=date(2026, 3, 1)).denominator == d(
        "0"
    )


def test_facility_roll_up_sums_numerators_and_denominators() -> None:
    # north 1/1, south 1/3: average of rates would be 0.666…, the roll-up is 2/4 = 0.5.
    events = [ev("claim.submitted", t(3), clean=True)] + [
        ev("claim.submitted", t(3), facility="south", clean=c) for c in (True, False, False)
    ]
    assert value("clean_claim_rate", events, facilities=("north", "south")).value == d("0.5")


def test_no_denominator_gives_no_value() -> None:
    result = value("clean_claim_rate", [])
    assert (result.value, result.denominator, result.sample_size) == (None, d("0"), 0)
