"""Discharge dispositions as hospitals code them: the NUBC UB-04 patient discharge status codes (HL7
table 0112), read from HL7 v2 `PV1-36` and FHIR `Encounter.hospitalization.dischargeDisposition` alike
(docs/interop.md)."""

from __future__ import annotations

DISPOSITIONS_0112 = {
    "01": "home",
    "06": "home_health",
    "02": "transfer_acute",
    "03": "snf",
    "61": "snf",
    "64": "snf",
    "62": "rehab",
    "50": "hospice",
    "51": "hospice",
    "07": "ama",
    "20": "expired",
    "40": "expired",
    "41": "expired",
    "42": "expired",
}
