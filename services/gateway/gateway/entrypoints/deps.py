"""What routes are given: the components the lifespan composed, and `Annotated` aliases for them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway import metrics
from gateway.adapters.directory import PostgresDirectory
from gateway.bootstrap import Components
from gateway.handlers import Caller
from vr_shared.web import Problem


def components(request: Request) -> Components:
    composed: Components = request.app.state.components
    return composed


def _directory(request: Request) -> PostgresDirectory:
    return components(request).directory


Directory = Annotated[PostgresDirectory, Depends(_directory)]


async def authenticated(composed: Components, authorization: str | None, address: str) -> Caller:
    """The caller of a key, within its rate limit — or 401 / 429 (failed attempts limited per address)."""
    found = await composed.resolver.resolve(authorization, address)
    wait = await composed.limits.take(found.key.id)
    if wait is not None:
        metrics.RATE_LIMITED.labels(found.key.role).inc()
        raise Problem(
            429,
            "Too many requests",
            f"this key's rate limit is exceeded; retry in {wait} s",
            type_="/problems/rate-limited",
            headers={"Retry-After": str(wait)},
        )
    return found
