"""The platform's roles, one vocabulary for every service (docs/security.md).

A key has one role. `Role.SERVICE` is no key's role: it is what one service calls another as (settlement
reading KPIs), signed with that service's own key, never by the gateway.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"  # every tenant; creates tenants and platform admin keys
    TENANT_ADMIN = "tenant_admin"  # its tenant's keys and contracts
    PIPELINE = "pipeline"  # writes events for its tenant's facilities
    BILLING = "billing"  # reads and finalizes settlements of contracts its tenant is party to
    OPS = "ops"  # reads KPIs and settlements of its tenant
    SERVICE = "service"  # a service calling another (never a key's role)


# Roles an API key can have.
KEY_ROLES = frozenset(Role) - {Role.SERVICE}
# Everyone who reads KPIs, contracts and statements (every key role but pipeline).
READERS = frozenset({Role.PLATFORM_ADMIN, Role.TENANT_ADMIN, Role.BILLING, Role.OPS})
# Who writes contracts and their inputs, and who administers keys.
ADMINS = frozenset({Role.PLATFORM_ADMIN, Role.TENANT_ADMIN})
# Who freezes a statement (and asks for a reconciliation).
FINALIZERS = frozenset({Role.PLATFORM_ADMIN, Role.TENANT_ADMIN, Role.BILLING})
# Who sends events.
WRITERS = frozenset({Role.PLATFORM_ADMIN, Role.PIPELINE})
# Who subscribes its tenant's webhook endpoints (the billing system's own key, or its administrator).
WEBHOOK_OWNERS = frozenset({Role.TENANT_ADMIN, Role.BILLING})
