"""The FastAPI dependency every service uses to know its caller: the gateway-signed identity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from fastapi import Request

from vr_shared.identity import HEADER, Identity, IdentityVerifier, InvalidIdentity
from vr_shared.web import Problem

RefusalHook = Callable[[str], None]


def caller_with_role(
    roles: Collection[str], on_refused: RefusalHook | None = None
) -> Callable[[Request], Awaitable[Identity]]:
    """401 without a valid identity, 403 for a role not in `roles`.

    The verifier is the application's `app.state.identity_verifier`, set in its factory.
    """
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Identity:
        verifier: IdentityVerifier = request.app.state.identity_verifier
        try:
            identity = verifier.verify(request.headers.get(HEADER))
        except InvalidIdentity as exc:
            if on_refused:
                on_refused("unauthenticated")
            raise Problem(401, "Unauthenticated", str(exc), type_="/problems/unauthenticated") from exc
        if identity.role not in allowed:
            if on_refused:
                on_refused("forbidden")
            raise Problem(
                403, "Forbidden", f"role {identity.role!r} may not do this", type_="/problems/forbidden"
            )
        return identity

    return dependency
