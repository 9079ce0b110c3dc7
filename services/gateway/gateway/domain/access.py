"""Who may do what at the gateway itself (docs/security.md): tenants, API keys, and which roles may
ever call each service route (gateway.domain.routes lists the routes with these sets). The services
then decide what the caller may see of its tenant's data."""

from __future__ import annotations

from vr_shared.roles import ADMINS, KEY_ROLES, Role


def creatable_roles(creator_role: str) -> frozenset[Role]:
    """A platform admin creates any key; a tenant admin any key of its tenant but platform_admin."""
    if creator_role == Role.PLATFORM_ADMIN:
        return KEY_ROLES
    if creator_role == Role.TENANT_ADMIN:
        return KEY_ROLES - {Role.PLATFORM_ADMIN}
    return frozenset()


def may_create_tenants(role: str) -> bool:
    return role == Role.PLATFORM_ADMIN


def may_administer_keys(role: str) -> bool:
    """List and revoke keys (a tenant admin: its tenant's, never a platform admin's)."""
    return role in ADMINS


def may_revoke(role: str, key_role: str) -> bool:
    return role == Role.PLATFORM_ADMIN or key_role != Role.PLATFORM_ADMIN
