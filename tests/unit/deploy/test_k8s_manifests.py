"""The Kubernetes manifests validate against the Kubernetes API schemas and match the services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = [
    d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "value-realization.yaml").read_text()) if d
]


@pytest.mark.parametrize(
    "document", MANIFESTS, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in MANIFESTS]
)
def test_each_manifest_is_valid_for_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, "1.30.0", strict=True)


def _of(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in MANIFESTS if d["kind"] == kind}


def test_every_service_has_a_deployment_and_a_service_on_its_port() -> None:
    services = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    deployments, exposed = _of("Deployment"), _of("Service")
    assert set(deployments) == set(exposed) == services
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        port = container["ports"][0]["containerPort"]
        dockerfile = (ROOT / "services" / name / "Dockerfile").read_text()
        assert f"EXPOSE {port}" in dockerfile and exposed[name]["spec"]["ports"][0]["port"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["securityContext"]["runAsNonRoot"] is True


def test_the_engine_never_scales_past_the_partition_count() -> None:
    partitions = int(_of("ConfigMap")["vr-config"]["data"]["VR_EVENTS_TOPIC_PARTITIONS"])
    assert _of("HorizontalPodAutoscaler")["kpi-engine"]["spec"]["maxReplicas"] <= partitions


def test_topics_are_created_by_a_job_with_the_configured_partitions_and_replicas() -> None:
    config = _of("ConfigMap")["vr-config"]["data"]
    assert config["VR_TOPIC_REPLICATION_FACTOR"] == "3" and config["VR_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    job = _of("Job")["vr-create-topics"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert container["command"] == ["python", "-m", "vr_shared.create_topics"]
    assert container["envFrom"] == [{"configMapRef": {"name": "vr-config"}}]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_the_topic_job_creates_what_the_services_use_from_the_configured_settings() -> None:
    from vr_shared import topics
    from vr_shared.create_topics import platform_topics
    from vr_shared.settings import KafkaSettings

    config = _of("ConfigMap")["vr-config"]["data"]
    settings = KafkaSettings(
        kafka_bootstrap_servers=config["KAFKA_BOOTSTRAP_SERVERS"],
        events_topic_partitions=int(config["VR_EVENTS_TOPIC_PARTITIONS"]),
        topic_replication_factor=int(config["VR_TOPIC_REPLICATION_FACTOR"]),
    )
    specs = {s.name: (s.partitions, s.replication_factor) for s in platform_topics(settings)}
    assert specs == {topics.EVENTS: (12, 3), topics.EVENTS_DLQ: (1, 3), topics.KPI_UPDATES: (12, 3)}


def test_services_that_migrate_at_start_up_have_time_to_before_liveness_counts() -> None:
    """The KPI engine and settlement run their schema migrations before /healthz answers; one migration
    can rewrite a large table (docs/operations.md, "Rebuilding KPIs"), so a start-up probe gives them half an
    hour — the liveness probe alone would restart the pod after a minute, in a loop."""
    deployments = _of("Deployment")
    for name in ("kpi-engine", "settlement"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        startup, liveness = container["startupProbe"], container["livenessProbe"]
        assert startup["httpGet"] == liveness["httpGet"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60
