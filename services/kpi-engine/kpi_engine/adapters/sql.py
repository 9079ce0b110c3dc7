"""Rows as arrays: how the recorder passes a batch's thousands of keys to PostgreSQL in one parameter per
column, and joins against them instead of writing long IN lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, and_, func, literal
from sqlalchemy.dialects.postgresql import ARRAY

from kpi_engine.domain.effects import EventKey


def columns_of(columns: dict[str, str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows as one array per column: one parameter each whatever the number of rows."""
    return {name: [row[i] for row in rows] for i, name in enumerate(columns)}


def unnest(columns: dict[str, str]) -> str:
    """SQL text for those arrays as a table `r` (bind parameters named after the columns)."""
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns.items())
    return f"unnest({arrays}) AS r({', '.join(columns)})"


def as_table(alias: str, columns: dict[str, Any], rows: Sequence[Sequence[Any]]) -> Any:
    """Rows as a SQLAlchemy table, `unnest` of one typed array per column."""
    arrays = [literal([row[i] for row in rows], ARRAY(kind)) for i, kind in enumerate(columns.values())]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=alias)


KEY_COLUMNS = {"tenant": Text, "source": Text, "id": Text}


def event_keys(keys: Sequence[EventKey]) -> Any:
    return as_table("k", KEY_COLUMNS, keys)


def on_event_key(table: Any, keys: Any) -> Any:
    return and_(table.c.tenant == keys.c.tenant, table.c.source == keys.c.source, table.c.id == keys.c.id)
