"""The consumer loop.

Consumes: `vr.events.v1` (batches, manual offsets). Produces: KPI cells and stored events in
PostgreSQL, change notices on `vr.kpi-updates.v1`, poison messages on `vr.events.dlq.v1`.

Each batch goes decode → record (one database transaction) → publish dead letters and change notices →
commit offsets. Offsets are committed only after the transaction, so a crash anywhere replays the
batch, and the recorder recognises replays by partition and offset: nothing is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine import metrics
from kpi_engine.adapters.notices import PostgresNoticeOutbox
from kpi_engine.adapters.recorder import BatchOutcome, NewestEventTimes, PostgresRecorder
from kpi_engine.domain.messages import DeadLetter, Decoded, Message
from kpi_engine.handlers import decode
from vr_shared.db import database_unavailable, error_chain, transaction_conflict
from vr_shared.kafka import BatchPublisher
from vr_shared.runtime import collector_paused

log = logging.getLogger(__name__)
T = TypeVar("T")
_OUTBOX_CHUNK = 5_000
_MAX_DRAIN_PAUSE_S = 60.0
# A fetch answer older than this does not say the engine is caught up (its fetches wait 0.5 s at most).
FRESH_FETCH_S = 5.0


class LoggingRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


class EventConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        engine: AsyncEngine,
        recorder: PostgresRecorder,
        *,
        dead_letter_topic: str,
        updates_topic: str,
        batch_max_records: int,
        retry_backoff_s: float,
    ) -> None:
        self._consumer, self._producer, self._engine, self._recorder = consumer, producer, engine, recorder
        self._dead_letter_topic, self._updates_topic = dead_letter_topic, updates_topic
        self._batch_max_records, self._retry_backoff_s = batch_max_records, retry_backoff_s
        self._notices = BatchPublisher(producer, updates_topic)
        self._outbox = PostgresNoticeOutbox(engine)
        # While the broker refuses the notices, drains are spaced out (doubling up to a minute); the
        # notices wait in the outbox and the loop goes on recording and committing meanwhile.
        self._drain_pause_s, self._drain_not_before = 0.0, 0.0
        self.database_ok = True
        self.processed_batches = 0
        self.timezones: dict[str, str] = {}  # tenant → IANA zone, as its latest events carry it
        self._newest = NewestEventTimes()  # per facility, for the freshness gauge

    async def run(self) -> None:
        await self.drain_outbox()  # notices a crash left behind
        while True:
            records = await self._consumer.getmany(timeout_ms=500, max_records=self._batch_max_records)
            lag = await self.report_lag()
            # Caught up: nothing fetched and nothing left to fetch, as a fetch answered just now says,
            # so everything fetched before was recorded and committed (an orderly stop waits for this:
            # deploy/devstack/README.md). A lag read from an old fetch answer (the broker away) is not.
            fresh = self._fetched_within(FRESH_FETCH_S)  # first: it also exports the fetch's time
            metrics.CAUGHT_UP.set(not records and lag == 0 and fresh)
            if not records:
                await self.drain_outbox()  # notices a rebuild queued (docs/operations.md) go out too
                continue
            messages = [
                Message(tp.partition, r.offset, r.value or b"") for tp, rs in records.items() for r in rs
            ]
            await self.handle(messages)
            await self._commit({tp: rs[-1].offset + 1 for tp, rs in records.items()})

    async def handle(self, messages: Sequence[Message]) -> BatchOutcome:
        with collector_paused():
            decoded = [decode(m) for m in messages]
            events = [d for d in decoded if isinstance(d, Decoded)]
            dead = [d for d in decoded if isinstance(d, DeadLetter)]
            self.timezones.update((d.origin.tenant, d.origin.timezone) for d in events)
            started = time.perf_counter()
            outcome = await self._record_until_done(events, dead)
            metrics.BATCH_DURATION.observe(time.perf_counter() - started)
            del decoded, events
        await self._publish_dead_letters(dead, messages)
        await self.drain_outbox()
        _count(outcome)
        self._newest.merge(outcome.event_times)
        for slot in outcome.event_times.by_facility:
            metrics.LATEST_EVENT_TIME.labels(*slot).set(self._newest.by_facility[slot].timestamp())
        self.processed_batches += 1
        return outcome

    async def _record_until_done(self, events: list[Decoded], dead: list[DeadLetter]) -> BatchOutcome:
        try:
            return await self._with_database(lambda: self._recorder.record(events, dead, datetime.now(UTC)))
        except (DBAPIError, asyncpg.PostgresError) as exc:  # the batch itself cannot be stored
            return await self._record_one_by_one(events, dead, exc)

    async def _with_database(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a database step until it succeeds: while the database is away nothing is skipped or
        committed, /readyz says so, and the loop resumes by itself when it is back."""
        while True:
            try:
                result = await operation()
                self.database_ok = True
                return result
            except (
                OperationalError,
                OSError,
                ConnectionError,
                asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError,
            ) as exc:
                self._database_down(exc)
            except (DBAPIError, asyncpg.PostgresError) as exc:
                if transaction_conflict(exc):
                    # Two instances crossed (the lock order rules deadlocks out; PostgreSQL breaking one
                    # anyway must not dead-letter a batch): the transaction rolled back, run it again.
                    log.warning("batch transaction conflicted; retrying", extra={"error": type(exc).__name__})
                    metrics.BATCH_RETRIES.inc()
                    continue
                if not (getattr(exc, "connection_invalidated", False) or database_unavailable(exc)):
                    raise
                self._database_down(exc)
            metrics.BATCH_RETRIES.inc()
            await asyncio.sleep(self._retry_backoff_s)

    def _database_down(self, exc: Exception) -> None:
        if self.database_ok:
            log.warning("database unavailable; retrying", extra={"error": type(exc).__name__})
        self.database_ok = False

    async def _record_one_by_one(
        self, events: list[Decoded], dead: list[DeadLetter], exc: Exception
    ) -> BatchOutcome:
        log.error("batch failed; recording its events one by one", extra={"error": type(exc).__name__})
        total = await self._with_database(
            functools.partial(self._recorder.record, [], dead, datetime.now(UTC))
        )
        for event in events:
            try:
                outcome = await self._with_database(
                    functools.partial(self._recorder.record, [event], [], datetime.now(UTC))
                )
            except (DBAPIError, asyncpg.PostgresError) as error:  # this event is the one: dead-letter it
                letter = DeadLetter(
                    event.partition,
                    event.offset,
                    f"processing failed: {_refusal_name(error)}",
                    event.origin.tenant,
                    event.event.source,
                    event.event.id,
                )
                dead.append(letter)
                await self._with_database(
                    functools.partial(self._recorder.record, [], [letter], datetime.now(UTC))
                )
                continue
            total = _merge(total, outcome)
        total.dead_letters = len(dead)
        return total

    async def _publish_dead_letters(self, dead: Sequence[DeadLetter], messages: Sequence[Message]) -> None:
        originals = {(m.partition, m.offset): m.value for m in messages}
        deliveries = []
        for letter in dead:
            headers = [
                ("vr_reason", letter.reason.encode()),
                ("vr_partition", str(letter.partition).encode()),
                ("vr_offset", str(letter.offset).encode()),
            ]
            deliveries.append(
                await self._producer.send(
                    self._dead_letter_topic,
                    originals.get((letter.partition, letter.offset), b""),
                    headers=headers,
                )
            )
        await asyncio.gather(*deliveries)

    async def drain_outbox(self) -> None:
        """Publish queued change notices in commit order (at least once, record batches per partition),
        then forget exactly those; notices a transaction still running may precede wait for the next
        drain (docs/decisions/0007-commit-order.md). A broker error ends the drain, not the loop: the
        notices stay queued (their transaction rolled back) and the drain is tried again after a pause
        that doubles up to a minute."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._drain_not_before:
            return
        try:
            while published := await self._publish_chunk():
                metrics.CELL_UPDATES.inc(published)
        except KafkaError as exc:
            self._drain_pause_s = min(max(self._drain_pause_s * 2, self._retry_backoff_s), _MAX_DRAIN_PAUSE_S)
            self._drain_not_before = loop.time() + self._drain_pause_s
            metrics.NOTICE_PUBLISH_FAILURES.inc()
            log.warning(
                "change notices wait in the outbox: publishing failed",
                extra={"error": type(exc).__name__, "retry_in_s": self._drain_pause_s},
            )
        else:
            self._drain_pause_s = 0.0
        # Notices still queued now wait on a transaction that is still running (or on another instance's
        # drain): their age is how late settlement hears of a change.
        metrics.OLDEST_NOTICE_AGE.set(await self._with_database(self._outbox.first_waiting_age))

    async def _publish_chunk(self) -> int:
        # A chunk's thousands of notices live until the broker has them, as a batch's events do: the
        # collector is paused for the chunk (and collects after it), not for a whole backlog.
        with collector_paused():
            return await self._with_database(
                functools.partial(self._outbox.publish_ready, self._notices.publish, _OUTBOX_CHUNK)
            )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved to another instance; it will replay what was not committed, and the
            # recorder recognises the replay. Nothing to undo here.
            log.warning("offset commit failed after a rebalance", extra={"error": type(exc).__name__})

    def _fetched_within(self, seconds: float) -> bool:
        """Every assigned partition had a fetch answered in the last `seconds` (its high watermark is
        current); exports the oldest of those times for the orderly stop to check too."""
        polled = [self._consumer.last_poll_timestamp(tp) for tp in self._consumer.assignment()]
        if not polled or None in polled:
            return False
        oldest_s = min(p for p in polled if p is not None) / 1000
        metrics.LAST_FETCH.set(oldest_s)
        return bool(time.time() - oldest_s <= seconds)

    async def report_lag(self) -> int | None:
        """High watermark from the last fetch response minus our position: correct on brokers whose
        ListOffsets(latest) answer is short. Returns the total, or None while a partition's is unknown
        or nothing is assigned."""
        assigned = self._consumer.assignment()
        total: int | None = 0 if assigned else None
        for tp in assigned:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                total = None
                continue
            lag = max(highwater - await self._consumer.position(tp), 0)
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
            total = None if total is None else total + lag
        return total


def _refusal_name(error: BaseException) -> str:
    """PostgreSQL's own name for a refusal (CheckViolationError…), under SQLAlchemy's wrapping."""
    refusals = (type(seen).__name__ for seen in error_chain(error) if isinstance(seen, asyncpg.PostgresError))
    return next(refusals, type(error).__name__)


def _count(outcome: BatchOutcome) -> None:
    metrics.EVENTS_PROCESSED.inc(outcome.stored)
    metrics.DUPLICATES.inc(outcome.duplicates)
    metrics.CONFLICTS.inc(outcome.conflicts)
    metrics.RETRACTIONS.inc(outcome.retracted)
    metrics.LATE_EVENTS.inc(outcome.late)
    metrics.DEAD_LETTERS.inc(outcome.dead_letters)
    metrics.REPLAYS.inc(outcome.replays)
    for feed, count in outcome.before_watermark.items():
        metrics.EVENTS_BEFORE_WATERMARK.labels(feed).inc(count)


def _merge(total: BatchOutcome, part: BatchOutcome) -> BatchOutcome:
    for name in ("stored", "replays", "duplicates", "conflicts", "retracted", "late", "changed_cells"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.event_times.merge(part.event_times)
    for feed, count in part.before_watermark.items():
        total.before_watermark[feed] = total.before_watermark.get(feed, 0) + count
    return total
