"""What routes are given, as `Annotated` aliases: the components the lifespan composed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from settlement.adapters.repository import PostgresSettlementStore
from settlement.adapters.webhook_sender import AddressCheck
from settlement.adapters.webhooks import PostgresWebhookStore
from settlement.bootstrap import Components
from settlement.handlers import SettlementService


def components(request: Request) -> Components:
    composed: Components = request.app.state.components
    return composed


def _service(request: Request) -> SettlementService:
    return components(request).service


def _store(request: Request) -> PostgresSettlementStore:
    return components(request).store


def _webhooks(request: Request) -> PostgresWebhookStore:
    return components(request).webhooks


def _addresses(request: Request) -> AddressCheck:
    return components(request).addresses


Service = Annotated[SettlementService, Depends(_service)]
Store = Annotated[PostgresSettlementStore, Depends(_store)]
Webhooks = Annotated[PostgresWebhookStore, Depends(_webhooks)]
Addresses = Annotated[AddressCheck, Depends(_addresses)]
