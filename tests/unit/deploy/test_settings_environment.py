"""A service started as a process with `settings_environment(settings)` builds exactly those settings."""

from __future__ import annotations

import os

import pytest
from pydantic_settings import BaseSettings

from devstack.processes import settings_environment
from gateway.config import Settings as GatewaySettings
from ingest.config import Settings as IngestSettings
from kpi_engine.config import Settings as EngineSettings
from settlement.config import Settings as SettlementSettings
from tests.support.identity import (
    GATEWAY_PRIVATE_KEY,
    GATEWAY_PUBLIC_KEY,
    PSEUDONYM_KEY,
    SETTLEMENT_PRIVATE_KEY,
    SETTLEMENT_PUBLIC_KEY,
)

COMMON = {
    "kafka_bootstrap_servers": "127.0.0.1:19999",
    "identity_public_key": GATEWAY_PUBLIC_KEY,
    "database_url": "postgresql://u:p@127.0.0.1:15432/vr",
    "db_schema": "kpi_roundtrip",
}
GIVEN: list[BaseSettings] = [
    IngestSettings.model_validate(
        {**COMMON, "pseudonym_key": PSEUDONYM_KEY, "events_topic": "t.e", "metrics_port": 9999}
    ),
    EngineSettings.model_validate(
        {
            **COMMON,
            "settlement_public_key": SETTLEMENT_PUBLIC_KEY,
            "batch_max_records": 1,
            "kpi_gauge_interval_seconds": 1.5,
        }
    ),
    SettlementSettings.model_validate(
        {**COMMON, "service_private_key": SETTLEMENT_PRIVATE_KEY, "kpi_engine_url": "http://127.0.0.1:1"}
    ),
    GatewaySettings.model_validate(
        {
            **COMMON,
            "identity_private_key": GATEWAY_PRIVATE_KEY,
            "bootstrap_admin_key": "vrk_Zq3mF8sLx0Pw9cVb2NtR7yKe4UdHj6Ga1IoMzQ5",
            "rate_limit_burst": 7,
        }
    ),
]


@pytest.mark.parametrize("settings", GIVEN, ids=lambda s: type(s).__module__)
def test_the_environment_rebuilds_the_same_settings(
    settings: BaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [
        n for n in os.environ if n.startswith("VR_") or n in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    ]:
        monkeypatch.delenv(name)
    environment = settings_environment(settings)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert type(settings)() == settings  # type: ignore[call-arg]
    assert "DATABASE_URL" in environment and "KAFKA_BOOTSTRAP_SERVERS" in environment
