"""The webhook delivery worker (docs/webhooks.md): sends the outbox's pending deliveries.

It runs inside settlement, beside the API, because the outbox is settlement's own table (its database
role reads no other schema) and a separate process would add a deployment unit with the same role and
nothing of its own; replicas share the work through `SKIP LOCKED` claims. Sends run side by side, at
most `concurrency` at once, each over within the sender's deadline; a slot that frees is filled at
once, never after the slowest send of a batch; one tenant holds at most `tenant_share` of the slots,
and a tenant already sending never takes the last free one (the claim keeps it for a tenant sending
nothing) — so a receiver that trickles its answer holds one slot for one deadline, not the worker, nor
other tenants' deliveries, nor an API request.

Consumes: pending deliveries. Produces: signed POSTs; each attempt recorded; the next attempt on the
retry schedule; the endpoint disabled after days of failure; delivery metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError, OperationalError

from settlement import metrics
from settlement.adapters.webhook_sender import WebhookSender
from settlement.adapters.webhooks import DueDelivery, PostgresWebhookStore
from settlement.domain.webhooks import next_delay

log = logging.getLogger(__name__)


def tenant_share(concurrency: int) -> int:
    """How many of a worker's sends one tenant may hold: half, so one tenant never holds most of them
    (the claim also keeps the last free slot for a tenant sending nothing: PostgresWebhookStore)."""
    return max(1, concurrency // 2)


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
        self._sending: dict[asyncio.Task[None], str] = {}  # each send under way, and its tenant

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.start_due()
                    backlog = await self._store.backlog()
                    metrics.WEBHOOK_PENDING.set(backlog.pending)
                    metrics.WEBHOOK_OLDEST_PENDING.set(backlog.oldest_seconds)
                except (OperationalError, DBAPIError, OSError) as exc:
                    log.warning(
                        "webhook deliveries wait for the database", extra={"error": type(exc).__name__}
                    )
                await self._next_turn()
        finally:
            await self._abandon_sends()

    async def start_due(self) -> int:
        """Claims as many due deliveries as there are free slots and starts sending each; how many."""
        free = self._concurrency - len(self._sending)
        if free <= 0:
            return 0
        due = await self._store.claim_due(
            free,
            self._lease_s,
            share=tenant_share(self._concurrency),
            sending=Counter(self._sending.values()),
        )
        for delivery in due:
            send = asyncio.create_task(self.deliver(delivery), name=f"webhook-delivery-{delivery.id}")
            self._sending[send] = delivery.tenant
            send.add_done_callback(self._sent)
        return len(due)

    async def deliver_due(self) -> int:
        """One round: start what is due and wait until every send under way has ended."""
        started = await self.start_due()
        if self._sending:
            await asyncio.wait(list(self._sending))
        return started

    async def _next_turn(self) -> None:
        """Until a send ends (its slot is free again) or, while a slot is free, the poll interval passes."""
        if not self._sending:
            await asyncio.sleep(self._poll_interval_s)
            return
        full = len(self._sending) >= self._concurrency
        wait = None if full else self._poll_interval_s
        await asyncio.wait(list(self._sending), timeout=wait, return_when=asyncio.FIRST_COMPLETED)

    def _sent(self, send: asyncio.Task[None]) -> None:
        self._sending.pop(send, None)
        if not send.cancelled() and (error := send.exception()) is not None:
            # Its attempt could not be recorded: the lease runs out and the delivery is sent again.
            log.warning("webhook delivery not recorded", extra={"error": type(error).__name__})

    async def _abandon_sends(self) -> None:
        """On shutdown: sends under way stop; their deliveries are sent again once their lease ends."""
        for send in list(self._sending):
            send.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

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
