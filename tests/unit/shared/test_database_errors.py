"""A database that is away (starting, shutting down, unreachable) is told apart from a statement it
refuses: the first is retried, only the second can make an event a dead letter."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from vr_shared.db import database_unavailable, sqlstate_of, transaction_conflict


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
