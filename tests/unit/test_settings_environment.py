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

COMMON = {
    "kafka_bootstrap_servers": "127.0.0.1:19999",
    "identity_secret": "an-identity-secret-of-enough-length-0123456789",
    "database_url": "postgresql://u:p@127.0.0.1:15432/vr",
    "db_schema": "kpi_roundtrip",
}
GIVEN: list[BaseSettings] = [
    IngestSettings.model_validate(
        {**COMMON, "pseudonym_key": "a-pseudonym-key-of-enough-length-0123456789ab", "events_topic": "t.e"}
    ),
    EngineSettings.model_validate({**COMMON, "batch_max_records": 1, "kpi_gauge_interval_seconds": 1.5}),
    SettlementSettings.model_validate({**COMMON, "kpi_engine_url": "http://127.0.0.1:1"}),
    GatewaySettings.model_validate(
        {**COMMON, "bootstrap_admin_key": "vrk_a-bootstrap-admin-key-0123456789ab", "rate_limit_burst": 7}
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
