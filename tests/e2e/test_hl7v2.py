"""HL7 v2 as hospitals send it (docs/interop.md): public ADT samples (UCLH's Emap, tests/data/hl7v2/)
through the gateway with a pipeline key, and through `vr hl7 relay` with python-hl7's own MLLP client
— the library an interface engine's side of the test would use, not a sender of ours."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import hl7
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hl7.mllp import open_hl7_connection

from devstack.ports import free_port
from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key
from tests.support.data import hl7_sample
from tests.support.hl7 import blanked
from tests.support.waiting import eventually
from vr_cli.demo_data import events as demo_events
from vr_cli.formats import as_fhir, as_hl7
from vr_cli.hl7_relay import run_relay, tls_context
from vr_cli.main import push_fhir, push_hl7

ER7 = {"Content-Type": "x-application/hl7-v2+er7"}


async def _london_hospital(stack: GatewayStack) -> tuple[str, str, dict[str, str]]:
    """A tenant in London with the facility the samples name (MSH-4 UCLH), and its pipeline key."""
    tenant_id = f"uclh-{uuid.uuid4().hex[:8]}"
    body = {"id": tenant_id, "name": "UCLH", "kind": "health_system", "timezone": "Europe/London"}
    created = await stack.client.post(
        "/v1/tenants", json={**body, "facilities": ["UCLH"]}, headers=stack.admin()
    )
    assert created.status_code == 201, created.text
    pipeline = await key(stack, tenant_id, "pipeline")
    return tenant_id, pipeline, {**bearer(pipeline), **ER7}


def _msa(ack: str) -> list[str]:
    segment = next(s for s in ack.split("\r") if s.startswith("MSA|"))
    return segment.split("|")


def _err(ack: str) -> list[str]:
    return next(s for s in ack.split("\r") if s.startswith("ERR|")).split("|")


async def _send(stack: GatewayStack, headers: dict[str, str], *texts: str) -> list[str]:
    body = "\r".join(t.replace("\n", "\r").strip() for t in texts)
    answer = await stack.client.post("/v1/hl7v2", content=body.encode(), headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("x-application/hl7-v2+er7")
    return answer.text.split("\r\n")


async def test_public_adt_messages_are_acknowledged_message_by_message(stack: GatewayStack) -> None:
    _, pipeline, headers = await _london_hospital(stack)
    no_class = blanked("generic_A03", "PV1-2").replace("|eh|", "|eh2|")
    impossible_offset = hl7_sample("generic_A01").replace("|20130211100052\nPV2", "|20130211100052+2400\nPV2")
    acks = await _send(
        stack,
        headers,
        *map(hl7_sample, ["generic_A01", "generic_A04", "CancelAdmit_04_A02", "generic_A03"]),
        no_class,
        impossible_offset.replace("|31644|", "|31645|"),
        hl7_sample("CancelAdmit_02_A11"),
    )
    assert [_msa(a)[1:3] for a in acks] == [
        ["AA", "31644"],  # admitted
        ["AA", "31644"],  # an outpatient: understood, nothing measured
        ["AA", "31644"],  # a transfer: understood, nothing measured
        ["AA", "eh"],  # discharged in the minute it was admitted (PV1-45 to the minute): it stands
        ["AE", "eh2"],  # no patient class: an error, never AA for a dropped discharge
        ["AE", "31645"],  # an offset of 24 hours: an error of this message, not a 500 for the request
        ["AA", "31644"],  # a cancel of the admission
    ]
    assert _err(acks[4])[2:4] == ["PV1^1^2", "101^Required field missing^HL70357"]
    assert _err(acks[4])[-1] == "PV1-2 (patient class) is empty"
    assert _err(acks[5])[2:4] == ["PV1^1^44", "102^Data type error^HL70357"]
    assert _err(acks[5])[-1].startswith("PV1-44 (admit date/time) '20130211100052+2400' is not a date/time")

    # The derived ids find the events, as a pipeline looks up any event.
    for stored in ("31644:admitted:20130211T100052Z:c20d9724", "eh:discharged:20130211T100000Z:c20d9724"):
        await _stored(stack, pipeline, stored)


async def _alos_january_2013(stack: GatewayStack, tenant_id: str) -> dict[str, Any]:
    params = {"from": "2013-02-01", "to": "2013-03-01", "granularity": "month"}
    ops = bearer(await key(stack, tenant_id, "ops"))
    values = await eventually(
        lambda: stack.client.get("/v1/kpis/alos_days/values", params=params, headers=ops),
        lambda r: r.status_code == 200 and r.json()["values"][0]["sample_size"] not in (None, "0"),
    )
    (month,) = values.json()["values"]
    return dict(month)


CANCEL_ADMIT = [
    "CancelAdmit_01_A01",
    "CancelAdmit_02_A11",
    "CancelAdmit_03_A01",
    "CancelAdmit_04_A02",
    "CancelAdmit_05_A03",
]
CANCEL_DISCHARGE = ["CancelDischarge_03_A03", "CancelDischarge_04_A13", "CancelDischarge_05_A03"]


@pytest.mark.parametrize(
    ("sequence", "blank", "cancelled_id"),
    [
        (CANCEL_ADMIT, (), "31644:admitted:20130211T110052Z:c20d9724"),
        # Without PV1-44 in the admissions and cancel (the A03 keeps it: a discharge requires it).
        (CANCEL_ADMIT, ("PV1-44",), "31644:admitted:20130211T110052Z:c20d9724"),
        (CANCEL_DISCHARGE, (), "31644ZZZ:discharged:20130211T123052Z:c20d9724"),
        (CANCEL_DISCHARGE, ("PV1-45",), "31644ZZZ:discharged:20130211T123052Z:c20d9724"),
    ],
    ids=[
        "A01-A11-A01-A02-A03",
        "A01-A11-A01-A02-A03-without-PV1-44",
        "A03-A13-A03",
        "A03-A13-A03-without-PV1-45",
    ],
)
async def test_real_cancel_sequences_end_in_the_stay_that_stands(
    stack: GatewayStack, sequence: list[str], blank: tuple[str, ...], cancelled_id: str
) -> None:
    """Through the relay, with python-hl7's MLLP client, in the feed's order (and the Emap generic A04
    and A08 of the same patient after them: understood, nothing more to count). Blanked, the facts are
    timed at EVN-6, the time their cancel names."""
    tenant_id, pipeline, _ = await _london_hospital(stack)
    async with _relay(stack.url, pipeline) as port:
        acks = await _mllp(
            port, [*_without(sequence, blank), *map(hl7_sample, ["generic_A04", "generic_A08_v1"])]
        )
    assert [str(a["MSA.F1"]) for a in acks] == ["AA"] * (len(sequence) + 2)
    # The last message's event is stored: one patient, one partition, so every earlier one is in too.
    last = "/v1/events/hl7v2-epic/31644ZZZ:admitted:20130311T100052Z:c20d9724"
    await eventually(
        lambda: stack.client.get(last, headers=bearer(pipeline)),
        lambda r: r.status_code == 200 and r.json()["status"] == "stored",
    )
    cancelled = await stack.client.get(f"/v1/events/hl7v2-epic/{cancelled_id}", headers=bearer(pipeline))
    assert cancelled.json()["status"] == "retracted"  # the fact the cancel names counts nowhere
    # One discharge stands: the stay of 2013-02-11, 0 days long.
    month = await _alos_january_2013(stack, tenant_id)
    assert (month["value"], month["denominator"], month["sample_size"]) == ("0", "1", "1")


def _without(names: list[str], fields: tuple[str, ...]) -> list[str]:
    """The samples with those fields blanked — but a discharge keeps PV1-44, which it requires."""
    return [blanked(n, *(f for f in fields if not (n.endswith("A03") and f == "PV1-44"))) for n in names]


async def _stored(stack: GatewayStack, pipeline: str, event_id: str) -> None:
    """Until the KPI engine has stored the event (one patient, one partition: every earlier one too)."""
    await eventually(
        lambda: stack.client.get(f"/v1/events/hl7v2-epic/{event_id}", headers=bearer(pipeline)),
        lambda r: r.status_code == 200 and r.json()["status"] == "stored",
    )


@pytest.mark.parametrize(
    ("texts", "cancel_id"),
    [
        (_without(CANCEL_DISCHARGE[:2], ()), "31644ZZZ:discharge_cancelled:20130211T123052Z:c20d9724"),
        (
            _without(CANCEL_DISCHARGE[:2], ("PV1-45",)),
            "31644ZZZ:discharge_cancelled:20130211T123052Z:c20d9724",
        ),
        # Emap's generic A13 names the discharge by PV1-45 only (its EVN-6 is a 2010 time).
        (
            _without(["generic_A03", "generic_A13"], ()),
            "100000:discharge_cancelled:20130211T100000Z:c20d9724",
        ),
    ],
    ids=["A03-A13", "A03-A13-without-PV1-45", "generic-A03-A13"],
)
async def test_a_cancelled_discharge_stops_counting(
    stack: GatewayStack, texts: list[str], cancel_id: str
) -> None:
    """An A03 then the A13 that cancels it: no discharge stands, so the month's length of stay has none."""
    tenant_id, pipeline, headers = await _london_hospital(stack)
    acks = await _send(stack, headers, *texts)
    assert [_msa(a)[1] for a in acks] == ["AA", "AA"]
    await _stored(stack, pipeline, cancel_id)
    ops = bearer(await key(stack, tenant_id, "ops"))
    params = {"from": "2013-02-01", "to": "2013-03-01", "granularity": "month"}
    values = await stack.client.get("/v1/kpis/alos_days/values", params=params, headers=ops)
    (month,) = values.json()["values"]
    assert month["sample_size"] in (None, "0") and month["value"] is None


