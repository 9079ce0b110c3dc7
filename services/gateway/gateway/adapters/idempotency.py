"""Idempotency records in PostgreSQL (table `idempotency_records`, migration 0003), shared by every
gateway instance: a claim is one statement, so two instances racing on one key let one through."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.idempotency import (
    ABANDONED_AFTER_SECONDS,
    RETENTION_HOURS,
    Answer,
    Claimed,
    ClaimOutcome,
    InProgress,
    OtherRequest,
    Replay,
)

_CLAIM = text(
    f"""
    INSERT INTO idempotency_records (owner, idempotency_key, fingerprint)
    VALUES (:owner, :key, :fingerprint)
    ON CONFLICT (owner, idempotency_key) DO UPDATE
       SET fingerprint = EXCLUDED.fingerprint, created_at = now()
     WHERE idempotency_records.status IS NULL
       AND idempotency_records.created_at < now() - interval '{ABANDONED_AFTER_SECONDS} seconds'
    RETURNING 1
    """
)
_FOUND = text(
    "SELECT fingerprint, status, content_type, body FROM idempotency_records"
    " WHERE owner = :owner AND idempotency_key = :key"
)
_COMPLETE = text(
    "UPDATE idempotency_records SET status = :status, content_type = :content_type, body = :body"
    " WHERE owner = :owner AND idempotency_key = :key"
)
_RELEASE = text(
    "DELETE FROM idempotency_records WHERE owner = :owner AND idempotency_key = :key AND status IS NULL"
)
_PURGE = text(
    f"DELETE FROM idempotency_records WHERE created_at < now() - interval '{RETENTION_HOURS} hours'"
)
PURGE_EVERY_SECONDS = 60.0


class PostgresIdempotencyStore:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._clock = engine, clock
        self._purged_at = float("-inf")

    async def claim(self, owner: str, key: str, fingerprint: bytes) -> ClaimOutcome:
        params = {"owner": owner, "key": key, "fingerprint": fingerprint}
        async with self._engine.begin() as conn:
            if self._clock() - self._purged_at > PURGE_EVERY_SECONDS:  # records older than 24 h go
                self._purged_at = self._clock()
                await conn.execute(_PURGE)
            if (await conn.execute(_CLAIM, params)).first() is not None:
                return Claimed()
            found = (await conn.execute(_FOUND, params)).one()
        if found.fingerprint != fingerprint:
            return OtherRequest()
        if found.status is None:
            return InProgress()
        return Replay(Answer(found.status, found.content_type or "", bytes(found.body or b"")))

    async def complete(self, owner: str, key: str, answer: Answer) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                _COMPLETE,
                {
                    "owner": owner,
                    "key": key,
                    "status": answer.status,
                    "content_type": answer.content_type,
                    "body": answer.body,
                },
            )

    async def release(self, owner: str, key: str) -> None:
        """Forget an unanswered claim: the answer is not one to keep, the client may try again."""
        async with self._engine.begin() as conn:
            await conn.execute(_RELEASE, {"owner": owner, "key": key})
