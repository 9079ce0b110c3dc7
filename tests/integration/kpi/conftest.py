"""A migrated KPI schema of its own per test, on the session's real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables as t
from kpi_engine.adapters.migrate import migrate
from kpi_engine.domain.cells import Cell, CellKey
from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine


@pytest.fixture
async def kpi_schema(infrastructure: Infrastructure) -> AsyncIterator[tuple[AsyncEngine, str]]:
    schema = f"kpi_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(infrastructure.database_url, schema=schema)
    await migrate(engine, schema)
    try:
        yield engine, schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def stored_cells(engine: AsyncEngine, tenant: str) -> dict[CellKey, Cell]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(t.cells).where(t.cells.c.tenant == tenant))
        return {
            CellKey(r.kpi, r.facility, r.day, r.dimension): Cell(r.numerator, r.denominator, r.sample_size)
            for r in rows
        }
