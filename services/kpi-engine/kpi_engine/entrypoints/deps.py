"""What routes are given, as `Annotated` aliases: the components the lifespan composed, and the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from kpi_engine.adapters.queries import PostgresKpiReader
from kpi_engine.bootstrap import Components


def components(request: Request) -> Components:
    composed: Components = request.app.state.components
    return composed


def _reader(request: Request) -> PostgresKpiReader:
    return components(request).reader


Reader = Annotated[PostgresKpiReader, Depends(_reader)]


Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def _now(request: Request) -> datetime:
    """The app's clock (create_app's `clock`): what "now" is for open buckets, maturation and recent
    activity — one reading per request, so every value of an answer agrees on it."""
    clock: Clock = request.app.state.clock
    return clock()


Now = Annotated[datetime, Depends(_now)]
