"""The deployment files say what the code does (topics, ports, Dockerfiles that exist)."""

from __future__ import annotations

from pathlib import Path

import yaml

from vr_shared import topics

ROOT = Path(__file__).resolve().parents[2]


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


def test_ingest_in_compose_listens_where_its_dockerfile_says() -> None:
    dockerfile = (ROOT / "services/ingest/Dockerfile").read_text()
    assert "VR_HTTP_PORT=8001" in dockerfile and "EXPOSE 8001" in dockerfile
    assert _compose()["services"]["ingest"]["ports"] == ["8001:8001"]
