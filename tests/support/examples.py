"""A valid and an invalid example of every catalogue event type (docs/events.md)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

_ids = itertools.count(1)

VALID_DATA: dict[str, dict[str, Any]] = {
    "encounter.admitted": {
        "encounter_ref": "ENC-1001",
        "patient_ref": "MRN-555001",
        "encounter_class": "inpatient",
        "planned": False,
    },
    "encounter.discharged": {
        "encounter_ref": "ENC-1001",
        "patient_ref": "MRN-555001",
        "encounter_class": "inpatient",
        "admitted_at": "2026-03-01T08:00:00-05:00",
        "disposition": "home",
    },
    "encounter.admission_cancelled": {
        "encounter_ref": "ENC-1001",
        "patient_ref": "MRN-555001",
        "admitted_at": "2026-03-01T08:00:00-05:00",
    },
    "encounter.discharge_cancelled": {
        "encounter_ref": "ENC-1001",
        "patient_ref": "MRN-555001",
        "discharged_at": "2026-03-04T11:30:00-05:00",
    },
    "medication.ordered": {"order_ref": "ORD-1", "encounter_ref": "ENC-1001", "entry_method": "cpoe"},
    "medication.administered": {
        "administration_ref": "MAR-1",
        "encounter_ref": "ENC-1001",
        "patient_scanned": True,
        "medication_scanned": False,
    },
    "adverse_drug_event.recorded": {"encounter_ref": "ENC-1001", "harm_category": "E"},
    "sepsis.case_evaluated": {"encounter_ref": "ENC-1001", "bundle_compliant": True, "excluded": False},
    "system.outage": {
        "system": "ehr",
        "started_at": "2026-03-04T01:00:00-05:00",
        "ended_at": "2026-03-04T01:45:00-05:00",
        "planned": False,
    },
    "claim.submitted": {"claim_ref": "CLM-1", "amount": "1250.00", "clean": True},
    "claim.adjudicated": {
        "claim_ref": "CLM-1",
        "outcome": "partial",
        "initial": True,
        "paid_amount": "1000.00",
        "denied_amount": "250.00",
    },
    "payment.received": {"amount": "75.50", "patient_payment": True, "point_of_service": True},
    "ar.snapshot": {"net_ar": "4200000.00", "avg_daily_net_revenue": "100000.00"},
    "cost.incurred": {"category": "revenue_cycle", "amount": "18000.00"},
    "event.retracted": {"retracted_id": "evt-earlier"},
    "feed.complete": {"feed": "claims", "through": "2026-03-04T00:00:00-05:00"},
}

# (data change, JSON path the error must name) — one rule of the type's schema broken each time.
INVALID_DATA: dict[str, tuple[dict[str, Any], str]] = {
    "encounter.admitted": ({"encounter_class": "outpatient"}, "$.data.encounter_class"),
    "encounter.discharged": ({"admitted_at": "2026-03-05T08:00:00-05:00"}, "$"),  # admitted after discharge
    "encounter.admission_cancelled": ({"admitted_at": "2026-03-01"}, "$.data.admitted_at"),  # no time
    "encounter.discharge_cancelled": ({"patient_ref": ""}, "$.data.patient_ref"),
    "medication.ordered": ({"entry_method": "fax"}, "$.data.entry_method"),
    "medication.administered": ({"patient_scanned": "yes"}, "$.data.patient_scanned"),
    "adverse_drug_event.recorded": ({"harm_category": "J"}, "$.data.harm_category"),
    "sepsis.case_evaluated": ({"excluded": None}, "$.data.excluded"),
    "system.outage": ({"ended_at": "2026-03-04T00:59:00-05:00"}, "$.data"),  # ends before it starts
    "claim.submitted": ({"amount": 1250.0}, "$.data.amount"),  # money as a JSON number
    "claim.adjudicated": ({"outcome": "denied", "paid_amount": "10.00"}, "$.data"),
    "payment.received": ({"amount": "-5.00"}, "$.data.amount"),
    "ar.snapshot": ({"avg_daily_net_revenue": "0"}, "$.data.avg_daily_net_revenue"),
    "cost.incurred": ({"surprise": "x"}, "$.data.surprise"),  # unknown field
    "event.retracted": ({"retracted_id": ""}, "$.data.retracted_id"),
    "feed.complete": ({"through": "2026-03-05T00:00:00-05:00"}, "$"),  # declared before `through`
}

EVENT_TIMES = {"encounter.discharged": "2026-03-04T11:30:00-05:00"}


def event(
    type_: str,
    *,
    facility: str = "asheville-main",
    source: str = "epic-adt-feed",
    id_: str | None = None,
    time: str | None = None,
    **data_changes: Any,
) -> dict[str, Any]:
    data = copy.deepcopy(VALID_DATA[type_])
    data.update(data_changes)
    return {
        "specversion": "1.0",
        "id": id_ or f"evt-{next(_ids):06d}",
        "source": source,
        "type": type_,
        "time": time or EVENT_TIMES.get(type_, "2026-03-04T10:00:00-05:00"),
        "facility": facility,
        "data": data,
    }


def invalid_event(type_: str) -> tuple[dict[str, Any], str]:
    change, path = INVALID_DATA[type_]
    body = event(type_)
    for key, value in change.items():
        body["data"][key] = value
    return body, path
