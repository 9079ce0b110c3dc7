from __future__ import annotations

import time

import jwt
import pytest

from tests.support.identity import IDENTITY_SECRET, token
from vr_shared.identity import IdentityVerifier, InvalidIdentity

VERIFIER = IdentityVerifier(IDENTITY_SECRET, max_ttl_seconds=300)


def test_valid_token_carries_tenant_role_key_and_facilities() -> None:
    identity = VERIFIER.verify(token(role="billing"))
    assert identity.tenant == "mission-health"
    assert identity.role == "billing"
    assert identity.key_id == "key-test"
    assert identity.facilities == {"asheville-main", "mission-west"}


@pytest.mark.parametrize(
    "bad", [None, "", "not-a-jwt", token(secret="another-secret-of-the-same-length-0123456789")]
)
def test_missing_malformed_or_forged_tokens_are_refused(bad: str | None) -> None:
    with pytest.raises(InvalidIdentity):
        VERIFIER.verify(bad)


def test_expired_token_is_refused() -> None:
    with pytest.raises(InvalidIdentity, match="expired"):
        VERIFIER.verify(token(ttl_seconds=30, now=time.time() - 120))


def test_long_lived_token_is_refused_even_when_signed() -> None:
    with pytest.raises(InvalidIdentity, match="lifetime"):
        VERIFIER.verify(token(ttl_seconds=3600))


def test_tampered_claims_break_the_signature() -> None:
    genuine = token()
    header, _, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["tenant"] = "another-tenant"
    forged_payload = jwt.encode(claims, "x" * 40, algorithm="HS256").split(".")[1]
    with pytest.raises(InvalidIdentity):
        VERIFIER.verify(".".join([header, forged_payload, signature]))


def test_unknown_role_is_refused() -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})
    claims["role"] = "superuser"
    with pytest.raises(InvalidIdentity, match="role"):
        VERIFIER.verify(jwt.encode(claims, IDENTITY_SECRET, algorithm="HS256"))
