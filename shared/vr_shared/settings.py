"""Settings base every service extends. Built once at start-up and passed down."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """Where the broker is and how the platform's topics and producers are set up.

    `KAFKA_BOOTSTRAP_SERVERS` is read without prefix (the name operators and test harnesses already
    use); everything else is `VR_`-prefixed.
    """

    model_config = SettingsConfigDict(env_prefix="VR_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "VR_KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"
        ),
    )
    # Topics, created when missing (deploy/README.md). Partitions bound how many KPI engine
    # instances share the work; one replica suits a single-node broker only (Kubernetes sets 3).
    events_topic_partitions: int = Field(default=12, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # The idempotent producer (no duplicate or reordered writes from retries) needs InitProducerId v3:
    # Apache Kafka has it (compose and Kubernetes turn it on); the local broker does not, hence off here.
    kafka_enable_idempotence: bool = False


class ServiceSettings(KafkaSettings):
    """Connection and identity settings common to every service. `DATABASE_URL` is read without
    prefix, like `KAFKA_BOOTSTRAP_SERVERS`."""

    service_name: str = "vr"
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
