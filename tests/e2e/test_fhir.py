"""FHIR R4 as hospitals export it (docs/interop.md): Synthea's public Bulk Data NDJSON and a batch Bundle
through the gateway with a pipeline key; readmissions and length of stay of the Synthea inpatient stays
computed here by hand, from the export itself, and matched through the KPI API."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.adverseevent import AdverseEvent
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest

from ingest.domain.fhir import EXTENSION as EXTENSIONS
from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key
from tests.support.data import DATA
from tests.support.waiting import eventually

SYNTHEA = DATA / "fhir" / "synthea-10-patients"
SYNTHEA_PATIENT = DATA / "fhir" / "synthea-patient-bundle" / "Cris921_Rath779.json"
ZONE = ZoneInfo("America/New_York")
FHIR_JSON = {"Content-Type": "application/fhir+json"}
NDJSON = {"Content-Type": "application/fhir+ndjson"}
FROM, TO = "1984-01-01", "1991-01-01"  # the years of the Synthea inpatient stays counted below


def _encounters() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SYNTHEA / "Encounter.ndjson").read_text().splitlines()]


def _facilities(encounters: list[dict[str, Any]]) -> list[str]:
    return sorted({e["serviceProvider"]["reference"].rsplit("|", 1)[1] for e in encounters})


async def _hospital(stack: GatewayStack, facilities: list[str]) -> tuple[str, dict[str, str]]:
    tenant_id = f"synthea-{uuid.uuid4().hex[:8]}"
    body = {"id": tenant_id, "name": "Synthea", "kind": "health_system", "timezone": "America/New_York"}
    created = await stack.client.post(
        "/v1/tenants", json={**body, "facilities": facilities}, headers=stack.admin()
    )
    assert created.status_code == 201, created.text
    return tenant_id, bearer(await key(stack, tenant_id, "pipeline"))


def _by_hand(encounters: list[dict[str, Any]]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """ALOS (days, denominator) and 30-day readmissions (numerator, denominator) as docs/kpis.md
    defines them, from the export: inpatient (IMP) stays, local dates of New York, discharges in range."""
    stays = [
        (
            e["subject"]["reference"],
            e["id"],
            datetime.fromisoformat(e["period"]["start"]),
            datetime.fromisoformat(e["period"]["end"]),
        )
        for e in encounters
        if e["class"]["code"] == "IMP" and e["status"] == "finished"
    ]
    admissions: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for patient, encounter, start, _ in stays:
        admissions[patient].append((encounter, start))
    days = count = readmitted = index = Decimal(0)
    for patient, encounter, start, end in stays:
        discharged_on = end.astimezone(ZONE).date()
        if not (FROM <= discharged_on.isoformat() < TO):
            continue
        days += (discharged_on - start.astimezone(ZONE).date()).days
        count += 1
        index += 1  # Synthea states no discharge disposition: every inpatient discharge is an index stay
        readmitted += any(
            other != encounter and back > end and (back.astimezone(ZONE).date() - discharged_on).days <= 30
            for other, back in admissions[patient]
        )
    return days, count, readmitted, index


def _admission_lookup(encounter: dict[str, Any]) -> str:
    start = datetime.fromisoformat(encounter["period"]["start"]).astimezone(UTC)
    return f"/v1/events/fhir/Encounter:{encounter['id']}:admitted:{start:%Y%m%dT%H%M%SZ}"


async def _summed(stack: GatewayStack, headers: dict[str, str], kpi: str) -> tuple[Decimal, Decimal]:
    params = {"from": FROM, "to": TO, "granularity": "year"}
    answer = await stack.client.get(f"/v1/kpis/{kpi}/values", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    values = answer.json()["values"]
    return (
        sum((Decimal(v["numerator"] or 0) for v in values), Decimal(0)),
        sum((Decimal(v["denominator"] or 0) for v in values), Decimal(0)),
    )


async def test_synthea_bulk_ndjson_moves_alos_and_readmissions_as_computed_by_hand(
    stack: GatewayStack,
) -> None:
    encounters = _encounters()
    tenant_id, pipeline = await _hospital(stack, _facilities(encounters))
    body = (SYNTHEA / "Encounter.ndjson").read_bytes()
    answer = await stack.client.post("/v1/fhir", content=body, headers={**pipeline, **NDJSON})
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "batch-response")
    statuses = [entry["response"]["status"] for entry in bundle["entry"]]
    expected = ["202 Accepted" if e["class"]["code"] in ("IMP", "EMER") else "200 OK" for e in encounters]
    assert statuses == expected  # an export is mostly ambulatory visits: understood, not an error

    days, count, readmitted, index = _by_hand(encounters)
    assert count > 30 and readmitted > 0  # the data exercises both KPIs
    ops = bearer(await key(stack, tenant_id, "ops"))
    # Waiting for the exact numbers: one patient's stays arrive in file order, not time order, so a
    # readmission may be counted after the discharge it follows.
    alos = await eventually(lambda: _summed(stack, ops, "alos_days"), lambda v: v == (days, count))
    assert alos == (days, count)
    readmissions = await eventually(
        lambda: _summed(stack, ops, "readmission_rate_30d"), lambda v: v == (readmitted, index)
    )
    assert readmissions == (readmitted, index)

    # The same export again counts each fact once: once every stay has been seen again (a duplicate),
    # the numbers have not moved.
    again = await stack.client.post("/v1/fhir", content=body, headers={**pipeline, **NDJSON})
    assert again.status_code == 200
    stays = [e for e in encounters if e["class"]["code"] in ("IMP", "EMER")]

    async def seen_again() -> int:
        answers = [await stack.client.get(_admission_lookup(e), headers=pipeline) for e in stays]
        return sum(a.json().get("status") == "duplicate" for a in answers)

    await eventually(seen_again, lambda n: n == len(stays))
    assert await _summed(stack, ops, "alos_days") == (days, count)
    assert await _summed(stack, ops, "readmission_rate_30d") == (readmitted, index)


async def test_a_batch_bundle_answers_entry_by_entry_with_fhirpaths(stack: GatewayStack) -> None:
    encounters = _encounters()
    inpatient = next(e for e in encounters if e["class"]["code"] == "IMP")
    ambulatory = next(e for e in encounters if e["class"]["code"] == "AMB")
    patient = json.loads((SYNTHEA / "Patient.ndjson").read_text().splitlines()[0])
    undated = {**inpatient, "id": "no-start", "identifier": [], "period": {}}
    claim = {
        "resourceType": "Claim",
        "id": "c1",
        "status": "active",
        "total": {"value": 1250.10, "currency": "USD"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{patient['id']}",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": inpatient, "request": {"method": "POST", "url": "Encounter"}},
            {"resource": ambulatory, "request": {"method": "POST", "url": "Encounter"}},
            {"resource": undated, "request": {"method": "POST", "url": "Encounter"}},
            {"resource": claim, "request": {"method": "POST", "url": "Claim"}},
        ],
    }
    _, pipeline = await _hospital(stack, _facilities(encounters))
    answer = await stack.client.post(
        "/v1/fhir", content=json.dumps(bundle), headers={**pipeline, **FHIR_JSON}
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/fhir+json")
    entries = answer.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["200 OK", "202 Accepted", "200 OK", "422", "422"]
    assert entries[2]["response"]["outcome"]["issue"][0]["severity"] == "information"
    (issue,) = entries[3]["response"]["outcome"]["issue"]
    assert (issue["code"], issue["expression"]) == ("required", ["Bundle.entry[3].resource.period.start"])
    assert entries[4]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[4].resource.created"]

    # The Bundle holds the Patient: the patient is known by its MR identifier; the lookup finds the event.
    location = entries[1]["response"]["location"]
    found = await eventually(
        lambda: stack.client.get(location, headers=pipeline), lambda r: r.status_code == 200
    )
    assert found.json()["status"] == "stored"

    metadata = await stack.client.get("/v1/fhir/metadata", headers=pipeline)
    assert metadata.json()["resourceType"] == "CapabilityStatement"
    assert metadata.json()["fhirVersion"] == "4.0.1"
    refused = await stack.client.post(
        "/v1/fhir", content=json.dumps({**bundle, "type": "document"}), headers={**pipeline, **FHIR_JSON}
    )
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"] == ["Bundle.type"]


OFFICIAL = DATA / "fhir" / "r4-examples"
FHIR_MODELS: dict[str, Any] = {
    "Encounter": Encounter,
    "MedicationRequest": MedicationRequest,
    "MedicationAdministration": MedicationAdministration,
    "AdverseEvent": AdverseEvent,
    "Claim": Claim,
    "ClaimResponse": ClaimResponse,
}
# What each official example states, by our mapping (docs/interop.md) — the examples carry none of the
# project's extensions, and some leave out what a catalogue event needs.
OFFICIAL_ANSWERS = {
    "encounter-example.json": ("422", ["Bundle.entry[0].resource.period.start"]),  # in-progress, no period
    "encounter-example-emerg.json": ("202 Accepted", None),  # emergency, now inpatient: admitted
    "encounter-example-f001-heart.json": ("200 OK", None),  # ambulatory
    "encounter-example-f201-20130404.json": ("200 OK", None),
    "medicationrequest0301.json": ("202 Accepted", None),  # a date alone: the start of the day
    "medicationrequest0302.json": ("202 Accepted", None),
    "medicationadministration0301.json": (
        "422",
        [f"Bundle.entry[6].resource.extension('{EXTENSIONS}bcma-patient-scanned')"],
    ),
    "adverseevent-example.json": (
        "422",
        [f"Bundle.entry[7].resource.extension('{EXTENSIONS}ncc-merp-category')"],
    ),
    "claim-example.json": ("422", ["Bundle.entry[8].resource.total.value"]),  # no total: no amount
    # Its Claim is a payer's URL outside the Bundle: whether the adjudication is initial is unknown.
    "claimresponse-example.json": ("422", ["Bundle.entry[9].resource.request"]),
}


async def test_the_official_r4_examples_of_the_six_types_answer_as_the_mapping_says(
    stack: GatewayStack,
) -> None:
    examples = [json.loads((OFFICIAL / name).read_text()) for name in OFFICIAL_ANSWERS]
    for example in examples:  # real FHIR, by the maintained model library
        FHIR_MODELS[example["resourceType"]].model_validate(example)
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": e} for e in examples]}
    _, pipeline = await _hospital(stack, ["main"])
    answer = await stack.client.post(
        "/v1/fhir", params={"facility": "main"}, content=json.dumps(bundle), headers={**pipeline, **FHIR_JSON}
    )
    assert answer.status_code == 200, answer.text
    got = [
        (
            e["response"]["status"],
            [i["expression"][0] for i in e["response"]["outcome"]["issue"]]
            if e["response"]["status"] == "422"
            else None,
        )
        for e in answer.json()["entry"]
    ]
    assert got == list(OFFICIAL_ANSWERS.values())
    # Stated by the extension, the ClaimResponse is stored (its money read exactly: tests/unit/ingest).
    stated = {
        **examples[9],
        "extension": [{"url": f"{EXTENSIONS}initial-adjudication", "valueBoolean": True}],
    }
    alone = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": stated}]}
    answer = await stack.client.post(
        "/v1/fhir", params={"facility": "main"}, content=json.dumps(alone), headers={**pipeline, **FHIR_JSON}
    )
    location = answer.json()["entry"][0]["response"]["location"]
    found = await eventually(
        lambda: stack.client.get(location, headers=pipeline), lambda r: r.status_code == 200
    )
    assert found.json()["status"] == "stored"


async def test_a_synthea_patients_claims_are_accepted_as_of_unknown_cleanliness(stack: GatewayStack) -> None:
    """Synthea's Claims, like every claims system's, carry no `clean-claim` extension: each is stored,
    and clean_claim_rate counts them in its sample, never in its denominator — null, not 0 (docs/kpis.md)."""
    bundle = json.loads(SYNTHEA_PATIENT.read_text())
    resources = [e["resource"] for e in bundle["entry"]]
    organizations = sorted(
        r["identifier"][0]["value"] for r in resources if r["resourceType"] == "Organization"
    )
    tenant_id, pipeline = await _hospital(stack, organizations)
    answer = await stack.client.post(
        "/v1/fhir", content=json.dumps(bundle), headers={**pipeline, **FHIR_JSON}
    )
    assert answer.status_code == 200, answer.text
    statuses = [
        (r["resourceType"], e["response"]["status"])
        for r, e in zip(resources, answer.json()["entry"], strict=True)
        if r["resourceType"] == "Claim"
    ]
    assert statuses == [("Claim", "202 Accepted")] * 11

    ops = bearer(await key(stack, tenant_id, "ops"))
    params = {"from": "2011-01-01", "to": "2021-01-01", "granularity": "year"}

    async def claims_seen() -> tuple[int, Decimal, list[str | None]]:
        read = await stack.client.get("/v1/kpis/clean_claim_rate/values", params=params, headers=ops)
        values = read.json()["values"]
        return (
            sum(int(v["sample_size"]) for v in values),
            sum((Decimal(v["denominator"] or 0) for v in values), Decimal(0)),
            [v["value"] for v in values],
        )

    sample, denominator, values = await eventually(claims_seen, lambda seen: seen[0] == 11)
    assert (sample, denominator) == (11, Decimal(0))
    assert values == [None] * len(values)  # cleanliness unknown is never 0 %
