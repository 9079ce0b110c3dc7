"""Keyed pseudonyms for patient and encounter identifiers (SPEC §4).

Each tenant has its own HMAC-SHA-256 key, derived from one master secret, so the same hospital
identifier gives unrelated pseudonyms in two tenants and a leaked pseudonym table of one tenant says
nothing about another. Within a tenant the mapping is stable, which is what lets the KPI engine join a
patient's stays across facilities without ever seeing the medical record number.
"""

from __future__ import annotations

import hashlib
import hmac

from vr_shared.events import PSEUDONYMISED_FIELDS, Event

PREFIX = "ps1-"  # versioned: a change of scheme must not collide with existing pseudonyms


class Pseudonymiser:
    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key
        self._tenant_keys: dict[str, bytes] = {}

    def tenant_key(self, tenant: str) -> bytes:
        key = self._tenant_keys.get(tenant)
        if key is None:
            key = hmac.new(self._master_key, b"vr-pseudonym-key-v1\x00" + tenant.encode(), hashlib.sha256).digest()
            self._tenant_keys[tenant] = key
        return key

    def pseudonym(self, tenant: str, field: str, raw: str) -> str:
        # The field name is part of the message so that an encounter and a patient that happen to share
        # a raw identifier do not share a pseudonym.
        digest = hmac.new(self.tenant_key(tenant), f"{field}\x00{raw}".encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest

    def pseudonymise(self, tenant: str, event: Event) -> Event:
        replaced = {
            name: self.pseudonym(tenant, name, value)
            for name in PSEUDONYMISED_FIELDS
            if isinstance(value := getattr(event.data, name, None), str)
        }
        if not replaced:
            return event
        return event.model_copy(update={"data": event.data.model_copy(update=replaced)})
