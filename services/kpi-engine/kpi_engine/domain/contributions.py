"""What one event adds to the additive KPIs' cells (docs/kpis.md).

Additive means a cell is a plain sum over events, so an event's effect can be applied, and undone on
retraction, as a delta. A discharge's share (length of stay, patient days) is its stay's, not its
event's: only a stay's standing discharge counts (kpi_engine.domain.readmissions.standing_discharges), so
`stay_contributions` is added and taken back as the standing discharge changes. Uptime (merged
intervals), readmissions (a join across stays) and days in A/R (the latest snapshot) are not additive;
their cells are recomputed by their own modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import ZERO, Cell, CellKey
from kpi_engine.domain.readmissions import Discharge
from vr_shared.events.catalogue import (
    AdverseDrugEventRecorded,
    ClaimAdjudicated,
    ClaimSubmitted,
    CostIncurred,
    Event,
    MedicationAdministered,
    MedicationOrdered,
    PaymentReceived,
    SepsisCaseEvaluated,
)

ONE = Decimal(1)
HARMFUL_ADE = frozenset("EFGHI")  # NCC MERP E–I: the error reached the patient and caused harm
ORDER_ENTRY_METHODS = frozenset({"cpoe", "verbal", "phone", "paper"})  # protocol orders are excluded
REVENUE_CYCLE = "revenue_cycle"

Contribution = tuple[CellKey, Cell]


def length_of_stay_days(discharge: Discharge, calendar: TenantCalendar) -> int:
    """Discharge date − admission date, in the tenant's local dates (same day = 0)."""
    return (calendar.local_date(discharge.time) - calendar.local_date(discharge.admitted_at)).days


def contributions(event: Event, calendar: TenantCalendar) -> list[Contribution]:
    """An event's own share of the additive cells (a discharge has none: see `stay_contributions`)."""
    return list(_contributions(event, calendar))


def stay_contributions(discharge: Discharge, calendar: TenantCalendar) -> list[Contribution]:
    """A stay's share through its standing discharge: length of stay and patient days (inpatient)."""
    if discharge.encounter_class != "inpatient":
        return []
    day, los = calendar.local_date(discharge.time), length_of_stay_days(discharge, calendar)
    return [
        (CellKey("alos_days", discharge.facility, day), Cell(Decimal(los), ONE, 1)),
        (CellKey("ade_per_1000_patient_days", discharge.facility, day), Cell(ZERO, Decimal(max(los, 1)), 1)),
    ]


def _contributions(event: Event, calendar: TenantCalendar) -> Iterator[Contribution]:
    yield from _clinical(event, calendar)
    yield from _revenue_cycle(event, calendar.local_date(event.time))


def _cell(
    event: Event, day: date, kpi: str, numerator: Decimal, denominator: Decimal, dimension: str = ""
) -> Contribution:
    """The event's share of one cell, counted once in the cell's sample."""
    return CellKey(kpi, event.facility, day, dimension), Cell(numerator, denominator, 1)


def _clinical(event: Event, calendar: TenantCalendar) -> Iterator[Contribution]:
    day = calendar.local_date(event.time)
    match event:
        case AdverseDrugEventRecorded() if event.data.harm_category in HARMFUL_ADE:
            yield CellKey("ade_per_1000_patient_days", event.facility, day), Cell(ONE, ZERO, 0)
        case MedicationOrdered() if event.data.entry_method in ORDER_ENTRY_METHODS:
            yield _cell(event, day, "cpoe_rate", ONE if event.data.entry_method == "cpoe" else ZERO, ONE)
        case MedicationAdministered():
            both = event.data.patient_scanned and event.data.medication_scanned
            yield _cell(event, day, "bcma_compliance", ONE if both else ZERO, ONE)
        case SepsisCaseEvaluated() if not event.data.excluded:
            compliant = ONE if event.data.bundle_compliant else ZERO
            yield _cell(event, day, "sepsis_bundle_compliance", compliant, ONE)


def _revenue_cycle(event: Event, day: date) -> Iterator[Contribution]:
    match event:
        case ClaimAdjudicated() if event.data.initial:
            yield _cell(event, day, "claim_denial_rate", ONE if event.data.outcome == "denied" else ZERO, ONE)
        case ClaimSubmitted():
            yield _clean_claim(event, day)
        case PaymentReceived():
            yield CellKey("cost_to_collect", event.facility, day), Cell(ZERO, event.data.amount, 1)
            if event.data.patient_payment:
                pos = event.data.amount if event.data.point_of_service else ZERO
                yield _cell(event, day, "pos_collection_rate", pos, event.data.amount)
        case CostIncurred():
            yield _cell(event, day, "cost_total", event.data.amount, ZERO, event.data.category)
            if event.data.category == REVENUE_CYCLE:
                yield CellKey("cost_to_collect", event.facility, day), Cell(event.data.amount, ZERO, 0)


def _clean_claim(event: ClaimSubmitted, day: date) -> Contribution:
    """A submission whose cleanliness is unknown (`clean` null: a FHIR Claim without the project's
    extension) is neither clean nor unclean: it joins the sample, never the denominator, so
    sample_size − denominator counts such submissions (docs/kpis.md)."""
    if event.data.clean is None:
        return CellKey("clean_claim_rate", event.facility, day), Cell(ZERO, ZERO, 1)
    return _cell(event, day, "clean_claim_rate", ONE if event.data.clean else ZERO, ONE)
