"""What the gateway's key resolution needs from storage, by role (`PostgresDirectory` implements it)."""

from __future__ import annotations

from typing import Protocol

from gateway.domain.keys import ApiKey
from gateway.domain.tenants import Tenant


class KeyDirectory(Protocol):
    async def key_by_secret(self, key: str) -> ApiKey | None: ...

    async def tenant(self, tenant_id: str) -> Tenant | None: ...
