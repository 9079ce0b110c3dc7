"""PostgreSQL store of tenants and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.adapters import tables
from gateway.domain.keys import BOOTSTRAP_KEY_ID, ApiKey, key_hash
from gateway.domain.tenants import Tenant
from vr_shared.roles import Role


class TenantExists(Exception):
    """A tenant with this id exists already."""


class PostgresDirectory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add_tenant(self, tenant: Tenant) -> None:
        async with self._engine.begin() as conn:
            created = await conn.execute(
                insert(tables.tenants)
                .values(
                    id=tenant.id,
                    name=tenant.name,
                    kind=tenant.kind,
                    timezone=tenant.timezone,
                    facilities=tenant.facilities,
                )
                .on_conflict_do_nothing()
                .returning(tables.tenants.c.id)
            )
            if created.first() is None:
                raise TenantExists(f"tenant {tenant.id!r} exists")

    async def tenant(self, tenant_id: str) -> Tenant | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(tables.tenants).where(tables.tenants.c.id == tenant_id))).first()
        return None if row is None else _tenant(row)

    async def tenants(self, *, after: str | None, limit: int) -> list[Tenant]:
        """By id: those after `after`, at most `limit`."""
        query = select(tables.tenants).order_by(tables.tenants.c.id).limit(limit)
        if after is not None:
            query = query.where(tables.tenants.c.id > after)
        async with self._engine.connect() as conn:
            return [_tenant(row) for row in await conn.execute(query)]

    async def add_key(
        self,
        key_id: str,
        key: str,
        tenant_id: str,
        role: str,
        name: str,
        expires_at: datetime | None,
        by: str,
    ) -> ApiKey:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    insert(tables.api_keys)
                    .values(
                        id=key_id,
                        tenant_id=tenant_id,
                        role=role,
                        name=name,
                        key_hash=key_hash(key),
                        expires_at=expires_at,
                        created_by=by,
                    )
                    .returning(tables.api_keys)
                )
            ).one()
        return _key(row)

    async def bootstrap_key(self, key: str | None, tenant_id: str) -> None:
        """The configured admin key (`VR_BOOTSTRAP_ADMIN_KEY`), stored hashed once. A revoked one stays
        revoked across restarts; a new value is a new key (the old one stops working); no value retires
        the key made from an earlier one (docs/security.md)."""
        async with self._engine.begin() as conn:
            if key is None:
                await conn.execute(
                    update(tables.api_keys)
                    .where(tables.api_keys.c.id == BOOTSTRAP_KEY_ID, tables.api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=func.now())
                )
                return
            statement = insert(tables.api_keys).values(
                id=BOOTSTRAP_KEY_ID,
                tenant_id=tenant_id,
                role=Role.PLATFORM_ADMIN.value,
                name="VR_BOOTSTRAP_ADMIN_KEY",
                key_hash=key_hash(key),
                created_by="start-up",
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"key_hash": statement.excluded.key_hash, "revoked_at": None},
                    where=tables.api_keys.c.key_hash != statement.excluded.key_hash,
                )
            )

    async def key_by_secret(self, key: str) -> ApiKey | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(tables.api_keys).where(tables.api_keys.c.key_hash == key_hash(key)))
            ).first()
        return None if row is None else _key(row)

    async def keys(
        self, tenant_id: str | None, *, after: tuple[datetime, str] | None = None, limit: int | None = None
    ) -> list[ApiKey]:
        """Oldest first (by creation time, then id): those after `after`, at most `limit`."""
        k = tables.api_keys.c
        query = select(tables.api_keys).order_by(k.created_at, k.id).limit(limit)
        if tenant_id is not None:
            query = query.where(k.tenant_id == tenant_id)
        if after is not None:
            query = query.where(tuple_(k.created_at, k.id) > tuple_(literal(after[0]), literal(after[1])))
        async with self._engine.connect() as conn:
            return [_key(row) for row in await conn.execute(query)]

    async def key(self, key_id: str) -> ApiKey | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(tables.api_keys).where(tables.api_keys.c.id == key_id))).first()
        return None if row is None else _key(row)

    async def revoke(self, key_id: str) -> ApiKey | None:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(tables.api_keys)
                    .where(tables.api_keys.c.id == key_id)
                    .values(revoked_at=func.coalesce(tables.api_keys.c.revoked_at, func.now()))
                    .returning(tables.api_keys)
                )
            ).first()
        return None if row is None else _key(row)


def _key(row: Any) -> ApiKey:
    return ApiKey(row.id, row.tenant_id, row.role, row.name, row.created_at, row.expires_at, row.revoked_at)


def _tenant(row: Any) -> Tenant:
    return Tenant(
        id=row.id, name=row.name, kind=row.kind, timezone=row.timezone, facilities=list(row.facilities)
    )
