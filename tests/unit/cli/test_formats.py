"""The demo's year written as HL7 v2 and FHIR R4 reads back, through ingest's own mappings, as the same
catalogue facts (docs/interop.md) — so `vr demo --format hl7|fhir` measures what the JSON demo does."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import hl7

from ingest.domain.fhir import BundleIndex, map_resource
from ingest.domain.hl7v2 import map_message
from vr_cli.demo_data import events
from vr_cli.formats import as_fhir, as_hl7

FACILITIES = ["north", "south"]
YEAR = list(events(FACILITIES, date(2026, 3, 1), date(2026, 4, 15)))


def _fact(event: dict[str, Any], *, to_seconds: bool = False) -> tuple[Any, ...]:
    """What a KPI reads of an event: type, facility, time, and its data (amounts as numbers). HL7 v2
    times are written to the second: `to_seconds` compares them so."""

    def moment(text: str) -> datetime:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.replace(microsecond=0) if to_seconds else parsed

    data = {k: Decimal(v) if k.endswith("amount") else v for k, v in event["data"].items()}
    if "patient_ref" in data:  # Bulk NDJSON holds no Patient to read the MR number from: the reference
        data["patient_ref"] = data["patient_ref"].removeprefix("Patient/")
    if event["type"] == "encounter.discharged":
        data["admitted_at"] = moment(data["admitted_at"])
    return (event["type"], event["facility"], moment(event["time"]), tuple(sorted(data.items())))


def test_adt_as_hl7_reads_back_as_the_same_admissions_and_discharges() -> None:
    messages, rest = as_hl7(YEAR)
    read = [e for text in messages for e in map_message(hl7.parse(text), "UTC", None).events]
    adt = [e for e in YEAR if e["type"].startswith("encounter.")]
    assert len(messages) == len(adt) > 100 and all(e not in rest for e in adt)
    assert Counter(_fact(e, to_seconds=True) for e in read) == Counter(_fact(e, to_seconds=True) for e in adt)


def test_the_year_as_fhir_reads_back_as_the_same_facts() -> None:
    lines, rest = as_fhir(YEAR)
    read = [
        event
        for facility, resources in lines.items()
        for line in resources
        for event in map_resource(
            json.loads(line, parse_float=Decimal), BundleIndex(), "UTC", facility, "resource"
        ).events
    ]
    carried = [e for e in YEAR if e not in rest]
    assert {e["type"] for e in carried} == {
        "encounter.admitted",
        "encounter.discharged",
        "medication.ordered",
        "medication.administered",
        "claim.submitted",
        "claim.adjudicated",
    }
    # A finished Encounter states its admission again (the same event id: counted once downstream) —
    # also for the stays admitted before the window, whose admission the window does not hold.
    first = datetime(2026, 3, 1, tzinfo=UTC)
    distinct = [e for e in {e["id"]: e for e in read}.values() if _fact(e)[2] >= first]
    assert Counter(_fact(e) for e in distinct) == Counter(_fact(e) for e in carried)
