"""Secrets a service refuses to start without (docs/security.md: no default secret works).

A secret must be long, carry enough entropy and must not be a placeholder or a value this repository
has ever published. The check runs while settings are built, so a service with a bad secret exits
before it opens a port, naming the setting at fault (never its value).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AfterValidator, SecretStr

MIN_SECRET_LENGTH = 32
# Shannon entropy of the characters, in bits per character: random base64 has ≈ 5.5-6; "aaaa…" has 0 and
# a repeated short word ≈ 2. 3.5 refuses typed phrases and repetitions, never a generated secret.
MIN_BITS_PER_CHARACTER = 3.5
PLACEHOLDER_WORDS = (
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "example",
    "replace-me",
    "not-secret",
)
# Values this repository's deployment files once carried as defaults: public, so never accepted.
PUBLISHED_SECRETS = frozenset(
    {
        "compose-identity-secret-change-me-0123456789",
        "compose-pseudonym-key-change-me-0123456789ab",
        "vrk_compose-admin-key-change-me-0123456789abcdef",
        "vr-local-only",
    }
)


class WeakSecret(ValueError):
    """The value is missing, short, low in entropy or a known placeholder; the message says which."""


def bits_per_character(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def check_secret(value: str) -> str:
    """The value, or WeakSecret naming why it is refused."""
    lowered = value.lower()
    if value in PUBLISHED_SECRETS or any(word in lowered for word in PLACEHOLDER_WORDS):
        raise WeakSecret("is a placeholder or a published default; generate a random value")
    if len(value) < MIN_SECRET_LENGTH:
        raise WeakSecret(f"is shorter than {MIN_SECRET_LENGTH} characters")
    if bits_per_character(value) < MIN_BITS_PER_CHARACTER:
        raise WeakSecret("has too little entropy (repeated or typed text); generate a random value")
    return value


def _checked(secret: SecretStr) -> SecretStr:
    check_secret(secret.get_secret_value())
    return secret


# A setting holding a secret: refused at start-up unless it is a strong one.
StrongSecret = Annotated[SecretStr, AfterValidator(_checked)]


def _pem(text: str) -> bytes:
    # One-line forms (environment files, `.env`) write the PEM's newlines as the two characters `\n`.
    return text.strip().replace("\\n", "\n").encode()


def load_private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it)."""
    try:
        key = serialization.load_pem_private_key(_pem(text), password=None)
    except (ValueError, TypeError) as exc:
        raise WeakSecret("is not a PEM private key (openssl genpkey -algorithm ed25519)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise WeakSecret("is not an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (`openssl pkey -in private.pem -pubout`)."""
    try:
        key = serialization.load_pem_public_key(_pem(text))
    except (ValueError, TypeError) as exc:
        raise WeakSecret("is not a PEM public key (openssl pkey -in private.pem -pubout)") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise WeakSecret("is not an Ed25519 public key")
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def new_key_pair() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh Ed25519 key: local stacks and tests."""
    key = Ed25519PrivateKey.generate()
    return private_pem(key), public_pem(key)


def _private_key_checked(secret: SecretStr) -> SecretStr:
    load_private_key(secret.get_secret_value())
    return secret


def _public_key_checked(text: str) -> str:
    load_public_key(text)
    return text


# Settings holding keys: a service refuses to start unless they parse as Ed25519 keys.
PrivateKeyPem = Annotated[SecretStr, AfterValidator(_private_key_checked)]
PublicKeyPem = Annotated[str, AfterValidator(_public_key_checked)]