async def test_a_cancelled_admission_given_to_the_second_takes_the_discharge_given_to_the_minute(
    stack: GatewayStack,
) -> None:
    """Emap's generic A01 (PV1-44 10:00:52) and A03 (PV1-45 10:00, to the minute: its admission is
    stated at 10:00), then an A11 naming 10:00:52: it names 10:00 too, so the cancelled admission takes
    the stay's discharge with it and the month has none."""
    tenant_id, pipeline, headers = await _london_hospital(stack)
    a11 = hl7_sample("CancelAdmit_02_A11").replace("20130211110052", "20130211100052")
    acks = await _send(stack, headers, hl7_sample("generic_A01"), hl7_sample("generic_A03"), a11)
    assert [_msa(a)[1] for a in acks] == ["AA", "AA", "AA"]
    await _stored(stack, pipeline, "31644:admission_cancelled:20130211T100052Z:c20d9724")
    discharge = await stack.client.get(
        "/v1/events/hl7v2-epic/eh:discharged:20130211T100000Z:c20d9724", headers=bearer(pipeline)
    )
    assert discharge.json()["status"] == "retracted"
    ops = bearer(await key(stack, tenant_id, "ops"))
    params = {"from": "2013-02-01", "to": "2013-03-01", "granularity": "month"}
    values = await stack.client.get("/v1/kpis/alos_days/values", params=params, headers=ops)
    (month,) = values.json()["values"]
    assert month["sample_size"] in (None, "0") and month["value"] is None


