"""Every accepted event lands on the topic, keyed, pseudonymised, and only after the broker's ack."""

from __future__ import annotations

import orjson
import pytest

from ingest.domain.pseudonyms import Pseudonymiser
from tests.integration.conftest import IngestUnderTest
from tests.support.examples import event
from tests.support.identity import PSEUDONYM_KEY, TENANT, token
from tests.support.infrastructure import Infrastructure
from tests.support.kafka import read_topic
from vr_shared.events import EVENT_TYPES, Origin, decode_event, validate_event
from vr_shared.events.codec import header_value

RAW_REFS = (b"MRN-555001", b"ENC-1001")
PSEUDONYMS = Pseudonymiser(PSEUDONYM_KEY.encode())


def _headers(content_type: str) -> dict[str, str]:
    return {"X-VR-Identity": token(), "Content-Type": content_type}


def _as_published(sent: dict[str, object]) -> object:
    """What the topic must hold for a sent event: the same event with its refs pseudonymised."""
    return validate_event(PSEUDONYMS.pseudonymise(TENANT, sent))


async def _post(
    ingest: IngestUnderTest, events: list[dict[str, object]], content_type: str
) -> list[dict[str, object]]:
    if content_type == "application/x-ndjson":
        body = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
    elif content_type == "application/cloudevents+json" or (
        content_type == "application/json" and len(events) == 1
    ):
        body = orjson.dumps(events[0])
    else:
        body = orjson.dumps(events)
    response = await ingest.client.post("/v1/events", content=body, headers=_headers(content_type))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)
    return events


@pytest.mark.parametrize(
    ("content_type", "count"),
    [
        ("application/json", 1),
        ("application/json", 13),
        ("application/cloudevents+json", 1),
        ("application/cloudevents-batch+json", 13),
        ("application/x-ndjson", 13),
    ],
)
async def test_each_content_type_lands_keyed_and_pseudonymised(
    infrastructure: Infrastructure, ingest: IngestUnderTest, content_type: str, count: int
) -> None:
    source = f"src-{content_type.split('/')[1]}-{count}"
    sent = [event(EVENT_TYPES[i % len(EVENT_TYPES)], source=source) for i in range(count)]
    await _post(ingest, sent, content_type)

    landed = [
        m
        for m in await read_topic(
            infrastructure.kafka_bootstrap_servers, ingest.settings.events_topic, expect=count
        )
        if decode_event(m.value)[1].source == source
    ]
    assert len(landed) == count
    by_id = {e["id"]: e for e in sent}
    for message in landed:
        origin, published = decode_event(message.value)
        tenant = origin.tenant
        expected = _as_published(by_id[published.id])
        assert tenant == TENANT
        assert published == expected  # exactly as sent, refs pseudonymised
        patient = getattr(expected.data, "patient_ref", None)
        assert (
            message.key
            == (f"{TENANT}|p|{patient}" if patient else f"{TENANT}|f|{expected.facility}").encode()
        )
        everything = message.key + message.value + b"".join(v for _, v in message.headers)
        assert not any(raw in everything for raw in RAW_REFS)
        assert header_value(message.headers, "ce_type") == expected.type
        assert header_value(message.headers, "vr_tenant") == TENANT


async def test_a_patients_events_from_two_facilities_share_a_partition(
    infrastructure: Infrastructure, ingest: IngestUnderTest
) -> None:
    source = "partition-check"
    sent = [
        event("encounter.admitted", facility="asheville-main", source=source),
        event("encounter.discharged", facility="mission-west", source=source),
    ]
    await _post(ingest, sent, "application/json")
    landed = [
        m
        for m in await read_topic(
            infrastructure.kafka_bootstrap_servers, ingest.settings.events_topic, expect=2
        )
        if decode_event(m.value)[1].source == source
    ]
    assert len(landed) == 2 and landed[0].partition == landed[1].partition and landed[0].key == landed[1].key


async def test_mixed_batch_accepts_the_valid_events_and_reports_each_rejection(
    infrastructure: Infrastructure, ingest: IngestUnderTest
) -> None:
    source = "mixed-batch"
    batch = [
        event("claim.submitted", source=source),
        event("claim.submitted", source=source, amount=99.5),  # money as a number
        event("cost.incurred", source=source, facility="not-ours"),
        event("ar.snapshot", source=source, time="2099-01-01T00:00:00Z"),  # far future
        event("payment.received", source=source),
    ]
    response = await ingest.client.post("/v1/events", json=batch, headers={"X-VR-Identity": token()})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert [r["id"] for r in body["results"]] == [e["id"] for e in batch]
    assert [e["path"] for e in body["results"][1]["errors"]] == ["$.data.amount"]
    assert body["results"][2]["errors"][0] == {
        "path": "$.facility",
        "code": "facility_not_in_tenant",
        "message": "facility 'not-ours' is not a facility of tenant 'mission-health'",
    }
    assert [(e["path"], e["code"]) for e in body["results"][3]["errors"]] == [("$.time", "time_in_future")]

    landed = [
        m
        for m in await read_topic(
            infrastructure.kafka_bootstrap_servers, ingest.settings.events_topic, expect=2
        )
        if decode_event(m.value)[1].source == source
    ]
    assert sorted(decode_event(m.value)[1].id for m in landed) == sorted([batch[0]["id"], batch[4]["id"]])


async def test_messages_carry_the_tenants_time_zone_from_the_identity(
    infrastructure: Infrastructure, ingest: IngestUnderTest
) -> None:
    sent = event("cost.incurred", source="timezone-check")
    await _post(ingest, [sent], "application/json")
    landed = await read_topic(infrastructure.kafka_bootstrap_servers, ingest.settings.events_topic, expect=1)
    [origin] = [decode_event(m.value)[0] for m in landed if decode_event(m.value)[1].id == sent["id"]]
    assert origin == Origin(TENANT, "America/New_York")
