"""The deployment files say what the code does (topics, ports, Dockerfiles that exist)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vr_shared import topics

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_built_service_has_its_dockerfile() -> None:
    for name, service in _compose()["services"].items():
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name


def test_compose_creates_every_topic_the_services_use() -> None:
    init = "\n".join(_compose()["services"]["kafka-init"]["command"])
    for name in topics.ALL:
        assert f"{name}:" in init


@pytest.mark.parametrize(
    ("service", "port", "module"),
    [
        ("ingest", 8001, "ingest"),
        ("kpi-engine", 8002, "kpi_engine"),
        ("settlement", 8003, "settlement"),
        ("gateway", 8000, "gateway"),
    ],
)
def test_each_service_in_compose_listens_where_its_dockerfile_says(
    service: str, port: int, module: str
) -> None:
    dockerfile = (ROOT / f"services/{service}/Dockerfile").read_text()
    assert f"VR_HTTP_PORT={port}" in dockerfile and f"EXPOSE {port}" in dockerfile
    assert f'"-m", "{module}"' in dockerfile and f"127.0.0.1:{port}/readyz" in dockerfile
    # Only the gateway is published; the others are reached by the gateway (and Prometheus) alone.
    published = _compose()["services"][service].get("ports", [])
    assert published == ([f"{port}:{port}"] if service == "gateway" else [])
    assert "EXPOSE" in dockerfile and "VR_METRICS_PORT=9100" in dockerfile


def test_every_service_with_code_is_in_compose_and_in_make_up() -> None:
    from devstack.stack import SERVICES

    with_code = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    assert with_code == {s.name for s in SERVICES} <= set(_compose()["services"])


@pytest.mark.parametrize(
    ("package", "revisions"),
    [
        (
            "kpi_engine",
            [
                "0001_initial_schema.py",
                "0002_feed_completeness.py",
                "0003_cancellations.py",
                "0004_set_based_recording.py",
                "0005_notices_in_commit_order.py",
                "0006_one_standing_discharge.py",
            ],
        ),
        (
            "settlement",
            [
                "0001_initial_schema.py",
                "0002_settlement_events_and_webhooks.py",
                "0003_feed_in_commit_order.py",
                "0004_final_statements_rechecked.py",
                "0005_due_deliveries_by_endpoint.py",
            ],
        ),
        ("gateway", ["0001_initial_schema.py", "0002_shared_rate_limits.py", "0003_idempotency_records.py"]),
    ],
)
def test_migrations_ship_inside_their_package(package: str, revisions: list[str]) -> None:
    # The Docker image installs the package without the source tree: migrations must be package data.
    import importlib

    service = importlib.import_module(package)
    migrations = importlib.import_module(f"{package}.adapters.migrate").MIGRATIONS
    assert migrations.parent == Path(service.__file__).parent
    assert sorted(p.name for p in (migrations / "versions").glob("*.py")) == revisions


def test_every_path_compose_mounts_exists() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_compose_file_follows_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema (as vendored by check-jsonschema)."""
    import importlib.resources
    import json

    from jsonschema import Draft202012Validator

    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    validator = Draft202012Validator(json.loads(vendored.read_text()))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_compose())
    ]
    assert errors == []


def test_every_service_in_compose_is_non_root_and_health_checked() -> None:
    for name, service in _compose()["services"].items():
        if "build" in service:
            dockerfile = (ROOT / service["build"]["dockerfile"]).read_text()
            assert "\nUSER " in dockerfile and "USER root" not in dockerfile, name
            assert "HEALTHCHECK" in dockerfile or "healthcheck" in service, name
        elif name != "kafka-init":
            assert "healthcheck" in service, name


def test_compose_keeps_kafka_data_on_a_volume_and_producers_idempotent() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kafka = compose["services"]["kafka"]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "kafkadata:/var/lib/kafka/data" in kafka["volumes"] and "kafkadata" in compose["volumes"]
    for producer in ("ingest", "kpi-engine"):
        assert compose["services"][producer]["environment"]["VR_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
