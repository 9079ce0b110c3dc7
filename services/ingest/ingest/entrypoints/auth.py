"""The caller's identity, from the gateway-signed token (docs/security.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ingest import metrics
from ingest.domain.intake import WRITER_ROLES
from vr_shared.auth import caller_with_role
from vr_shared.identity import Identity


def _count_refusal(reason: str) -> None:
    metrics.REQUEST_REJECTIONS.labels(reason).inc()


EventWriter = Annotated[Identity, Depends(caller_with_role(WRITER_ROLES, _count_refusal))]
