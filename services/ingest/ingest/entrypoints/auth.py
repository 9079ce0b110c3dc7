"""The caller's identity, from the gateway-signed token (SPEC §7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest import metrics
from ingest.domain.intake import WRITER_ROLES
from vr_shared.identity import HEADER, Identity, IdentityVerifier, InvalidIdentity
from vr_shared.web import Problem


async def _verifier(request: Request) -> IdentityVerifier:
    verifier: IdentityVerifier = request.app.state.components.identity_verifier
    return verifier


async def event_writer(
    request: Request, verifier: Annotated[IdentityVerifier, Depends(_verifier)]
) -> Identity:
    try:
        identity = verifier.verify(request.headers.get(HEADER))
    except InvalidIdentity as exc:
        metrics.REQUEST_REJECTIONS.labels("unauthenticated").inc()
        raise Problem(401, "Unauthenticated", str(exc), type_="/problems/unauthenticated") from exc
    if identity.role not in WRITER_ROLES:
        metrics.REQUEST_REJECTIONS.labels("forbidden").inc()
        raise Problem(
            403, "Forbidden", f"role {identity.role!r} may not write events", type_="/problems/forbidden"
        )
    return identity


EventWriter = Annotated[Identity, Depends(event_writer)]
