"""Async SQLAlchemy engine helpers. One engine per service process, opened and disposed in lifespan."""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl
import traceback
from collections.abc import Iterator

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def async_url(url: str) -> str:
    """Accept the common `postgresql://` / `postgres://` spellings and select the asyncpg driver."""
    return "postgresql+asyncpg://" + _address(url)


def plain_url(url: str) -> str:
    """The same database as asyncpg itself takes it (no SQLAlchemy driver suffix)."""
    return "postgresql://" + _address(url)


def _address(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def create_engine(
    url: str, *, schema: str | None = None, pool_size: int = 5, statement_timeout_ms: int = 30_000
) -> AsyncEngine:
    """An engine whose connections use `schema` first on their search path (a service's own tables)."""
    server_settings = {"statement_timeout": str(statement_timeout_ms), "application_name": schema or "vr"}
    if schema is not None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        server_settings["search_path"] = f"{schema},public"
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a database restart must not leave dead connections in the pool
        pool_recycle=1800,
        connect_args={"server_settings": server_settings, "timeout": 5},
        json_serializer=_json_text,  # orjson: JSONB columns are on hot write paths
        json_deserializer=orjson.loads,
    )


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ensure_schema(engine: AsyncEngine, schema: str) -> None:
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    async with engine.begin() as conn:
        await create_schema_if_missing(conn, schema)


async def create_schema_if_missing(conn: AsyncConnection, schema: str) -> None:
    """Created only when missing: a service's own database role owns its schema and has no right to
    create schemas (docs/security.md), and `CREATE SCHEMA IF NOT EXISTS` asks for that right even when
    the schema exists."""
    found = await conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema})
    if found.first() is None:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))


# SQLSTATEs that say the server cannot serve now, not that the statement is wrong: connection exceptions
# (class 08), a server shutting down, crashed or still starting (57P01-57P03), too many connections.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database is away (retry later) rather than a statement it refused —
    a PostgreSQL still starting answers "cannot connect now", which is no reason to dead-letter data."""
    return any(
        isinstance(state := _own_sqlstate(seen), str) and state.startswith(_UNAVAILABLE_STATES)
        for seen in error_chain(exc)
    )


# Two transactions crossed — deadlock detected, serialization failure: the one PostgreSQL broke was rolled
# back whole and can simply run again.
_CONFLICT_STATES = frozenset({"40P01", "40001"})


def transaction_conflict(exc: BaseException) -> bool:
    """Whether PostgreSQL rolled the transaction back for crossing another (run it again)."""
    return sqlstate_of(exc) in _CONFLICT_STATES


def database_away(exc: BaseException) -> bool:
    """Whether the database could not do the work now, though it refused nothing: it is away (a restart,
    a failover, too many connections — `database_unavailable`; a connection refused, reset or timed
    out, or the database's host name not resolving, as the driver met them — `_network_failure`; a
    connection the pool or the driver found closed) or it rolled the transaction back for crossing
    another. The same work, tried again a little later, can succeed. Nothing else is away: a file not
    found or a permission refused is a bug or a configuration error that no retry cures, and a network
    error of anything but the database driver (an HTTP client) says nothing about the database."""
    return (
        database_unavailable(exc)
        or transaction_conflict(exc)
        or any(_connection_lost(seen) for seen in error_chain(exc))
        or _network_failure(exc)
    )


def _connection_lost(error: BaseException) -> bool:
    return (
        isinstance(error, OperationalError)
        or getattr(error, "connection_invalidated", False)  # SQLAlchemy found the connection dead
        # asyncpg's other interface errors are the caller's mistakes (a wrong argument): never retried.
        or (isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error))
    )


# What the network under the driver raises when the database cannot be reached: a connection refused,
# reset or aborted (ConnectionError), none within the connect timeout (TimeoutError), a host name that
# does not resolve now (gaierror: the database's container being replaced), a host or network that
# cannot be reached now (a failover; a plain OSError with its errno), a TLS session cut off.
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror, ssl.SSLEOFError, ssl.SSLZeroReturnError)
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.ENETRESET}
_DRIVER_ERRORS = (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError)
_DRIVER_MODULES = ("asyncpg.", "sqlalchemy.")


def _network_failure(exc: BaseException) -> bool:
    """A network error the database driver met: under one of the driver's errors, or raised out of the
    driver's code — SQLAlchemy passes an error of asyncpg connecting on as it is, unwrapped."""
    under_driver = False
    for seen in error_chain(exc):
        if _is_network_error(seen) and (under_driver or _raised_in_driver(seen)):
            return True
        under_driver = under_driver or isinstance(seen, _DRIVER_ERRORS)
    return False


def _is_network_error(error: BaseException) -> bool:
    # asyncio connecting to a host name of several addresses, every one refused, raises one plain OSError
    # naming them all (no errno).
    if isinstance(error, _NETWORK_ERRORS):
        return True
    if type(error) is not OSError:
        return False
    return error.errno in _UNREACHABLE or (
        error.errno is None and str(error).startswith("Multiple exceptions: ")
    )


def _raised_in_driver(error: BaseException) -> bool:
    """Whether asyncpg's or SQLAlchemy's code is on the error's way up (a connect, a statement)."""
    return any(
        str(frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES)
        for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def sqlstate_of(exc: BaseException) -> str | None:
    """The first SQLSTATE along the error's chain (None: not an error PostgreSQL reported)."""
    return next((state for seen in error_chain(exc) if isinstance(state := _own_sqlstate(seen), str)), None)


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """The error, SQLAlchemy's wrapped driver error, and their causes (at most five)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return
        yield seen
        seen = getattr(seen, "orig", None) or seen.__cause__


def _own_sqlstate(error: BaseException) -> object:
    return getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)


async def database_reachable(engine: AsyncEngine, *, timeout_s: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except (TimeoutError, OperationalError, DBAPIError, OSError):
        return False
