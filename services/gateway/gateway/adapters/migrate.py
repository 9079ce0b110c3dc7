"""Schema migrations (Alembic), run at start-up by whichever engine instance gets there first."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"  # shipped inside the package
_LOCK = 0x6777_6D69_6772  # "gwmigr": instances starting together migrate one at a time


def alembic_config(connection: Connection, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


async def migrate(engine: AsyncEngine, schema: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync, schema), "head"))
