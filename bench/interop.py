"""HL7 v2 messages/s and FHIR entries/s through ingest against JSON events/s, in the same run, on the
same ingest process (docs/interop.md).

* JSON: batches of 500 catalogue events (bench.ingest's mix), 202 each.
* HL7 v2: bodies of 200 ADT messages shaped like UCLH's public Emap samples (tests/data/hl7v2/): an
  A01 / A03 pair per stay, each message with its MSH, EVN, PID, PV1 (doctors, locations) and PV2/OBX
  segments, distinct control ids and patients — answered 200 with one AA per message.
* FHIR Bulk NDJSON: 500 Encounter lines per body, Synthea's own (tests/data/fhir/), each an inpatient
  or emergency stay (an admission and a discharge: 202), ids made unique per line.
* FHIR Bundle mix: batch Bundles of 200 entries as a Synthea patient Bundle holds them — Patient,
  Encounters (inpatient with a discharge, ambulatory: 200), MedicationRequests of those Encounters,
  Observations (200) — references resolved inside the Bundle.
Every path goes through the same validation, pseudonymisation and publish (acks=all).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from pathlib import Path
from typing import Any

from bench.infra import broker_servers, identity_token
from bench.ingest import (
    FACILITIES,
    PARTITIONS,
    ROUNDS,
    TENANT,
    TIMEZONE,
    ingest_process,
    post_load,
    request_bodies,
)
from bench.report import machine, today, write_section
from bench.support import spread
from vr_shared.identity import Identity
from vr_shared.kafka import TopicSpec, ensure_topics
from vr_shared.roles import Role

SYNTHEA = Path(__file__).resolve().parents[1] / "tests" / "data" / "fhir" / "synthea-10-patients"
FHIR_JSON, FHIR_NDJSON = "application/fhir+json", "application/fhir+ndjson"
LINES_PER_BODY, ENTRIES_PER_BUNDLE = 500, 200
MESSAGES_PER_BODY = 200
HL7_BODIES = 40
ER7 = "x-application/hl7-v2+er7"
_DOCTORS = "HB^BADGER^HONEY^^^^^^CONS^^^^CONS~C1111111^BADGER^HONEY^^^^^^CDS^^^^CDS"
_TAIL = (
    "PV2||||||||20260302||||Hospital Encounter||||||||||N\r"
    "OBX|1|TX|AdminCode^ADMINISTRATIVE CATEGORY CODE|1|1"
)


def adt(i: int) -> str:
    """Stay i's admission (even i) or discharge (odd i), as an Epic feed sends them."""
    stay, discharge = i // 2, i % 2 == 1
    trigger = "A03" if discharge else "A01"
    pv1 = ["PV1", "1", "I", f"T42E^T42E BY02^BY02-17^{FACILITIES[0]}^R", "", "", "", _DOCTORS, "", _DOCTORS]
    pv1 += [""] * (46 - len(pv1))
    pv1[19], pv1[44] = f"V{stay:08d}", "20260301100052"
    if discharge:
        pv1[36], pv1[45] = "01", "20260304113000"
    return "\r".join(
        [
            f"MSH|^~\\&|EPIC|{FACILITIES[0]}|||20260304120000|IPUC|ADT^{trigger}|B{i:09d}|P|2.4|||AL|NE",
            f"EVN|{trigger}|20260304120000||ADT_EVENT|IPUC^COORDINATOR^INPATIENT^UNIT|20260301100052",
            f"PID|1||{stay % 50_000:08d}^^^MRENTR^MR~9999999999^^^NHS^HN||ORANGE^BLOOD^^^^^D|||F",
            "|".join(pv1).rstrip("|"),
            _TAIL,
        ]
    )


def hl7_bodies() -> list[bytes]:
    return [
        "\r".join(adt(b * MESSAGES_PER_BODY + i) for i in range(MESSAGES_PER_BODY)).encode()
        for b in range(HL7_BODIES)
    ]


def _synthea(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SYNTHEA / f"{name}.ndjson").read_text().splitlines()]


