"""`make up`: the whole local stack in one process tree, stopped in order on Ctrl-C.

Nothing accepted is lost (deploy/devstack/README.md): PostgreSQL runs with fsync on, the broker keeps
its topics, messages and group offsets in a file-backed local S3 server under `.local/s3`, and the stop
is orderly. Order of start: PostgreSQL, S3 server, broker, topics, services. Order of stop: the gateway
and ingest (no event is taken any more), then the KPI engine is left to consume to the end of the topic
(bounded, with progress), then settlement and the engine, the broker, its storage, the database.
`DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS`, when set, are used as they are and nothing is started for them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.broker import LocalBroker
from devstack.drain import wait_until_drained
from devstack.ports import wait_listening
from devstack.postgres import LocalPostgres
from devstack.processes import terminate
from devstack.prometheus import LocalPrometheus, prometheus_binary
from devstack.s3 import LocalS3
from devstack.secrets import database_passwords, service_environment
from vr_shared.create_topics import platform_topics
from vr_shared.db_roles import provision
from vr_shared.kafka import ensure_topics
from vr_shared.settings import KafkaSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int
    metrics_port: int  # /metrics is served here only, never on the API port (docs/security.md)


def _port(variable: str, default: int) -> int:
    return int(os.environ.get(variable, str(default)))


SERVICES = (
    ServiceSpec("ingest", "ingest", _port("VR_INGEST_PORT", 8001), _port("VR_INGEST_METRICS_PORT", 9101)),
    ServiceSpec(
        "kpi-engine",
        "kpi_engine",
        _port("VR_KPI_ENGINE_PORT", 8002),
        _port("VR_KPI_ENGINE_METRICS_PORT", 9102),
    ),
    ServiceSpec(
        "settlement",
        "settlement",
        _port("VR_SETTLEMENT_PORT", 8003),
        _port("VR_SETTLEMENT_METRICS_PORT", 9103),
    ),
    ServiceSpec("gateway", "gateway", _port("VR_GATEWAY_PORT", 8000), _port("VR_GATEWAY_METRICS_PORT", 9100)),
)
# Where each service finds the others (the gateway routes to all three; settlement reads KPIs).
UPSTREAMS = {
    "VR_INGEST_URL": f"http://127.0.0.1:{SERVICES[0].port}",
    "VR_KPI_ENGINE_URL": f"http://127.0.0.1:{SERVICES[1].port}",
    "VR_SETTLEMENT_URL": f"http://127.0.0.1:{SERVICES[2].port}",
}


PROMETHEUS_PORT = int(os.environ.get("VR_PROMETHEUS_PORT", "9090"))
# How long a stop waits for the KPI engine to consume what ingest accepted (a burst drains at the
# engine's pace: about 4,000 events/s here).
DRAIN_TIMEOUT_SECONDS = float(os.environ.get("VR_DRAIN_TIMEOUT_SECONDS", "600"))
# One KPI engine runs here, so one partition serves it; each partition of a produce request costs the
# durable storage a few object writes, so more would only slow ingest down (docs/benchmarks.md).
LOCAL_EVENTS_PARTITIONS = os.environ.get("VR_EVENTS_TOPIC_PARTITIONS", "1")
# Local development: a billing system's webhook receiver on this machine may be subscribed (loopback
# only; compose and Kubernetes allow no private address — docs/webhooks.md).
LOCAL_WEBHOOK_NETWORKS = os.environ.get("VR_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# Stopped first, so nothing new is accepted while the engine drains.
TAKING_EVENTS = ("gateway", "ingest")


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / ".local"
        self.prometheus: LocalPrometheus | None = None
        self.postgres: LocalPostgres | None = None
        self.broker: LocalBroker | None = None
        self.s3: LocalS3 | None = None
        self.services: list[tuple[ServiceSpec, subprocess.Popen[bytes]]] = []
        self.database_url = os.environ.get("DATABASE_URL")
        self.service_database_urls: dict[str, str] = {}
        self.bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")

    def start(self) -> None:
        if not self.database_url:
            self.postgres = LocalPostgres(
                self.state_dir / "pgdata", int(os.environ.get("VR_LOCAL_PG_PORT", "15432"))
            )
            _step("PostgreSQL", self.postgres.start)
            self.database_url = self.postgres.url
        admin_url = self.database_url

        def provision_roles() -> None:
            self.service_database_urls = asyncio.run(provision(admin_url, database_passwords(self.state_dir)))

        _step("one database role per service", provision_roles)
        if not self.bootstrap_servers:
            self.s3 = LocalS3(
                self.state_dir / "s3",
                int(os.environ.get("VR_LOCAL_S3_PORT", "19000")),
                log_path=self.state_dir / "s3.log",
            )
            _step("the broker's storage (S3 server, files in .local/s3)", self.s3.start)
            self.broker = LocalBroker(
                int(os.environ.get("VR_LOCAL_BROKER_PORT", "19092")),
                log_path=self.state_dir / "broker.log",
                storage=self.s3,
            )
            _step("Kafka-protocol broker (Tansu, durable storage)", self.broker.start)
            self.bootstrap_servers = self.broker.bootstrap_servers
        settings = KafkaSettings(
            kafka_bootstrap_servers=self.bootstrap_servers or "",
            events_topic_partitions=int(LOCAL_EVENTS_PARTITIONS),
        )
        _step(
            "topics",
            lambda: asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, platform_topics(settings))),
        )
        for spec in SERVICES:
            _step(f"service {spec.name}", lambda spec=spec: self._start_service(spec))
        if binary := prometheus_binary(self.root):  # `make prometheus` unpacked it (Debian's package)
            self.prometheus = LocalPrometheus(
                binary,
                self.state_dir / "prometheus",
                PROMETHEUS_PORT,
                {spec.name: [f"http://127.0.0.1:{spec.metrics_port}"] for spec in SERVICES},
                rules=self.root / "deploy" / "prometheus" / "alerts.yml",
            )
            _step("Prometheus (alert rules of deploy/prometheus)", self.prometheus.start)

    def _start_service(self, spec: ServiceSpec) -> None:
        env = {
            **os.environ,
            **service_environment(self.state_dir, spec.name),
            "DATABASE_URL": self.service_database_urls.get(spec.name, ""),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers or "",
            "VR_HTTP_PORT": str(spec.port),
            "VR_METRICS_PORT": str(spec.metrics_port),
            "VR_EVENTS_TOPIC_PARTITIONS": LOCAL_EVENTS_PARTITIONS,
            "VR_WEBHOOK_ALLOWED_NETWORKS": LOCAL_WEBHOOK_NETWORKS,
            **UPSTREAMS,
        }
        log = open(self.state_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module], env=env, stdout=log, stderr=log, start_new_session=True
        )
        self.services.append((spec, process))
        if not wait_listening(spec.port, timeout_s=30):
            raise RuntimeError(f"{spec.name} did not start; see {self.state_dir / (spec.name + '.log')}")

    def stop(self) -> None:
        if self.prometheus:
            print("  stopping Prometheus", flush=True)
            self.prometheus.stop()
        taking = [(spec, p) for spec, p in self.services if spec.name in TAKING_EVENTS]
        for spec, process in reversed(taking):
            _stop_process(spec, process)
        engine = next(((spec, p) for spec, p in self.services if spec.module == "kpi_engine"), None)
        if engine is not None and engine[1].poll() is None:
            url = f"http://127.0.0.1:{engine[0].metrics_port}/metrics"
            wait_until_drained(url, DRAIN_TIMEOUT_SECONDS, lambda line: print(f"  {line}", flush=True))
        for spec, process in reversed(self.services):
            if spec.name not in TAKING_EVENTS:
                _stop_process(spec, process)
        self.services.clear()
        if self.broker:
            print("  stopping broker", flush=True)
            self.broker.stop()
        if self.s3:
            print("  stopping the broker's storage", flush=True)
            self.s3.stop()
        if self.postgres:
            print("  stopping PostgreSQL", flush=True)
            self.postgres.stop()

    def print_urls(self) -> None:
        gateway = SERVICES[-1]
        admin_key = service_environment(self.state_dir, "gateway")["VR_BOOTSTRAP_ADMIN_KEY"]
        print("\nValue Realization is up.")
        print(
            f"\n  API (gateway)  http://127.0.0.1:{gateway.port}    docs: http://127.0.0.1:{gateway.port}/docs"
        )
        print(f"  admin key      {admin_key}")
        print("\n  services behind it (each: /healthz /readyz; /metrics on its own port):")
        for spec in SERVICES:
            print(f"    {spec.name:<11} http://127.0.0.1:{spec.port}    metrics :{spec.metrics_port}")
        if self.prometheus:
            print(f"  prometheus     {self.prometheus.url}    alerts: {self.prometheus.url}/alerts")
        print(f"  postgres       {self.database_url}")
        print(f"  kafka          {self.bootstrap_servers}")
        print(f"  logs           {self.state_dir}/*.log")
        print("\nFirst steps: README.md, 'A first session'.")
        print(
            "\nCtrl-C stops the gateway and ingest, lets the KPI engine count what they accepted, then stops"
            " the rest.\n",
            flush=True,
        )

    def wait(self) -> None:
        while True:
            for spec, process in self.services:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{spec.name} exited with {process.returncode}; see .local/{spec.name}.log"
                    )
            time.sleep(0.5)


def _stop_process(spec: ServiceSpec, process: subprocess.Popen[bytes]) -> None:
    print(f"  stopping {spec.name}", flush=True)
    terminate(process, grace_s=15)


def _step(name: str, action: object) -> None:
    print(f"  starting {name} …", end=" ", flush=True)
    started = time.monotonic()
    action()  # type: ignore[operator]
    print(f"ok ({time.monotonic() - started:.1f} s)", flush=True)


def _interrupt(signum: int, _frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the orderly stop short
    raise KeyboardInterrupt


def run(root: Path) -> int:
    stack = Stack(root)
    # Installed explicitly: a parent may have left SIGINT ignored (background jobs of a script), and
    # Ctrl-C, a closed terminal or `kill` must all end in the same orderly stop.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        stack.start()
        stack.print_urls()
        stack.wait()
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0
    except Exception as exc:
        print(f"\nerror: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
    return 0
