"""Tenant isolation, route × role × relation, through the gateway (docs/security.md).

Relations to the health system H whose data is asked for: its own keys, another health system's,
the vendor party to H's contract, and a vendor with no contract with H; plus the platform admin.
Each answer is the one written in `expected` below — never another tenant's data, and never its
existence told apart from a missing resource by a different status.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.integration.gateway.conftest import GatewayStack
from tests.support.waiting import eventually

ROLES = ("tenant_admin", "pipeline", "billing", "ops")
RELATIONS = ("own", "other", "vendor", "non_party")
READERS = {"platform_admin", "tenant_admin", "billing", "ops"}
ADMINS = {"platform_admin", "tenant_admin"}
FINALIZERS = {"platform_admin", "tenant_admin", "billing"}


@dataclass
class World:
    health: str
    other: str
    vendor: str
    stranger: str
    contract: dict[str, Any]
    keys: dict[tuple[str, str], str]  # (relation, role) → key; ("platform", "platform_admin") too


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _world(stack: GatewayStack) -> World:
    run = uuid.uuid4().hex[:8]
    tenants = {
        "own": (f"iso-h-{run}", "health_system", [f"h-main-{run}"]),
        "other": (f"iso-o-{run}", "health_system", [f"o-main-{run}"]),
        "vendor": (f"iso-v-{run}", "vendor", []),
        "non_party": (f"iso-n-{run}", "vendor", []),
    }
    keys: dict[tuple[str, str], str] = {("platform", "platform_admin"): stack.admin()["Authorization"][7:]}
    for relation, (tenant_id, kind, facilities) in tenants.items():
        body = {"id": tenant_id, "name": tenant_id, "kind": kind, "timezone": "UTC", "facilities": facilities}
        assert (await stack.client.post("/v1/tenants", json=body, headers=stack.admin())).status_code == 201
        for role in ROLES:
            made = await stack.client.post(
                "/v1/api-keys",
                json={"tenant_id": tenant_id, "role": role, "name": role},
                headers=stack.admin(),
            )
            keys[(relation, role)] = made.json()["key"]
    health, facility = tenants["own"][0], tenants["own"][2][0]
    contract = {
        "id": f"iso-c-{run}",
        "name": "isolation",
        "health_system": health,
        "vendor": tenants["vendor"][0],
        "facilities": [facility],
        "currency": "USD",
        "timezone": "UTC",
        "start": "2026-01-01",
        "end": "2027-12-31",
        "period": "quarter",
        "runout_days": 30,
        "terms": [
            {
                "id": "claims",
                "kind": "kpi_incentive",
                "kpi": "clean_claim_rate",
                "direction": "higher_is_better",
                "baseline": "0.5",
                "target": "0.9",
                "max_reward": "1000.00",
            }
        ],
    }
    created = await stack.client.post(
        "/v1/contracts", json=contract, headers=_bearer(keys[("own", "tenant_admin")])
    )
    assert created.status_code == 201, created.text
    event = {
        "id": f"iso-e-{run}",
        "source": "iso",
        "type": "claim.submitted",
        "time": "2026-02-01T10:00:00Z",
        "facility": facility,
        "data": {"claim_ref": "C1", "amount": "10.00", "clean": True},
    }
    posted = await stack.client.post("/v1/events", json=[event], headers=_bearer(keys[("own", "pipeline")]))
    assert posted.status_code == 202
    own_ops = _bearer(keys[("own", "ops")])

    async def lookup() -> int:
        return (await stack.client.get(f"/v1/events/iso/iso-e-{run}", headers=own_ops)).status_code

    await eventually(lookup, lambda status: status == 200)
    return World(health, tenants["other"][0], tenants["vendor"][0], tenants["non_party"][0], contract, keys)


Call = Callable[[httpx.AsyncClient, dict[str, str], World], Awaitable[httpx.Response]]


def _get(path: str, **params: Any) -> Call:
    async def call(client: httpx.AsyncClient, headers: dict[str, str], w: World) -> httpx.Response:
        return await client.get(
            _fill(path, w), params={k: _fill(v, w) for k, v in params.items()}, headers=headers
        )

    return call


def _send(method: str, path: str, body: Callable[[World], Any]) -> Call:
    async def call(client: httpx.AsyncClient, headers: dict[str, str], w: World) -> httpx.Response:
        return await client.request(method, _fill(path, w), json=body(w), headers=headers)

    return call


def _fill(text: str, w: World) -> str:
    return (
        text.replace("{H}", w.health)
        .replace("{C}", w.contract["id"])
        .replace("{F}", w.contract["facilities"][0])
        .replace("{E}", "iso-e-" + w.contract["id"].rsplit("-", 1)[1])
    )


async def _delete_fresh_key(client: httpx.AsyncClient, headers: dict[str, str], w: World) -> httpx.Response:
    admin = _bearer(w.keys[("platform", "platform_admin")])
    made = await client.post(
        "/v1/api-keys", json={"tenant_id": w.health, "role": "ops", "name": "x"}, headers=admin
    )
    return await client.delete(f"/v1/api-keys/{made.json()['id']}", headers=headers)


def _new_tenant(w: World) -> dict[str, Any]:
    return {"id": f"iso-t-{uuid.uuid4().hex[:10]}", "name": "t", "kind": "vendor"}


def _new_contract(w: World) -> dict[str, Any]:
    return {**w.contract, "id": f"iso-n-{uuid.uuid4().hex[:10]}"}


def _event(w: World) -> list[dict[str, Any]]:
    return [
        {
            "id": f"iso-x-{uuid.uuid4().hex[:10]}",
            "source": "iso",
            "type": "claim.submitted",
            "time": "2026-02-02T10:00:00Z",
            "facility": w.contract["facilities"][0],
            "data": {"claim_ref": "C2", "amount": "10.00", "clean": False},
        }
    ]


def _readings(w: World) -> dict[str, Any]:
    return {
        "facility": w.contract["facilities"],
        "readings": [{"kpi": "clean_claim_rate", "from": "2026-01-01", "to": "2026-04-01"}],
    }


PERIOD = {"from": "2026-01-01", "to": "2026-04-01", "tenant": "{H}"}
# route → (call, roles the gateway lets through, answer by relation for those roles)
# Relations: own, other, vendor, non_party, platform. A platform admin acts for the tenant it names with
# `?tenant=` on tenant-scoped reads (events, KPIs); without it there is no tenant's data (404). Contracts
# are visible to it.
MATRIX: dict[str, tuple[Call, set[str], dict[str, int]]] = {
    "POST /v1/events": (
        _send("POST", "/v1/events", _event),
        {"pipeline"},
        {"own": 202, "other": 422, "vendor": 422, "non_party": 422},
    ),
    "GET /v1/events/{source}/{id}": (
        _get("/v1/events/iso/{E}"),
        {"platform_admin", "tenant_admin", "pipeline", "ops"},
        {"own": 200, "other": 404, "vendor": 404, "non_party": 404, "platform": 404},
    ),
    "GET /v1/events/{source}/{id}?tenant=H": (
        _get("/v1/events/iso/{E}", tenant="{H}"),
        {"platform_admin", "tenant_admin", "pipeline", "ops"},
        {"own": 200, "other": 404, "vendor": 404, "non_party": 404, "platform": 200},
    ),
    "GET /v1/kpis": (_get("/v1/kpis"), READERS, dict.fromkeys((*RELATIONS, "platform"), 200)),
    "GET /v1/kpis/{kpi}/values": (
        _get("/v1/kpis/clean_claim_rate/values", facility="{F}", **PERIOD),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "GET /v1/kpis/{kpi}/rolling": (
        _get("/v1/kpis/clean_claim_rate/rolling", facility="{F}", at="2026-03-01", tenant="{H}"),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "GET /v1/kpis/{kpi}/values (KPI no contract uses)": (
        _get("/v1/kpis/cpoe_rate/values", facility="{F}", **PERIOD),
        READERS,
        {"own": 200, "other": 404, "vendor": 404, "non_party": 404, "platform": 200},
    ),
    "POST /v1/kpis/readings": (
        _send("POST", "/v1/kpis/readings?tenant={H}", _readings),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "POST /v1/contracts": (
        _send("POST", "/v1/contracts", _new_contract),
        ADMINS,
        {"own": 201, "other": 404, "vendor": 403, "non_party": 404, "platform": 201},
    ),
    "GET /v1/contracts/{id}": (
        _get("/v1/contracts/{C}"),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "PUT /v1/contracts/{id}": (
        _send("PUT", "/v1/contracts/{C}", lambda w: w.contract),
        ADMINS,
        {"own": 200, "other": 404, "vendor": 403, "non_party": 404, "platform": 200},
    ),
    "GET inputs": (
        _get("/v1/contracts/{C}/periods/2026-Q1/inputs"),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "PUT inputs": (
        _send("PUT", "/v1/contracts/{C}/periods/2026-Q1/inputs", lambda w: {"benchmark": "100"}),
        ADMINS,
        {"own": 200, "other": 404, "vendor": 403, "non_party": 404, "platform": 200},
    ),
    "GET settlements": (
        _get("/v1/contracts/{C}/settlements"),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "GET settlement": (
        _get("/v1/contracts/{C}/settlements/2026-Q1"),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "POST finalize (period not ended)": (
        _send("POST", "/v1/contracts/{C}/settlements/2027-Q4/finalize", lambda w: None),
        FINALIZERS,
        {"own": 409, "other": 404, "vendor": 409, "non_party": 404, "platform": 409},
    ),
    "POST reconcile (not final)": (
        _send("POST", "/v1/contracts/{C}/settlements/2026-Q1/reconcile", lambda w: None),
        FINALIZERS,
        {"own": 409, "other": 404, "vendor": 409, "non_party": 404, "platform": 409},
    ),
    "GET audit": (
        _get("/v1/contracts/{C}/audit"),
        READERS,
        {"own": 200, "other": 404, "vendor": 200, "non_party": 404, "platform": 200},
    ),
    "POST /v1/contracts:simulate": (
        _send("POST", "/v1/contracts:simulate", lambda w: {"contract": w.contract, "periods": ["2026-Q1"]}),
        READERS,
        {"own": 200, "other": 403, "vendor": 200, "non_party": 403, "platform": 200},
    ),
    "POST /v1/tenants": (_send("POST", "/v1/tenants", _new_tenant), {"platform_admin"}, {"platform": 201}),
    "GET /v1/tenants/{id}": (
        _get("/v1/tenants/{H}"),
        READERS | {"pipeline"},
        {"own": 200, "other": 404, "vendor": 404, "non_party": 404, "platform": 200},
    ),
    "POST /v1/api-keys": (
        _send("POST", "/v1/api-keys", lambda w: {"tenant_id": w.health, "role": "ops", "name": "x"}),
        ADMINS,
        {"own": 201, "other": 404, "vendor": 404, "non_party": 404, "platform": 201},
    ),
    "DELETE /v1/api-keys/{id}": (
        _delete_fresh_key,
        ADMINS,
        {"own": 200, "other": 404, "vendor": 404, "non_party": 404, "platform": 200},
    ),
}


def expected(route: str, relation: str, role: str) -> int:
    _, roles, answers = MATRIX[route]
    return answers[relation] if role in roles else 403


async def test_every_route_for_every_role_and_relation(stack: GatewayStack) -> None:
    world = await _world(stack)
    actors = [(relation, role) for relation in RELATIONS for role in ROLES] + [("platform", "platform_admin")]
    wrong = []
    for route, (call, _, _) in MATRIX.items():
        for relation, role in actors:
            answer = await call(stack.client, _bearer(world.keys[(relation, role)]), world)
            want = expected(route, relation, role)
            if answer.status_code != want:
                wrong.append(
                    f"{route} as {relation} {role}: {answer.status_code} (expected {want}) {answer.text[:99]}"
                )
            elif relation in ("other", "non_party") and answer.status_code == 200:
                assert world.health not in answer.text and world.contract["id"] not in answer.text, route
    assert wrong == [], "\n".join(wrong)


async def test_lists_show_only_what_the_caller_may_see(stack: GatewayStack) -> None:
    world = await _world(stack)
    for relation in RELATIONS:
        items = (
            await stack.client.get("/v1/contracts", headers=_bearer(world.keys[(relation, "ops")]))
        ).json()["items"]
        assert (world.contract["id"] in {c["id"] for c in items}) == (relation in ("own", "vendor"))
        keys = (
            await stack.client.get("/v1/api-keys", headers=_bearer(world.keys[(relation, "tenant_admin")]))
        ).json()["items"]
        assert {k["tenant_id"] for k in keys} == {
            {"own": world.health, "other": world.other, "vendor": world.vendor, "non_party": world.stranger}[
                relation
            ]
        }
