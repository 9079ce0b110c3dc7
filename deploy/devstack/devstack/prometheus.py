"""Prometheus on loopback over services started here, with the repository's alert rules: beside
`make up` (http://127.0.0.1:9090, when `make prometheus` could unpack Debian's package) and in the
tests that hold the dashboards and alerts to what the services export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from devstack.ports import port_is_free, wait_listening
from devstack.processes import spawn, terminate


def prometheus_binary(root: Path, name: str = "prometheus") -> Path | None:
    """`.tools/prometheus` (unpacked by `make prometheus`), else one on PATH, else none."""
    unpacked = root / ".tools" / "prometheus" / "usr" / "bin" / name
    if unpacked.exists():
        return unpacked
    found = shutil.which(name)
    return Path(found) if found else None


def scrape_config(targets: dict[str, list[str]], *, interval: str, rule_files: list[str]) -> dict[str, Any]:
    """Jobs by service name (as `deploy/prometheus/prometheus.yml` names them) over base URLs."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [u.removeprefix("http://") for u in urls]}]}
            for job, urls in targets.items()
        ],
    }


class LocalPrometheus:
    def __init__(
        self,
        binary: Path,
        workdir: Path,
        port: int,
        targets: dict[str, list[str]],
        *,
        rules: Path,
        interval: str = "15s",
    ) -> None:
        self.binary, self.workdir, self.port = binary, workdir, port
        self.targets, self.rules, self.interval = targets, rules, interval
        self.name, self.log_path = "prometheus", workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.rules, self.workdir / self.rules.name)
        config = scrape_config(self.targets, interval=self.interval, rule_files=[self.rules.name])
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML: no YAML writer needed
        return self.config_path

    def start(self) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(
                f"port {self.port} for Prometheus is taken; set VR_PROMETHEUS_PORT to another port"
            )
        self.write_config()
        self.process = spawn(
            [
                str(self.binary),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            log_path=self.log_path,
        )
        process = self.process
        if not wait_listening(self.port, timeout_s=30, alive=lambda: process.poll() is None):
            self.stop()
            raise RuntimeError(f"Prometheus did not start; see {self.workdir / 'prometheus.log'}")

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process, grace_s=15)
        self.process = None
