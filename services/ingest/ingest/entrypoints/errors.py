"""Ingest's error map: domain exceptions → problem+json status and title."""

from __future__ import annotations

from collections.abc import Mapping

from ingest.adapters.publisher import BrokerUnavailable
from vr_shared.web import ErrorMapping


def error_map(retry_after_seconds: int) -> Mapping[type[Exception], ErrorMapping]:
    return {
        BrokerUnavailable: ErrorMapping(
            503, "Event broker unavailable", headers={"Retry-After": str(retry_after_seconds)}
        ),
    }