def _renamed(resource: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The resource as another one: its id and identifiers made unique (so its facts are new)."""
    copy: dict[str, Any] = json.loads(json.dumps(resource))
    copy["id"] = f"{copy['id']}-{suffix}"
    for identifier in copy.get("identifier", []):
        identifier["value"] = f"{identifier['value']}-{suffix}"
    return copy


def fhir_ndjson_bodies(bodies: int = 20) -> list[bytes]:
    stays = [e for e in _synthea("Encounter") if e["class"]["code"] in ("IMP", "EMER")]
    return [
        "\n".join(
            json.dumps(_renamed(stays[i % len(stays)], f"b{b}l{i}"), separators=(",", ":"))
            for i in range(LINES_PER_BODY)
        ).encode()
        for b in range(bodies)
    ]


def fhir_bundle_bodies(bodies: int = 20) -> list[bytes]:
    """Each Bundle: one patient's resources, repeated with new ids up to 200 entries."""
    patient = _synthea("Patient")[0]
    encounters = {e["id"]: e for e in _synthea("Encounter")}
    orders = _synthea("MedicationRequest")
    ordered = [encounters[o["encounter"]["reference"].split("/")[1]] for o in orders]
    visits = list(
        {
            e["id"]: e
            for e in [*ordered, *[e for e in encounters.values() if e["class"]["code"] == "IMP"][:3]]
        }.values()
    )
    observation = {"resourceType": "Observation", "id": "obs", "status": "final", "code": {"text": "BMI"}}
    out = []
    for b in range(bodies):
        entries: list[dict[str, Any]] = [{"fullUrl": f"urn:uuid:{patient['id']}", "resource": patient}]
        n = 0
        while len(entries) < ENTRIES_PER_BUNDLE:
            n += 1
            for visit in visits:
                entries.append({"resource": _renamed(visit, f"b{b}n{n}")})
            for order in orders:  # each refers to its Encounter, renamed alike, in this Bundle
                renamed = _renamed(order, f"b{b}n{n}")
                renamed["encounter"]["reference"] += f"-b{b}n{n}"
                entries.append({"resource": renamed})
            entries.append({"resource": {**observation, "id": f"obs-b{b}n{n}"}})
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries[:ENTRIES_PER_BUNDLE]}
        out.append(json.dumps(bundle, separators=(",", ":")).encode())
    return out


async def main() -> None:
    identity = Identity(
        tenant=TENANT, role=Role.PIPELINE, key_id="bench", facilities=frozenset(FACILITIES), timezone=TIMEZONE
    )
    auth = {"X-VR-Identity": identity_token(identity, "ingest")}
    json_bodies, er7_bodies = request_bodies(), hl7_bodies()
    ndjson_bodies, bundle_bodies = fhir_ndjson_bodies(), fhir_bundle_bodies()
    json_rates, hl7_rates, ndjson_rates, bundle_rates = [], [], [], []
    with broker_servers() as bootstrap:
        topic = f"bench.interop.{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS)])
        with ingest_process(bootstrap, topic) as url:
            for _ in range(ROUNDS):  # interleaved, medians reported
                json_rates.append((await post_load(url, auth, json_bodies))[0])
                hl7_rate, _ = await post_load(
                    url,
                    auth,
                    er7_bodies,
                    path="/v1/hl7v2",
                    content_type=ER7,
                    ok=200,
                    per_body=MESSAGES_PER_BODY,
                )
                hl7_rates.append(hl7_rate)
                ndjson_rate, _ = await post_load(
                    url,
                    auth,
                    ndjson_bodies,
                    path="/v1/fhir",
                    content_type=FHIR_NDJSON,
                    ok=200,
                    per_body=LINES_PER_BODY,
                )
                ndjson_rates.append(ndjson_rate)
                bundle_rate, _ = await post_load(
                    url,
                    auth,
                    bundle_bodies,
                    path="/v1/fhir",
                    content_type=FHIR_JSON,
                    ok=200,
                    per_body=ENTRIES_PER_BUNDLE,
                )
                bundle_rates.append(bundle_rate)
    write_section("interop", report(json_rates, hl7_rates, ndjson_rates, bundle_rates))


def report(
    json_rates: list[float], hl7_rates: list[float], ndjson_rates: list[float], bundle_rates: list[float]
) -> str:
    base = statistics.median(json_rates)
    ratio = statistics.median(hl7_rates) / base
    verdict = "meets" if ratio >= 0.5 else "misses"
    ndjson_ratio, bundle_ratio = (
        statistics.median(ndjson_rates) / base,
        statistics.median(bundle_rates) / base,
    )

    def fhir_verdict(value: float) -> str:
        return "meets" if value >= 0.25 else "misses"

    body = f"""## Hospitals' formats: HL7 v2 and FHIR R4 through ingest

{today()} — {machine()}.
Run: `make bench` (`python -m bench.interop`). One ingest process (one uvicorn worker), the same run,
median of {ROUNDS} interleaved rounds (range in brackets):

| path | items/s |
|---|---:|
| JSON catalogue events, batches of 500 | {spread(json_rates)} |
| HL7 v2 ADT (A01/A03 like Emap's), {MESSAGES_PER_BODY} per body, one ACK each | {spread(hl7_rates)} |
| FHIR Bulk NDJSON, Synthea IMP/EMER Encounters, {LINES_PER_BODY} lines per body | {spread(ndjson_rates)} |
| FHIR batch Bundles, a Synthea patient's mix, {ENTRIES_PER_BUNDLE} entries each | {spread(bundle_rates)} |

* **HL7 / JSON = {ratio:.2f}** — target ≥ 0.5: {verdict} the target. An HL7 message is parsed by
  python-hl7 (0.5–0.8 ms for these messages on this machine), which is most of its cost; the catalogue
  events it becomes then cost what JSON events cost.
* **FHIR NDJSON / JSON = {ndjson_ratio:.2f}**, **FHIR Bundle / JSON = {bundle_ratio:.2f}** (entries/s
  against events/s) — target ≥ 0.25: {fhir_verdict(ndjson_ratio)} / {fhir_verdict(bundle_ratio)} the target.
  An Encounter line becomes two events; a Bundle's Patient and Observations none.
"""
    print(body)
    return body


if __name__ == "__main__":
    asyncio.run(main())
