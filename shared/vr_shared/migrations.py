"""Running a service's Alembic migrations at start-up, in the service's own schema.

Each service ships its migrations inside its package (the image has no source tree) and calls
`upgrade` from its lifespan; instances starting together migrate one at a time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from vr_shared.db import create_schema_if_missing


def alembic_config(connection: Connection, schema: str, script_location: Path) -> Config:
    """The service's `migrations/env.py` reads the connection and schema from these attributes."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


async def upgrade(engine: AsyncEngine, schema: str, script_location: Path) -> None:
    async with engine.begin() as conn:
        # One schema, one migrator at a time: the lock is per schema, held until the transaction ends.
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"migrate:{schema}"}
        )
        await create_schema_if_missing(conn, schema)
        await conn.run_sync(
            lambda sync: command.upgrade(alembic_config(sync, schema, script_location), "head")
        )
