"""A database that is away (starting, shutting down, unreachable) is told apart from a statement it
refuses: the first is retried, only the second can make an event a dead letter. A network error says
"away" only as the database driver met it, and only a network error does: a missing file or a refused
permission is never retried."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.ports import free_port
from vr_shared.db import database_away, database_unavailable, sqlstate_of, transaction_conflict


class _AdaptedError(Exception):
    """How SQLAlchemy's asyncpg dialect carries the driver's error: a `sqlstate`, the cause behind it."""

    def __init__(self, cause: asyncpg.PostgresError) -> None:
        super().__init__(str(cause))
        self.sqlstate = cause.sqlstate
        self.__cause__ = cause


@pytest.mark.parametrize(
    ("error", "away"),
    [
        (asyncpg.exceptions.CannotConnectNowError("not yet accepting connections"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),
        (asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"), False),
    ],
)
def test_unavailable_is_recognised_bare_and_wrapped(error: asyncpg.PostgresError, away: bool) -> None:
    assert database_unavailable(error) is away
    assert database_unavailable(DBAPIError("statement", {}, _AdaptedError(error))) is away


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), "40P01"),
        (asyncpg.exceptions.SerializationError("could not serialize access"), "40001"),
        (asyncpg.exceptions.CheckViolationError("violates check constraint"), "23514"),
    ],
)
def test_the_sqlstate_is_read_bare_and_wrapped(error: asyncpg.PostgresError, state: str) -> None:
    """What the KPI engine retries (a deadlock, a serialization failure) is told by it, under wrapping."""
    assert sqlstate_of(error) == state
    assert sqlstate_of(DBAPIError("statement", {}, _AdaptedError(error))) == state
    assert sqlstate_of(ValueError("not from PostgreSQL")) is None


@pytest.mark.parametrize(
    ("error", "crossed"),
    [
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), True),
        (asyncpg.exceptions.SerializationError("could not serialize access"), True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),
        (asyncpg.exceptions.CannotConnectNowError("not yet accepting connections"), False),
    ],
)
def test_a_transaction_conflict_is_recognised_bare_and_wrapped(
    error: asyncpg.PostgresError, crossed: bool
) -> None:
    assert transaction_conflict(error) is crossed
    assert transaction_conflict(DBAPIError("statement", {}, _AdaptedError(error))) is crossed


# --- a network error is "away" only as the database driver met it ----------------------------------------


def _engine_connecting_with(error: BaseException) -> AsyncEngine:
    """A real SQLAlchemy engine whose asyncpg connect raises `error` (SQLAlchemy passes it on as it is)."""

    async def connect() -> asyncpg.Connection:
        raise error

    return create_async_engine("postgresql+asyncpg://", async_creator=connect)


async def _raised_connecting(error: BaseException) -> BaseException:
    engine = _engine_connecting_with(error)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return exc
    finally:
        await engine.dispose()
    raise AssertionError("the connect did not fail")


def _under_the_driver(error: BaseException) -> DBAPIError:
    """How SQLAlchemy wraps a driver error whose cause is the network's."""
    lost = asyncpg.InterfaceError("the connection broke")
    lost.__cause__ = error
    return DBAPIError("SELECT 1", {}, lost)


# Made afresh for each test: an error raised once keeps the traceback of where it was raised.
NETWORK_ERRORS: list[Callable[[], OSError]] = [
    lambda: ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    lambda: ConnectionResetError(104, "Connection reset by peer"),
    lambda: TimeoutError(),  # asyncpg's connect timeout
    lambda: socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    # asyncio connecting to a name of two addresses, both refused:
    lambda: OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432), [Errno 111] …"),
    # a failover: the database's host or network not reachable for a while
    lambda: OSError(errno.EHOSTUNREACH, "No route to host"),
    lambda: OSError(errno.ENETUNREACH, "Network is unreachable"),
    lambda: ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
]
NOT_NETWORK_ERRORS: list[Callable[[], OSError]] = [
    lambda: FileNotFoundError(2, "No such file or directory", "/run/secrets/db-password"),
    lambda: PermissionError(13, "Permission denied", "/etc/vr/ca.pem"),
    lambda: IsADirectoryError(21, "Is a directory", "/etc/vr"),
    lambda: OSError(22, "Invalid argument"),
]


def _name(make: Callable[[], OSError]) -> str:
    error = make()
    return f"{type(error).__name__}-{error.errno}"


@pytest.mark.parametrize("make", NETWORK_ERRORS, ids=_name)
async def test_a_network_error_of_the_driver_connecting_is_away(make: Callable[[], OSError]) -> None:
    error = make()
    raised = await _raised_connecting(error)
    assert raised is error  # unwrapped: only where it came from tells it is the database's
    assert database_away(raised)


@pytest.mark.parametrize("make", NETWORK_ERRORS, ids=_name)
def test_a_network_error_under_a_driver_error_is_away(make: Callable[[], OSError]) -> None:
    assert database_away(_under_the_driver(make()))


@pytest.mark.parametrize("make", NETWORK_ERRORS, ids=_name)
def test_a_network_error_of_anything_but_the_driver_is_not_away(make: Callable[[], OSError]) -> None:
    assert not database_away(make())
    try:
        raise make()
    except OSError as raised:  # raised here, not in the driver
        assert not database_away(raised)


@pytest.mark.parametrize("make", NOT_NETWORK_ERRORS, ids=_name)
async def test_any_other_os_error_is_not_away_even_from_the_driver(make: Callable[[], OSError]) -> None:
    """A missing file or a refused permission is a bug or our configuration: retried, it never passes."""
    assert not database_away(await _raised_connecting(make()))
    assert not database_away(_under_the_driver(make()))
    assert not database_away(make())


async def test_asyncpg_refused_on_a_closed_port_is_away() -> None:
    with pytest.raises(OSError) as raised:
        await asyncpg.connect(f"postgresql://u@127.0.0.1:{free_port()}/x", timeout=5)
    assert database_away(raised.value)


async def test_an_http_client_refused_is_not_the_database_away() -> None:
    """The KPI engine or a webhook host refusing a connection says nothing about the database."""
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.get(f"http://127.0.0.1:{free_port()}/")
    inner: BaseException | None = raised.value
    while inner is not None and not isinstance(inner, ConnectionRefusedError):
        inner = inner.__cause__ or inner.__context__
    assert isinstance(inner, ConnectionRefusedError)  # met by the HTTP client, not by the driver
    assert not database_away(raised.value)
    assert not database_away(inner)
