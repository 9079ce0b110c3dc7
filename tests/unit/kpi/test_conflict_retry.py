"""The engine runs a batch's transaction again when PostgreSQL broke it to resolve a conflict between two
writers — a deadlock (40P01) exactly like a serialization failure (40001) — and never retries a statement
it refused (that one is recorded event by event, and the culprit dead-lettered)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from kpi_engine.entrypoints.consumer import EventConsumer


class _AdaptedError(Exception):
    """How SQLAlchemy's asyncpg dialect carries the driver's error: a `sqlstate`, the cause behind it."""

    def __init__(self, cause: asyncpg.PostgresError) -> None:
        super().__init__(str(cause))
        self.sqlstate = cause.sqlstate
        self.__cause__ = cause


def _engine_consumer() -> EventConsumer:
    # No broker nor database is reached: only the retry of one database step is exercised.
    return EventConsumer(
        None,  # aiokafka's consumer
        None,  # and producer
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        dead_letter_topic="dlq",
        updates_topic="updates",
        batch_max_records=10,
        retry_backoff_s=0,
    )


def _failing_once(error: asyncpg.PostgresError) -> tuple[list[int], object]:
    attempts: list[int] = []

    async def operation() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise DBAPIError("INSERT INTO cells …", {}, _AdaptedError(error))
        return "recorded"

    return attempts, operation


@pytest.mark.parametrize(
    "conflict",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access due to concurrent update"),
    ],
)
async def test_a_transaction_postgresql_broke_to_resolve_a_conflict_runs_again(
    conflict: asyncpg.PostgresError,
) -> None:
    attempts, operation = _failing_once(conflict)
    consumer = _engine_consumer()
    assert await consumer._with_database(operation) == "recorded"  # type: ignore[arg-type]
    assert len(attempts) == 2
    assert consumer.database_ok  # a conflict is not the database being away


async def test_a_refused_statement_is_not_retried() -> None:
    attempts, operation = _failing_once(asyncpg.exceptions.CheckViolationError("violates check constraint"))
    with pytest.raises(DBAPIError):
        await _engine_consumer()._with_database(operation)  # type: ignore[arg-type]
    assert len(attempts) == 1
