"""Schema migrations (Alembic), run at start-up by whichever instance gets there first."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from vr_shared.migrations import upgrade

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"  # shipped inside the package


async def migrate(engine: AsyncEngine, schema: str) -> None:
    await upgrade(engine, schema, MIGRATIONS)
