"""What routes are given: the components the lifespan composed, and `Annotated` aliases for them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.adapters.directory import PostgresDirectory
from gateway.bootstrap import Components


def components(request: Request) -> Components:
    composed: Components = request.app.state.components
    return composed


def _directory(request: Request) -> PostgresDirectory:
    return components(request).directory


Directory = Annotated[PostgresDirectory, Depends(_directory)]
