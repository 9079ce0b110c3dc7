"""The gateway's public routes: its own (tenants, API keys) and every service route, forwarded.

Consumes: API keys (`Authorization: Bearer`). Produces: tenants and keys in its schema; forwarded
requests carrying a short-lived identity token the services verify.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.adapters.contracts import SettlementContracts
from gateway.adapters.directory import PostgresDirectory
from gateway.domain.access import creatable_roles, may_administer_keys, may_create_tenants, may_revoke
from gateway.domain.keys import PLATFORM_TENANT, ApiKey, new_key, new_key_id
from gateway.domain.routes import match
from gateway.domain.tenants import Tenant, TenantRequest
from gateway.entrypoints.deps import Directory, authenticated, components
from gateway.entrypoints.proxy import BUFFERED_BODY_BYTES, forward, upstream_failure
from gateway.handlers import Caller, KeyResolver
from vr_shared.events.types import DisplayName
from vr_shared.identity import Identity
from vr_shared.kpis import KPI_DIMENSIONS, grant
from vr_shared.pages import DEFAULT_LIMIT, After, Limit, decode_cursor, invalid_cursor, page
from vr_shared.roles import KEY_ROLES, Role
from vr_shared.web import Problem

router = APIRouter()


async def caller(request: Request) -> Caller:
    """Authenticated and within its rate limit, or 401 / 429."""
    address = request.client.host if request.client else "unknown"
    found = await authenticated(components(request), request.headers.get("authorization"), address)
    request.state.role = found.key.role
    return found


Authenticated = Annotated[Caller, Depends(caller)]


def _forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, type_="/problems/forbidden")


# --- tenants ----------------------------------------------------------------------------------------


class TenantResponse(Tenant):
    pass


@router.post(
    "/v1/tenants",
    operation_id="createTenant",
    tags=["Tenants"],
    status_code=201,
    response_model=TenantResponse,
    summary="Create a tenant",
)
async def create_tenant(body: TenantRequest, who: Authenticated, directory: Directory) -> Tenant:
    if not may_create_tenants(who.key.role):
        raise _forbidden("only a platform admin creates tenants")
    if body.id == PLATFORM_TENANT:
        raise Problem(409, "Tenant exists", f"{PLATFORM_TENANT!r} is reserved")
    tenant = Tenant(**body.model_dump())
    await directory.add_tenant(tenant)
    return tenant


class TenantList(BaseModel):
    items: list[TenantResponse]
    next: str | None = Field(description="the cursor of the next page (`?after=`), null on the last")


@router.get(
    "/v1/tenants",
    operation_id="listTenants",
    tags=["Tenants"],
    response_model=TenantList,
    summary="Tenants: all of them for a platform admin, its own for anyone else",
)
async def list_tenants(
    who: Authenticated, directory: Directory, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> dict[str, Any]:
    """By id, a page at a time."""
    position = decode_cursor(after)
    if who.key.role == Role.PLATFORM_ADMIN:
        found = await directory.tenants(after=position, limit=limit + 1)
    else:
        own = await directory.tenant(who.key.tenant_id)
        found = [own] if own is not None and (position is None or own.id > position) else []
    return page(found, limit, lambda t: t.id, lambda t: t)


@router.get(
    "/v1/tenants/{tenant_id}",
    operation_id="getTenant",
    tags=["Tenants"],
    response_model=TenantResponse,
    summary="A tenant",
)
async def get_tenant(tenant_id: str, who: Authenticated, directory: Directory) -> Tenant:
    # A tenant's own keys may read it; anyone else's answer is the same as for a missing tenant.
    tenant = (
        await directory.tenant(tenant_id)
        if who.key.role == Role.PLATFORM_ADMIN or who.key.tenant_id == tenant_id
        else None
    )
    if tenant is None:
        raise Problem(404, "Unknown tenant", f"no tenant {tenant_id!r}", type_="/problems/unknown-tenant")
    return tenant


# --- API keys ---------------------------------------------------------------------------------------


class ApiKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    role: Role
    name: DisplayName
    expires_at: datetime | None = None

    @field_validator("role")
    @classmethod
    def _a_key_role(cls, role: Role) -> Role:
        if role not in KEY_ROLES:
            raise ValueError(f"{role.value!r} is no key's role (one of: {', '.join(sorted(KEY_ROLES))})")
        return role


class ApiKeyResponse(BaseModel):
    id: str
    tenant_id: str
    role: Role
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class NewApiKeyResponse(ApiKeyResponse):
    key: str = Field(description="the secret; shown this once and never again")


class ApiKeyList(BaseModel):
    items: list[ApiKeyResponse]
    next: str | None = Field(description="the cursor of the next page (`?after=`), null on the last")


@router.post(
    "/v1/api-keys",
    operation_id="createApiKey",
    tags=["API keys"],
    status_code=201,
    response_model=NewApiKeyResponse,
    summary="Create an API key",
)
async def create_key(body: ApiKeyRequest, who: Authenticated, directory: Directory) -> dict[str, Any]:
    if body.role not in creatable_roles(who.key.role):
        raise _forbidden(f"role {who.key.role!r} may not create {body.role!r} keys")
    if who.key.role != Role.PLATFORM_ADMIN and body.tenant_id != who.key.tenant_id:
        raise Problem(
            404, "Unknown tenant", f"no tenant {body.tenant_id!r}", type_="/problems/unknown-tenant"
        )
    if body.role == Role.PLATFORM_ADMIN:
        if body.tenant_id != PLATFORM_TENANT:
            raise Problem(422, "Invalid key", f"platform_admin keys belong to tenant {PLATFORM_TENANT!r}")
    elif await directory.tenant(body.tenant_id) is None:
        raise Problem(
            404, "Unknown tenant", f"no tenant {body.tenant_id!r}", type_="/problems/unknown-tenant"
        )
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Problem(422, "Invalid key", "expires_at needs a time zone offset")
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise Problem(422, "Invalid key", "expires_at is in the past")
    secret = new_key()
    key = await directory.add_key(
        new_key_id(), secret, body.tenant_id, body.role, body.name, body.expires_at, who.key.id
    )
    return {**key.as_json(), "key": secret}


@router.get(
    "/v1/api-keys",
    operation_id="listApiKeys",
    tags=["API keys"],
    response_model=ApiKeyList,
    summary="API keys (never their secrets)",
)
async def list_keys(
    who: Authenticated,
    directory: Directory,
    tenant_id: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> dict[str, Any]:
    """Oldest first, a page at a time."""
    if not may_administer_keys(who.key.role):
        raise _forbidden("only admins list keys")
    scope = tenant_id if who.key.role == Role.PLATFORM_ADMIN else who.key.tenant_id
    found = await directory.keys(scope, after=_key_position(decode_cursor(after)), limit=limit + 1)
    return page(found, limit, lambda k: f"{k.created_at.isoformat()}|{k.id}", ApiKey.as_json)


def _key_position(position: str | None) -> tuple[datetime, str] | None:
    """A key's place in the listing: its creation time and id."""
    if position is None:
        return None
    created, _, key_id = position.partition("|")
    try:
        return datetime.fromisoformat(created), key_id
    except ValueError:
        raise invalid_cursor() from None


