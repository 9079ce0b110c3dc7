"""The composition root: the one place that names the concrete adapters settlement runs with."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.adapters.kpi_client import HttpKpiReader
from settlement.adapters.name_lookups import NameLookups
from settlement.adapters.repository import PostgresSettlementStore
from settlement.adapters.webhook_sender import AddressCheck, WebhookSender
from settlement.adapters.webhooks import PostgresWebhookStore
from settlement.config import Settings
from settlement.handlers import SettlementService
from vr_shared.db import create_engine
from vr_shared.identity import IdentitySigner, issuer
from vr_shared.kafka import TopicSpec, create_consumer


@dataclass(frozen=True, slots=True)
class Components:
    engine: AsyncEngine
    http: httpx.AsyncClient
    consumer: AIOKafkaConsumer
    store: PostgresSettlementStore
    service: SettlementService
    topics: list[TopicSpec]
    webhooks: PostgresWebhookStore
    webhook_http: httpx.AsyncClient  # its own client: receivers' slowness never holds KPI reads
    addresses: AddressCheck
    name_lookups: NameLookups  # webhook hosts' look-ups, on threads of their own (closed at shutdown)
    sender: WebhookSender
    secret_overlap_s: float  # how long a rotated-out secret still signs


def build(settings: Settings) -> Components:
    """Must run inside the event loop (aiokafka and httpx clients bind to it)."""
    engine = create_engine(settings.database_url, schema=settings.db_schema, pool_size=5)
    http = httpx.AsyncClient(
        base_url=settings.kpi_engine_url,
        timeout=settings.kpi_timeout_seconds,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
    )
    # Settlement asks the KPI engine as itself, with tokens it signs with its own key.
    signer = IdentitySigner(
        settings.service_private_key.get_secret_value(), issuer=issuer(settings.service_name), ttl_seconds=60
    )
    store = PostgresSettlementStore(engine)
    service = SettlementService(store, HttpKpiReader(http, signer))
    consumer = create_consumer(
        settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        client_id="settlement",
        session_timeout_ms=settings.session_timeout_ms,
        max_poll_records=1000,
    )
    consumer.subscribe([settings.updates_topic])
    updates_topic = TopicSpec(
        settings.updates_topic, settings.events_topic_partitions, settings.topic_replication_factor
    )
    # Webhook sends connect only to addresses their check saw (docs/webhooks.md): no proxy from the
    # environment (it would resolve the name itself) and no kept-alive connection reused for another
    # endpoint's name at the same address.
    webhook_http = httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2, max_keepalive_connections=0),
    )
    # Two look-up threads per send slot: a name server that never answers holds a thread past the
    # attempt's deadline, until the system resolver gives up (docs/webhooks.md, "Looking names up").
    name_lookups = NameLookups(threads=settings.webhook_concurrency * 2)
    addresses = AddressCheck(
        settings.allowed_networks(), name_lookups, lookup_timeout_s=settings.webhook_timeout_seconds
    )
    return Components(
        engine,
        http,
        consumer,
        store,
        service,
        [updates_topic],
        PostgresWebhookStore(engine),
        webhook_http,
        addresses,
        name_lookups,
        WebhookSender(webhook_http, addresses, deadline_s=settings.webhook_timeout_seconds),
        settings.webhook_secret_overlap_seconds,
    )
