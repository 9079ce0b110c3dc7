"""Alembic environment: run with a connection and a schema handed in by `gateway.adapters.migrate`."""

from __future__ import annotations

from alembic import context

from gateway.adapters.tables import metadata

connection = context.config.attributes["connection"]
schema = context.config.attributes["schema"]

# Tables are created unqualified: the connection's search path puts the engine's schema first.
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=schema,
    include_schemas=False,
)
with context.begin_transaction():
    context.run_migrations()
