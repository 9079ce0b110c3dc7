"""A vendor's billing system is told, not left to poll (docs/webhooks.md), through the gateway.

The receiver below is what a billing system runs: it verifies every delivery with the `standardwebhooks`
package (the specification's reference library, not our code), and books from what it verified. The
stack's settlement allows loopback endpoints (as `make up` does), retries every half second instead of
over a day, and looks at periods every half second.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner, Result

from tests.e2e.test_missing_data_is_never_money import (
    _complete_through,
    _contract,
    _cost,
    _finalize,
    _parties,
    _post_events,
    _statement,
)
from tests.integration.gateway.conftest import GatewayStack, gateway_in_front, services_running
from tests.integration.gateway.test_gateway import key
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving
from tests.support.waiting import eventually
from vr_cli.main import app

EVERY_EVENT = [
    "statement.ready",
    "statement.blocked",
    "statement.finalized",
    "statement.adjusted",
    "contract.updated",
]


@pytest.fixture(scope="module")
async def services(infrastructure: Infrastructure) -> AsyncIterator[dict[str, str]]:
    async with services_running(
        infrastructure,
        webhook_allowed_networks="127.0.0.0/8",
        webhook_retry_schedule="0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
        webhook_poll_interval_seconds=0.2,
        blocked_check_interval_seconds=0.5,
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def stack(infrastructure: Infrastructure, services: dict[str, str]) -> AsyncIterator[GatewayStack]:
    async with gateway_in_front(infrastructure, services) as running:
        yield running


@dataclass
class Receiver:
    """A billing system's webhook endpoint: verifies, then books (or is down, answering 503)."""

    secrets: list[str] = field(default_factory=list)
    down: bool = False
    verified: list[dict[str, Any]] = field(default_factory=list)  # headers' id + the payload
    refused: int = 0  # attempts answered 503 while down
    unverifiable: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/settlement")
        async def hook(request: Request) -> Response:
            if self.down:
                self.refused += 1
                return Response(status_code=503)
            body, headers = await request.body(), dict(request.headers)
            for secret in self.secrets:
                try:
                    payload = Webhook(secret).verify(body, headers)
                except WebhookVerificationError:
                    continue
                self.verified.append({"webhook_id": headers["webhook-id"], **payload})
                return Response(status_code=204)
            self.unverifiable += 1
            return Response(status_code=400)

        return app

    def of(self, event_type: str, **data: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.verified
            if e["type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver()
    async with serving(hooks.app()) as url:
        yield hooks, f"{url}/hooks/settlement"


async def _subscribe(
    stack: GatewayStack, headers: dict[str, str], url: str, events: list[str] = EVERY_EVENT
) -> dict[str, Any]:
    created = await stack.client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": events}, headers=headers
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _feed(stack: GatewayStack, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    got = await stack.client.get("/v1/settlement-events", params=params, headers=headers)
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_a_billing_system_books_finalized_and_adjusted_statements_from_verified_webhooks(
    stack: GatewayStack, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    p = await _parties(stack)
    endpoint = await _subscribe(stack, p.billing, url)
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == sorted(EVERY_EVENT)
    hooks.secrets.append(endpoint["secret"])
    shown = await stack.client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=p.billing)
    assert shown.status_code == 200 and "secret" not in shown.json()  # shown once, at creation

    contract = _contract(p)
    assert (await stack.client.post("/v1/contracts", json=contract, headers=p.admin)).status_code == 201
    updated = await eventually(
        lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"]), bool
    )
    assert updated[0]["data"]["version"] == 1 and updated[0]["data"]["vendor"] == p.vendor

    inputs = f"/v1/contracts/{contract['id']}/periods/2026-Q1/inputs"
    put = await stack.client.put(inputs, json={"benchmark": "10000000.00", "quality": "1"}, headers=p.admin)
    assert put.status_code == 200, put.text
    # No data yet and the run-out (0 days) has passed: the quarter is blocked, and the vendor is told why.
    blocked = await eventually(lambda: _delivered(hooks, "statement.blocked", period="2026-Q1"), bool)
    assert [line["term_id"] for line in blocked[0]["data"]["missing"]["lines"]] == ["savings"]

    await _post_events(
        stack,
        p,
        [
            _cost(p, 1, "4000000.00"),
            _cost(p, 2, "3000000.00"),
            _cost(p, 3, "2500000.00"),
            _complete_through(p, "2026-04-01T00:00:00-04:00"),
        ],
    )
    ready = await eventually(lambda: _delivered(hooks, "statement.ready", period="2026-Q1"), bool)
    assert ready[0]["data"]["total"] == "250000.00" and ready[0]["data"]["data_complete"] is True

    final = await _finalize(stack, p, contract["id"])
    assert final.status_code == 201, final.text
    again = await _finalize(stack, p, contract["id"])
    assert again.status_code == 200
    booked = await eventually(lambda: _delivered(hooks, "statement.finalized", period="2026-Q1"), bool)
    await asyncio.sleep(1.0)  # a second finalize would have been delivered by now
    booked = hooks.of("statement.finalized", period="2026-Q1")
    assert len(booked) == 1
    invoice = booked[0]["data"]
    assert invoice["sha256"] == final.json()["sha256"] and invoice["total"] == "250000.00"
    assert (invoice["contract_id"], invoice["contract_version"], invoice["currency"]) == (
        contract["id"],
        1,
        "USD",
    )
    assert invoice["link"] == f"/v1/contracts/{contract['id']}/settlements/2026-Q1"
    linked = await stack.client.get(invoice["link"], headers=p.billing)
    assert linked.json()["sha256"] == invoice["sha256"]

    # A late cost event of March: 100,000.00 more expenditure → 50,000.00 less shared savings.
    await _post_events(stack, p, [{**_cost(p, 3, "100000.00"), "id": "cost-2026-03-late"}])
    credit = (await eventually(lambda: _delivered(hooks, "statement.adjusted", period="2026-Q1"), bool))[0][
        "data"
    ]
    assert (credit["total_delta"], credit["total_after"]) == ("-50000.00", "200000.00")
    assert credit["lines"] == [{"term_id": "savings", "delta": "-50000.00"}]
    statement = await _statement(stack, p, contract["id"])
    assert statement["total"] == "250000.00"  # the final statement never changes
    assert [a["id"] for a in statement["adjustments"]] == [credit["adjustment_id"]]
    listed = await stack.client.get(
        f"/v1/contracts/{contract['id']}/settlements/2026-Q1/adjustments",
        params={"limit": 1},
        headers=p.billing,
    )
    assert listed.status_code == 200, listed.text
    assert [(a["id"], a["total_delta"]) for a in listed.json()["items"]] == [
        (credit["adjustment_id"], "-50000.00")
    ]
    assert listed.json()["next"] is None
    assert hooks.unverifiable == 0

    # The same events as a pull feed, resumable page by page: what was pushed is what is polled.
    pushed = [e["webhook_id"] for e in hooks.verified]
    polled: list[str] = []
    cursor = None
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        page = await _feed(stack, p.billing, limit=2, **({"after": cursor} if cursor else {}))
        polled += [item["id"] for item in page["items"] if item["data"]["contract_id"] == contract["id"]]
        if page["items"]:
            cursor = page["next"]
        elif set(polled) >= set(pushed) or asyncio.get_running_loop().time() > deadline:
            break
        else:  # an event is in the feed once no transaction open before it commits is still running
            await asyncio.sleep(0.2)
    assert sorted(polled) == sorted(pushed) and len(set(polled)) == len(polled)
    nothing_new = await _feed(stack, p.billing, after=cursor)
    assert nothing_new == {"items": [], "next": cursor}  # resume from here later
    # A stranger's feed has none of them.
    stranger = await _parties(stack)
    assert not {i["id"] for i in (await _feed(stack, stranger.billing, limit=200))["items"]} & set(pushed)


async def _delivered(hooks: Receiver, event_type: str, **data: Any) -> list[dict[str, Any]]:
    return hooks.of(event_type, **data)


async def test_a_receiver_that_is_down_gets_the_event_when_it_is_back_with_the_same_id(
    stack: GatewayStack, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    p = await _parties(stack)
    endpoint = await _subscribe(stack, p.billing, url, ["contract.updated"])
    hooks.secrets.append(endpoint["secret"])
    hooks.down = True
    contract = _contract(p, id=f"{p.health}-retried")
    assert (await stack.client.post("/v1/contracts", json=contract, headers=p.admin)).status_code == 201
    await eventually(lambda: _now(hooks.refused), lambda refused: refused >= 3)
    hooks.down = False
    (got,) = await eventually(lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"]), bool)

    deliveries = await stack.client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=p.billing
    )
    (delivery,) = deliveries.json()["items"]
    assert delivery["status"] == "delivered" and delivery["event_id"] == got["webhook_id"]
    codes = [a["status_code"] for a in delivery["attempts"]]
    assert codes[-1] == 204 and set(codes[:-1]) == {503} and len(codes) >= 4

    # Replayed by its owner: the same webhook-id again (the receiver deduplicates on it).
    replay = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/replay", headers=p.billing
    )
    assert replay.status_code == 202, replay.text
    await eventually(lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"]), _two)
    assert {e["webhook_id"] for e in hooks.of("contract.updated", contract_id=contract["id"])} == {
        got["webhook_id"]
    }
    # Another tenant cannot see or replay it.
    stranger = await _parties(stack)
    foreign = await stack.client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=stranger.billing
    )
    assert foreign.status_code == 404


async def _now(value: int) -> int:
    return value


def _two(found: list[dict[str, Any]]) -> bool:
    return len(found) >= 2


async def test_a_rotated_secret_keeps_the_old_one_signing_for_the_overlap(
    stack: GatewayStack, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    p = await _parties(stack)
    endpoint = await _subscribe(stack, p.billing, url, ["contract.updated"])
    rotated = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=p.billing
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != endpoint["secret"]
    hooks.secrets.append(endpoint["secret"])  # a receiver not yet updated: the old secret still verifies
    contract = _contract(p, id=f"{p.health}-rotated")
    assert (await stack.client.post("/v1/contracts", json=contract, headers=p.admin)).status_code == 201
    await eventually(lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"]), bool)
    hooks.secrets[:] = [new_secret]  # the updated receiver verifies with the new one
    changed = await stack.client.put(
        f"/v1/contracts/{contract['id']}", json={**contract, "name": "Renamed"}, headers=p.admin
    )
    assert changed.status_code == 200, changed.text
    (v2,) = await eventually(
        lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"], version=2), bool
    )
    assert v2["data"]["name"] == "Renamed" and hooks.unverifiable == 0


async def test_endpoints_are_checked_owned_and_idempotent(
    stack: GatewayStack, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    p = await _parties(stack)
    for private in ("http://10.1.2.3/hook", "http://169.254.169.254/latest", "https://[fd00::1]/hook"):
        refused = await stack.client.post(
            "/v1/webhook-endpoints", json={"url": private, "events": EVERY_EVENT}, headers=p.billing
        )
        assert refused.status_code == 422, refused.text
        assert [e["path"] for e in refused.json()["errors"]] == ["$.url"]
        assert "private or reserved" in refused.json()["errors"][0]["message"]
    bad = await stack.client.post(
        "/v1/webhook-endpoints", json={"url": "ftp://x", "events": ["invoice.paid"]}, headers=p.billing
    )
    assert bad.status_code == 422
    assert [e["path"] for e in bad.json()["errors"]] == ["$.url", "$.events"]

    # A retried POST (same Idempotency-Key, same body) is one endpoint with the same secret.
    retry = {**p.billing, "Idempotency-Key": f"sub-{uuid.uuid4().hex}"}
    body = {"url": url, "events": ["statement.finalized"]}
    first = await stack.client.post("/v1/webhook-endpoints", json=body, headers=retry)
    second = await stack.client.post("/v1/webhook-endpoints", json=body, headers=retry)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"] and first.json()["secret"] == second.json()["secret"]
    listed = await stack.client.get("/v1/webhook-endpoints", headers=p.billing)
    assert [e["id"] for e in listed.json()["items"]] == [first.json()["id"]]

    # Only the tenant's own billing system or admin manages them; ops and pipelines may not.
    ops_key = await _key(stack, p.health, "ops")
    assert (await stack.client.get("/v1/webhook-endpoints", headers=ops_key)).status_code == 403
    theirs = await stack.client.get(f"/v1/webhook-endpoints/{first.json()['id']}", headers=p.admin)
    assert theirs.status_code == 404  # the health system's admin: another tenant's endpoint
    gone = await stack.client.delete(f"/v1/webhook-endpoints/{first.json()['id']}", headers=p.billing)
    assert gone.status_code == 204
    assert (await stack.client.get("/v1/webhook-endpoints", headers=p.billing)).json()["items"] == []


async def _key(stack: GatewayStack, tenant_id: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await key(stack, tenant_id, role)}"}


async def _vr(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def test_a_billing_team_manages_its_webhooks_from_the_command_line(
    stack: GatewayStack, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    p = await _parties(stack)
    env = {"VR_URL": stack.url, "VR_API_KEY": p.billing["Authorization"][7:], "COLUMNS": "250"}
    added = await _vr(env, "webhooks", "add", url, "--event", "contract.updated")
    assert added.exit_code == 0, added.output
    secret = next(line.split()[1] for line in added.output.splitlines() if line.startswith("secret "))
    endpoint_id = added.output.split()[1]
    hooks.secrets.append(secret)
    listed = json.loads((await _vr(env, "webhooks", "list", "-o", "json")).output)
    assert [(e["id"], e["events"]) for e in listed] == [(endpoint_id, ["contract.updated"])]

    contract = _contract(p, id=f"{p.health}-cli")
    assert (await stack.client.post("/v1/contracts", json=contract, headers=p.admin)).status_code == 201
    (got,) = await eventually(lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"]), bool)
    shown = await _vr(env, "webhooks", "deliveries", endpoint_id, "-o", "csv")
    (row,) = list(csv.DictReader(io.StringIO(shown.output)))
    assert (row["event_id"], row["status"], row["attempts"]) == (got["webhook_id"], "delivered", "1")
    replayed = await _vr(env, "webhooks", "replay", endpoint_id, row["id"])
    assert replayed.exit_code == 0 and "queued" in replayed.output, replayed.output
    await eventually(lambda: _delivered(hooks, "contract.updated", contract_id=contract["id"]), _two)

    feed = json.loads((await _vr(env, "settlements", "events", "-o", "json")).output)
    assert got["webhook_id"] in [e["id"] for e in feed["items"]]
    removed = await _vr(env, "webhooks", "remove", endpoint_id)
    assert removed.exit_code == 0, removed.output
    unknown = await _vr(env, "webhooks", "deliveries", endpoint_id)
    assert unknown.exit_code == 1 and "404" in unknown.output
