"""What routes are given, as `Annotated` aliases: the components the lifespan composed."""

from __future__ import annotations

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
