"""Settings base every service extends. Built once at start-up and passed down."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vr_shared.secrets import PublicKeyPem


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
    """Connection, logging and limit settings common to every service. `DATABASE_URL` is read without
    prefix, like `KAFKA_BOOTSTRAP_SERVERS`."""

    service_name: str = "vr"
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "VR_DATABASE_URL", "database_url")
    )
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Every request body is refused past this size (413) before anything reads it, authentication
    # included (vr_shared.limits.RequestBoundsMiddleware).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # `/metrics` is served on this port only, never beside the API (it carries every tenant's KPI
    # gauges); None: not served (an in-process test reads the registry itself).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)


class InternalServiceSettings(ServiceSettings):
    """A service behind the gateway: it verifies the identity tokens the gateway signs, and refuses to
    start without a valid `VR_IDENTITY_PUBLIC_KEY` (docs/security.md)."""

    identity_public_key: PublicKeyPem = Field(
        description="the gateway's Ed25519 public key (PEM): verifies the identity tokens it signs"
    )
    identity_max_ttl_seconds: int = Field(default=300, gt=0, description="longest token lifetime accepted")
