"""What routes are given, as `Annotated` aliases: the components the lifespan composed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest.bootstrap import Components
from ingest.domain.intake import BodyLimits
from ingest.handlers import Intake


def components(request: Request) -> Components:
    composed: Components = request.app.state.components
    return composed


def _intake(request: Request) -> Intake:
    return components(request).intake


def _limits(request: Request) -> BodyLimits:
    return components(request).body_limits


def _retry_after(request: Request) -> str:
    return str(components(request).retry_after_seconds)


IntakeService = Annotated[Intake, Depends(_intake)]
Limits = Annotated[BodyLimits, Depends(_limits)]
RetryAfter = Annotated[str, Depends(_retry_after)]
