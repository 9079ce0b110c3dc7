"""The webhook delivery worker (docs/webhooks.md): sends the outbox's pending deliveries.

It runs inside settlement, beside the API, because the outbox is settlement's own table (its database
role reads no other schema) and a separate process would add a deployment unit with the same role and
nothing of its own; replicas share the work through `SKIP LOCKED` claims, and a slow receiver costs a
bounded number of concurrent sends with a timeout, never an API request's time.

Consumes: pending deliveries. Produces: signed POSTs; each attempt recorded; the next attempt on the
retry schedule; the endpoint disabled after days of failure; delivery metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError, OperationalError

from settlement import metrics
from settlement.adapters.webhook_sender import WebhookSender
from settlement.adapters.webhooks import DueDelivery, PostgresWebhookStore
from settlement.domain.webhooks import next_delay

log = logging.getLogger(__name__)


class WebhookDeliveryWorker:
    def __init__(
        self,
        store: PostgresWebhookStore,
        sender: WebhookSender,
        *,
        schedule: Sequence[float],
        disable_after_s: float,
        poll_interval_s: float,
        concurrency: int,
        lease_s: float,
    ) -> None:
        self._store, self._sender = store, sender
        self._schedule, self._disable_after_s = tuple(schedule), disable_after_s
        self._poll_interval_s, self._concurrency, self._lease_s = poll_interval_s, concurrency, lease_s

    async def run(self) -> None:
        while True:
            try:
                sent = await self.deliver_due()
                backlog = await self._store.backlog()
                metrics.WEBHOOK_PENDING.set(backlog.pending)
                metrics.WEBHOOK_OLDEST_PENDING.set(backlog.oldest_seconds)
            except (OperationalError, DBAPIError, OSError) as exc:
                log.warning("webhook deliveries wait for the database", extra={"error": type(exc).__name__})
                sent = 0
            if sent < self._concurrency:  # a full batch: more may be due at once
                await asyncio.sleep(self._poll_interval_s)

    async def deliver_due(self) -> int:
        due = await self._store.claim_due(self._concurrency, self._lease_s)
        await asyncio.gather(*(self.deliver(d) for d in due))
        return len(due)

    async def deliver(self, due: DueDelivery) -> None:
        at = datetime.now(UTC)
        attempt = await self._sender.send(due)
        metrics.WEBHOOK_SECONDS.observe(attempt.seconds)
        if attempt.ok:
            await self._store.delivered(due, attempt.as_json(at))
            metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
            return
        retry_in = next_delay(due.failed_attempts + 1, self._schedule)
        disabled = await self._store.failed(due, attempt.as_json(at), retry_in, self._disable_after_s)
        metrics.WEBHOOK_ATTEMPTS.labels("failed" if retry_in is None else "retrying").inc()
        if disabled is not None:
            metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
            log.warning("webhook endpoint disabled", extra={"endpoint": due.endpoint_id, "reason": disabled})
