from __future__ import annotations

import hashlib
import hmac
import time

import jwt
import pytest

from tests.support.identity import (
    GATEWAY_PRIVATE_KEY,
    GATEWAY_PUBLIC_KEY,
    SETTLEMENT_PRIVATE_KEY,
    SETTLEMENT_PUBLIC_KEY,
    token,
)
from vr_shared.identity import GATEWAY, Identity, IdentitySigner, IdentityVerifier, InvalidIdentity, issuer
from vr_shared.roles import Role
from vr_shared.secrets import load_private_key, new_key_pair

VERIFIER = IdentityVerifier({GATEWAY: GATEWAY_PUBLIC_KEY}, "vr-ingest", max_ttl_seconds=300)
ENGINE = IdentityVerifier(
    {GATEWAY: GATEWAY_PUBLIC_KEY, issuer("settlement"): SETTLEMENT_PUBLIC_KEY}, "vr-kpi-engine"
)
OLD_SHARED_SECRET = "compose-identity-secret-change-me-0123456789"


def test_valid_token_carries_tenant_role_key_and_facilities() -> None:
    identity = VERIFIER.verify(token(role="billing", service="ingest"))
    assert identity.tenant == "mission-health"
    assert identity.role == Role.BILLING
    assert identity.key_id == "key-test"
    assert identity.facilities == {"asheville-main", "mission-west"}


@pytest.mark.parametrize(
    "bad", [None, "", "not-a-jwt", token(private_key=new_key_pair()[0], service="ingest")]
)
def test_missing_malformed_or_forged_tokens_are_refused(bad: str | None) -> None:
    with pytest.raises(InvalidIdentity):
        VERIFIER.verify(bad)


def test_a_token_for_another_service_is_refused() -> None:
    with pytest.raises(InvalidIdentity, match="Audience"):
        VERIFIER.verify(token(service="settlement"))


def test_an_hs256_token_signed_with_the_old_shared_secret_is_refused() -> None:
    claims = jwt.decode(token(service="ingest"), options={"verify_signature": False})
    old = jwt.encode(claims, OLD_SHARED_SECRET, algorithm="HS256")
    with pytest.raises(InvalidIdentity, match="alg value is not allowed"):
        VERIFIER.verify(old)


def test_an_hs256_token_keyed_with_the_public_key_is_refused() -> None:
    """The algorithm-confusion attack: the public key is known, so it must never serve as an HMAC key."""
    claims = jwt.decode(token(service="ingest"), options={"verify_signature": False})
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()
    signature = hmac.new(GATEWAY_PUBLIC_KEY.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    forged = f"{header}.{payload}.{jwt.utils.base64url_encode(signature.digest()).decode()}"
    with pytest.raises(InvalidIdentity):
        VERIFIER.verify(forged)


def test_expired_token_is_refused() -> None:
    with pytest.raises(InvalidIdentity, match="expired"):
        VERIFIER.verify(token(ttl_seconds=30, now=time.time() - 120, service="ingest"))


def test_long_lived_token_is_refused_even_when_signed() -> None:
    with pytest.raises(InvalidIdentity, match="lifetime"):
        VERIFIER.verify(token(ttl_seconds=3600, service="ingest"))


def test_tampered_claims_break_the_signature() -> None:
    genuine = token(service="ingest")
    header, _, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["tenant"] = "another-tenant"
    forged_payload = jwt.encode(claims, new_key_pair()[0], algorithm="EdDSA").split(".")[1]
    with pytest.raises(InvalidIdentity):
        VERIFIER.verify(".".join([header, forged_payload, signature]))


def test_unknown_role_is_refused() -> None:
    claims = jwt.decode(token(service="ingest"), options={"verify_signature": False})
    claims["role"] = "superuser"
    with pytest.raises(InvalidIdentity, match="role"):
        VERIFIER.verify(jwt.encode(claims, load_private_key(GATEWAY_PRIVATE_KEY), algorithm="EdDSA"))


def test_settlement_signs_as_itself_in_role_service_only() -> None:
    settlement = IdentitySigner(SETTLEMENT_PRIVATE_KEY, issuer=issuer("settlement"))
    scoped = Identity(
        tenant="mission-health", role=Role.SERVICE, key_id="settlement", kpis=frozenset({"cpoe_rate"})
    )
    identity = ENGINE.verify(settlement.sign(scoped, "vr-kpi-engine"))
    assert (identity.role, identity.kpis) == (Role.SERVICE, frozenset({"cpoe_rate"}))
    # Settlement's key passing as the gateway's: refused (the signature is checked by the issuer named).
    with pytest.raises(InvalidIdentity):
        ENGINE.verify(token(role=Role.SERVICE, private_key=SETTLEMENT_PRIVATE_KEY, service="kpi-engine"))
    # The gateway never signs role service; settlement never signs a key's role.
    with pytest.raises(InvalidIdentity, match="role"):
        ENGINE.verify(token(role=Role.SERVICE, service="kpi-engine"))
    with pytest.raises(InvalidIdentity, match="role"):
        ENGINE.verify(settlement.sign(Identity(tenant="t", role=Role.OPS, key_id="k"), "vr-kpi-engine"))
    # Ingest does not trust settlement at all.
    with pytest.raises(InvalidIdentity, match="issuer"):
        VERIFIER.verify(settlement.sign(scoped, "vr-ingest"))
