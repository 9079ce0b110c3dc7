"""One database role per service, with rights on its own schema only (docs/security.md): a service's
role cannot read another service's tables, create a schema or a role, and runs its own migrations."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from kpi_engine.adapters.migrate import migrate as migrate_engine
from settlement.adapters.migrate import migrate as migrate_settlement
from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine
from vr_shared.db_roles import SERVICE_ROLES, provision


async def test_each_service_role_owns_its_schema_and_nothing_else(infrastructure: Infrastructure) -> None:
    passwords = {role.service: secrets.token_urlsafe(24) for role in SERVICE_ROLES}
    urls = await provision(infrastructure.database_url, passwords)
    assert await provision(infrastructure.database_url, passwords) == urls  # again: nothing changes
    engine_db = create_engine(urls["kpi-engine"], schema="kpi")
    settlement_db = create_engine(urls["settlement"], schema="settlement")
    try:  # each service migrates its own schema as its own role
        await migrate_engine(engine_db, "kpi")
        await migrate_settlement(settlement_db, "settlement")
    finally:
        await engine_db.dispose()
        await settlement_db.dispose()
    as_engine = await asyncpg.connect(urls["kpi-engine"])
    try:
        assert await as_engine.fetchval("SELECT count(*) FROM kpi.feed_declarations") >= 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_engine.fetchval("SELECT count(*) FROM settlement.final_statements")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_engine.execute("CREATE TABLE settlement.stolen (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_engine.execute("CREATE SCHEMA elsewhere")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_engine.execute("CREATE ROLE intruder")
    finally:
        await as_engine.close()
    as_gateway = await asyncpg.connect(urls["gateway"])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_gateway.fetchval("SELECT count(*) FROM kpi.feed_declarations")
    finally:
        await as_gateway.close()
    # A wrong password is refused (the local test database may trust loopback: then this says nothing).
    admin = await asyncpg.connect(infrastructure.database_url)
    try:
        trusting = await admin.fetchval(
            "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust' AND 'all' = ANY(user_name)"
        )
    finally:
        await admin.close()
    if not trusting:
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(urls["gateway"].replace(passwords["gateway"], "wrong"))