@router.delete(
    "/v1/api-keys/{key_id}",
    operation_id="revokeApiKey",
    tags=["API keys"],
    response_model=ApiKeyResponse,
    summary="Revoke an API key",
)
async def revoke_key(
    key_id: str, who: Authenticated, directory: Directory, request: Request
) -> dict[str, Any]:
    if not may_administer_keys(who.key.role):
        raise _forbidden("only admins revoke keys")
    found = await directory.key(key_id)
    if found is None or (who.key.role != Role.PLATFORM_ADMIN and found.tenant_id != who.key.tenant_id):
        raise Problem(404, "Unknown key", f"no key {key_id!r}", type_="/problems/unknown-key")
    if not may_revoke(who.key.role, found.role):
        raise _forbidden("only a platform admin revokes a platform admin key")
    revoked = await directory.revoke(key_id)
    assert revoked is not None
    resolver: KeyResolver = components(request).resolver
    resolver.forget(key_id)
    return revoked.as_json()


# --- everything else: the services ------------------------------------------------------------------


@router.api_route(
    "/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False
)
async def to_service(path: str, request: Request) -> Response:
    route, known = match(request.method, request.url.path)
    if route is None:
        status = 405 if known else 404
        raise Problem(
            status, "Method not allowed" if known else "Not found", f"{request.method} {request.url.path}"
        )
    who = await caller(request)
    if who.key.role not in route.roles:
        raise _forbidden(f"role {who.key.role!r} may not call {route.method} {route.template}")
    request.state.route = route.template
    if who.identity.tenant_kind == "vendor" and route.template in VENDOR_KPI_ROUTES:
        who = await _vendor_view(request, who, path)
    elif (
        who.key.role == Role.PLATFORM_ADMIN
        and route.upstream in TENANT_SCOPED
        and "tenant" in request.query_params
    ):
        who = await _platform_admin_for(request, who, request.query_params["tenant"])
    elif who.key.role == Role.PLATFORM_ADMIN and (route.method, route.template) in CONTRACT_WRITES:
        who = await _platform_admin_for_contract(request, who)
    resolver: KeyResolver = components(request).resolver
    return await forward(
        request,
        route,
        resolver.token(who, route.upstream),
        components(request).upstreams,
        request.app.state.settings.max_body_bytes,
    )


VENDOR_KPI_ROUTES = frozenset(
    {"/v1/kpis/{kpi}/values", "/v1/kpis/{kpi}/rolling", "/v1/kpis/readings", "/v1/feeds"}
)
# Services whose data belongs to one tenant per request (settlement decides a platform admin's access
# itself: it sees every contract).
TENANT_SCOPED = frozenset({"ingest", "kpi-engine"})


CONTRACT_WRITES = frozenset({("POST", "/v1/contracts"), ("PUT", "/v1/contracts/{contract_id}")})


