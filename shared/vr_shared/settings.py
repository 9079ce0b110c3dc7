"""Settings base every service extends. Built once at start-up and passed down."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection and identity settings common to every service.

    `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` are read without prefix (the names operators and
    test harnesses already use); everything else is `VR_`-prefixed.
    """

    model_config = SettingsConfigDict(env_prefix="VR_", extra="ignore", frozen=True)

    service_name: str = "vr"
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "VR_KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"
        ),
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "VR_DATABASE_URL", "database_url")
    )
    identity_secret: SecretStr = Field(
        min_length=32, description="HMAC secret shared with the gateway to verify identity tokens"
    )
    identity_max_ttl_seconds: int = Field(default=300, gt=0, description="longest token lifetime accepted")
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
