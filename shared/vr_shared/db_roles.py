"""One database role per service, with rights on its own schema only (docs/security.md).

Run once per deployment with the database owner's URL, before the services: it creates each service's
role and schema (the role owns the schema and everything in it; nobody else is granted anything); the
services then connect as their own role. Run again, it changes nothing but the passwords, and hands any
object made before roles existed to the service's role. `make up` calls `provision`; compose and
Kubernetes run `python -m vr_shared.db_roles` (deploy/README.md) with `DATABASE_URL` (the owner) and
`VR_DB_PASSWORD_GATEWAY`, `VR_DB_PASSWORD_KPI_ENGINE`, `VR_DB_PASSWORD_SETTLEMENT`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from vr_shared.secrets import WeakSecret, check_secret


@dataclass(frozen=True, slots=True)
class ServiceRole:
    service: str
    role: str
    schema: str


SERVICE_ROLES = (
    ServiceRole("gateway", "vr_gateway", "gateway"),
    ServiceRole("kpi-engine", "vr_kpi_engine", "kpi"),
    ServiceRole("settlement", "vr_settlement", "settlement"),
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def role_statements(role: ServiceRole, password: str) -> list[str]:
    """The role (login, no other right), its schema owned by it, and every object already in the schema
    handed to it."""
    name, schema = f'"{role.role}"', f'"{role.schema}"'
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role.role)}) "
        f"THEN CREATE ROLE {name}; END IF; END $$",
        f"ALTER ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {_literal(password)}",
        f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {name}",
        f"ALTER SCHEMA {schema} OWNER TO {name}",
        f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC",
        # Tables, views and free-standing sequences made before the role existed (a sequence owned by a
        # column follows its table).
        "DO $$ DECLARE r record; BEGIN FOR r IN "
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = {_literal(role.schema)} AND (c.relkind IN ('r', 'p', 'v', 'm') OR "
        "(c.relkind = 'S' AND NOT EXISTS "
        "(SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'a'))) "
        "LOOP EXECUTE format('ALTER %s %I.%I OWNER TO %I', CASE r.relkind WHEN 'S' THEN 'SEQUENCE' "
        "WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, "
        f"{_literal(role.schema)}, r.relname, {_literal(role.role)}); END LOOP; END $$",
    ]


def url_as(admin_url: str, role: str, password: str) -> str:
    """The admin URL with another user and password (same host, port and database)."""
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(role)}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def provision(admin_url: str, passwords: dict[str, str]) -> dict[str, str]:
    """Each service's `DATABASE_URL`, after its role and schema exist."""
    connection = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for role in SERVICE_ROLES:
            async with connection.transaction():
                for statement in role_statements(role, passwords[role.service]):
                    await connection.execute(statement)
    finally:
        await connection.close()
    return {r.service: url_as(admin_url, r.role, passwords[r.service]) for r in SERVICE_ROLES}


def password_variable(service: str) -> str:
    return "VR_DB_PASSWORD_" + service.upper().replace("-", "_")


def main() -> int:
    admin_url = os.environ.get("DATABASE_URL", "")
    passwords: dict[str, str] = {}
    for role in SERVICE_ROLES:
        variable = password_variable(role.service)
        try:
            passwords[role.service] = check_secret(os.environ.get(variable, ""))
        except WeakSecret as exc:
            print(f"refusing to create roles: {variable} {exc}", file=sys.stderr)
            return 2
    if not admin_url:
        print("refusing to create roles: DATABASE_URL (the database owner's) is not set", file=sys.stderr)
        return 2
    for service in asyncio.run(provision(admin_url, passwords)):
        print(f"role and schema of {service}: ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