async def _platform_admin_for(request: Request, who: Caller, tenant_id: str) -> Caller:
    """A platform admin acts for the tenant it names (`?tenant=`, docs/security.md)."""
    directory: PostgresDirectory = components(request).directory
    tenant = await directory.tenant(tenant_id)
    if tenant is None:
        raise Problem(404, "Unknown tenant", f"no tenant {tenant_id!r}", type_="/problems/unknown-tenant")
    return _acting_for_tenant(request, who, tenant)


async def _platform_admin_for_contract(request: Request, who: Caller) -> Caller:
    """A platform admin writing a contract speaks for the health system the document names, so
    settlement holds it to that health system's facilities and time zone like the health system itself
    (docs/settlement.md). A document naming no health system goes on as it is; settlement refuses it."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > BUFFERED_BODY_BYTES:
        return who
    try:  # a small body of known length; the proxy forwards the same bytes
        named = orjson.loads(await request.body()).get("health_system")
    except (orjson.JSONDecodeError, AttributeError):
        return who
    directory: PostgresDirectory = components(request).directory
    known = isinstance(named, str) and 0 < len(named) <= 64 and named.isprintable()
    tenant = await directory.tenant(named) if known else None
    if tenant is None or tenant.kind != "health_system":
        return who
    return _acting_for_tenant(request, who, tenant)


def _acting_for_tenant(request: Request, who: Caller, tenant: Tenant) -> Caller:
    """That tenant's facilities, kind and time zone, the admin's own role and key id kept (services log
    who acted)."""
    resolver: KeyResolver = components(request).resolver
    return resolver.acting_for(
        who,
        Identity(
            tenant=tenant.id,
            role=Role.PLATFORM_ADMIN,
            key_id=who.key.id,
            facilities=frozenset(tenant.facilities),
            tenant_kind=tenant.kind,
            timezone=tenant.timezone,
        ),
    )


async def _grants_asked(request: Request, path: str) -> set[str] | None:
    """The KPI grants a vendor's request needs (`kpi` or `kpi[dimension=value]`, vr_shared.kpis); None
    for the feeds listing (every KPI of its contracts); an empty set when the request is malformed (the
    KPI engine then names what is wrong)."""
    if path == "feeds":
        return None
    if not path.startswith("kpis/readings"):
        return _grant_of(path.split("/")[1], request.query_params.get("dimension"))
    try:  # a readings body is small (at most 500 readings); the proxy then forwards the same bytes
        readings = orjson.loads(await request.body())["readings"]
        return set().union(*(_grant_of(str(r["kpi"]), r.get("dimension")) for r in readings))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return set()


def _grant_of(kpi: str, dimension: object) -> set[str]:
    """`ehr` and `system:ehr` name the same dimension value."""
    if dimension is None:
        return {grant(kpi)}
    if not isinstance(dimension, str) or kpi not in KPI_DIMENSIONS:
        return set()
    return {grant(kpi, dimension.rpartition(":")[2])}


async def _vendor_view(request: Request, who: Caller, path: str) -> Caller:
    """A vendor sees a health system's KPIs and feeds (`?tenant=<health system>`) for the facilities of
    the contracts it is party to whose terms use them — asked of settlement, which holds the contracts.
    A contract using one value of a KPI's dimension (`cost_total[category=drugs]`) grants that value
    only, a contract using the total the total only. The signed identity names the grants, so the KPI
    engine refuses anything else; anything else looks like an unknown facility or KPI."""
    health_system = request.query_params.get("tenant")
    directory: PostgresDirectory = components(request).directory
    resolver: KeyResolver = components(request).resolver
    tenant = await directory.tenant(health_system) if health_system else None
    asked = await _grants_asked(request, path)
    facilities: set[str] = set()
    grants: set[str] = set()
    if tenant is not None and tenant.kind == "health_system" and asked != set():
        contracts: SettlementContracts = components(request).contracts
        try:
            mine = await contracts.of(who.key.id, resolver.token(who, "settlement"))
        except httpx.HTTPError as exc:
            raise upstream_failure("settlement", exc, retry_safe=True) from exc  # a GET
        shared = [c for c in mine if c["health_system"] == tenant.id]
        if asked is None:  # the feeds listing: every facility and KPI the contracts use
            facilities = {f for c in shared for f in c["facilities"]}
            grants = {k for c in shared for k in c["kpis"]}
        else:  # every grant asked must be one the vendor's contracts use on a facility
            per_grant = [
                {f for c in shared if g in c["kpis"] for f in c["facilities"]} for g in sorted(asked)
            ]
            facilities, grants = set.intersection(*per_grant), asked
    return resolver.acting_for(
        who,
        Identity(
            tenant=tenant.id if tenant else who.identity.tenant,
            role=Role.OPS,
            key_id=who.key.id,
            facilities=frozenset(facilities),
            tenant_kind="health_system",
            timezone=tenant.timezone if tenant else "UTC",
            kpis=frozenset(grants),
        ),
    )
