"""The gateway's own lists are paged like every other (docs/api.md, "Lists"): API keys oldest first,
tenants by id — each seen once, whoever asks seeing only what it may."""

from __future__ import annotations

from typing import Any

from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key, tenant


async def _pages(stack: GatewayStack, path: str, headers: dict[str, str], **params: Any) -> list[list[Any]]:
    pages, after = [], None
    while True:
        answer = await stack.client.get(
            path, params={**params, **({"after": after} if after else {})}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["items"])
        after = answer.json()["next"]
        if after is None:
            return pages


async def test_keys_come_oldest_first_a_page_at_a_time(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main",))
    made = [await key(stack, health, "pipeline", name=f"feed {i}") for i in range(5)]
    admin = bearer(await key(stack, health, "tenant_admin", name="admin"))
    pages = await _pages(stack, "/v1/api-keys", admin, limit=2)
    names = [k["name"] for items in pages for k in items]
    assert names == [*(f"feed {i}" for i in range(5)), "admin"] and [len(p) for p in pages] == [2, 2, 2]
    assert all("key" not in k for items in pages for k in items)  # never a secret
    assert len(made) == 5


async def test_tenants_are_listed_by_id_all_for_a_platform_admin_its_own_for_others(
    stack: GatewayStack,
) -> None:
    mine = await tenant(stack, facilities=("main",))
    await tenant(stack, kind="vendor")
    everyone = [
        t["id"] for items in await _pages(stack, "/v1/tenants", stack.admin(), limit=3) for t in items
    ]
    assert everyone == sorted(everyone) and len(everyone) == len(set(everyone)) and mine in everyone
    ops = bearer(await key(stack, mine, "ops"))
    assert [t["id"] for items in await _pages(stack, "/v1/tenants", ops) for t in items] == [mine]