async def test_a_death_discharge_given_to_the_minute_reaches_the_kpis(stack: GatewayStack) -> None:
    """Emap's A03_death_3: PV1-45 10:00 (to the minute), PV1-44 10:00:52 — the same minute. It was
    refused (AE); now it is one discharge of 0 days, expired, so no index stay for readmissions."""
    tenant_id, _, headers = await _london_hospital(stack)
    (ack,) = await _send(stack, headers, hl7_sample("generic_A03_death_3"))
    assert _msa(ack)[1:3] == ["AA", "eh"]
    month = await _alos_january_2013(stack, tenant_id)
    assert (month["value"], month["denominator"], month["sample_size"]) == ("0", "1", "1")
    ops = bearer(await key(stack, tenant_id, "ops"))
    params = {"from": "2013-02-01", "to": "2013-03-01", "granularity": "month"}
    readmissions = await stack.client.get("/v1/kpis/readmission_rate_30d/values", params=params, headers=ops)
    assert readmissions.json()["values"][0]["sample_size"] in (None, "0")  # expired: not an index stay


async def test_a_facility_that_is_not_the_tenants_is_rejected_and_only_pipelines_send(
    stack: GatewayStack,
) -> None:
    tenant_id, _, headers = await _london_hospital(stack)
    answer = await stack.client.post(
        "/v1/hl7v2",
        params={"facility": "elsewhere"},
        content=hl7_sample("generic_A01").encode(),
        headers=headers,
    )
    (ack,) = answer.text.split("\r\n")
    # The facility is the message's content: AE (do not send again as is), never an AR holding a queue.
    assert _msa(ack)[1] == "AE" and _err(ack)[2:4] == ["MSH^1^4", "204^Unknown key identifier^HL70357"]
    ops = {**bearer(await key(stack, tenant_id, "ops")), **ER7}
    refused = await stack.client.post("/v1/hl7v2", content=hl7_sample("generic_A01").encode(), headers=ops)
    assert refused.status_code == 403
    wrong_type = await stack.client.post(
        "/v1/hl7v2",
        content=hl7_sample("generic_A01").encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 415


@contextlib.asynccontextmanager
async def _relay(
    url: str, key_value: str, *, max_wait_s: float = 20.0, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    port, ready = free_port(), asyncio.Event()
    serving = asyncio.create_task(
        run_relay(
            url, key_value, "127.0.0.1", port, max_wait_s=max_wait_s, facility=None, tls=tls, ready=ready
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield port
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _mllp(port: int, texts: list[str], tls: ssl.SSLContext | None = None) -> list[Any]:
    """Send each message over one MLLP connection with python-hl7's client; the ACK of each."""
    over_tls: dict[str, Any] = {"ssl": tls, "server_hostname": "localhost"} if tls else {}
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8", **over_tls)
    acks = []
    try:
        for text in texts:
            writer.writemessage(hl7.parse(text.replace("\n", "\r").strip()))
            await writer.drain()
            acks.append(await asyncio.wait_for(reader.readmessage(), 30))
    finally:
        writer.close()
        await writer.wait_closed()
    return acks


async def test_the_relay_returns_the_platforms_acks_and_re_sends_count_once(stack: GatewayStack) -> None:
    tenant_id, pipeline, _ = await _london_hospital(stack)
    names = ["CancelAdmit_03_A01", "CancelAdmit_05_A03", "CancelAdmit_03_A01", "CancelAdmit_05_A03"]
    async with _relay(stack.url, pipeline) as port:
        acks = await _mllp(port, [hl7_sample(n) for n in names])
    assert [(str(a["MSA.F1"]), str(a["MSA.F2"])) for a in acks] == [
        ("AA", "31644"),
        ("AA", "31644ZZZ"),
        ("AA", "31644"),
        ("AA", "31644ZZZ"),
    ]
    # One inpatient stay, admitted 13:00:52 and discharged 15:00:52 on 2013-02-11 (London): the
    # re-sent pair counts once — one discharge, length of stay 0 days.
    month = await _alos_january_2013(stack, tenant_id)
    assert (month["value"], month["denominator"], month["sample_size"]) == ("0", "1", "1")


async def test_the_relay_answers_ar_rather_than_hold_a_sender_when_the_platform_is_away() -> None:
    wait = 1.5
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: the platform cannot be reached
    async with _relay(nowhere, "vrk_unused", max_wait_s=wait) as port:
        started = asyncio.get_running_loop().time()
        (ack,) = await _mllp(port, [hl7_sample("generic_A01")])
        waited = asyncio.get_running_loop().time() - started
    assert (str(ack["MSA.F1"]), str(ack["MSA.F2"])) == ("AR", "31644")
    assert waited < wait + 5  # bounded: the sender is answered and keeps its message


def _self_signed(where: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` and its key, as a hospital's own CA would issue the relay one."""
    key_ = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key_.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key_, hashes.SHA256())
    )
    cert_path, key_path = where / "relay.pem", where / "relay.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key_.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_the_relay_takes_mllp_over_tls(stack: GatewayStack, tmp_path: Path) -> None:
    _, pipeline, _ = await _london_hospital(stack)
    cert, private = _self_signed(tmp_path)
    sender = ssl.create_default_context(cafile=str(cert))  # the engine trusts the relay's certificate
    async with _relay(stack.url, pipeline, tls=tls_context(str(cert), str(private))) as port:
        (ack,) = await _mllp(port, [hl7_sample("generic_A01")], tls=sender)
    assert (str(ack["MSA.F1"]), str(ack["MSA.F2"])) == ("AA", "31644")


async def test_the_demo_streams_through_hl7_and_fhir_as_it_does_through_json(stack: GatewayStack) -> None:
    """`vr demo --format hl7|fhir`: a week of the demo's year, written as HL7 v2 and FHIR R4
    (vr_cli.formats), pushed the way the demo pushes it — every message AA, every resource stored."""
    tenant_id = f"demo-{uuid.uuid4().hex[:8]}"
    body = {"id": tenant_id, "name": "Demo", "kind": "health_system", "timezone": "UTC"}
    created = await stack.client.post(
        "/v1/tenants", json={**body, "facilities": ["north", "south"]}, headers=stack.admin()
    )
    assert created.status_code == 201, created.text
    pipeline = await key(stack, tenant_id, "pipeline")
    week = list(demo_events(["north", "south"], date(2026, 3, 1), date(2026, 3, 7)))
    messages, _ = as_hl7(week)
    lines, _ = as_fhir(week)
    acknowledged, refused = await asyncio.to_thread(push_hl7, stack.url, pipeline, messages)
    assert (acknowledged, refused) == (len(messages), [])
    stored, refused_entries = await asyncio.to_thread(push_fhir, stack.url, pipeline, lines)
    assert refused_entries == [] and stored == sum(len(v) for v in lines.values())
