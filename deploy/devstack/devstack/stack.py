"""`make up`: the whole local stack in one process tree, supervised, stopped in order however it is
asked to stop.

Nothing accepted is lost (deploy/devstack/README.md): PostgreSQL runs with fsync on, the broker keeps
its topics, messages and group offsets in a file-backed local S3 server under `.local/s3`, and the stop
is orderly. Order of start: PostgreSQL, S3 server, broker, topics, services; "up" is said once every
service's /readyz answers. While it runs, a part that exits is reported and restarted
(devstack.supervisor). Order of stop: the gateway and ingest (no event is taken any more), then the KPI
engine is left to consume to the end of the topic (what it needs brought back first; bounded, with
progress it can vouch for), then settlement and the engine, the broker, its storage, the database.
Every part dies with the orchestrator (a death signal), and `.local/stack.json` records them for the
next `make up` and for `make down` (devstack.record). `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS`, when
set, are used as they are and nothing is started for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from devstack.broker import LocalBroker
from devstack.drain import UNCONFIRMED, wait_until_drained
from devstack.parent import MakeWatch, die_with_parent
from devstack.postgres import LocalPostgres
from devstack.processes import bind_children_to_this_process
from devstack.prometheus import LocalPrometheus, prometheus_binary
from devstack.record import AlreadyRunning, StackRecord
from devstack.s3 import LocalS3
from devstack.secrets import database_passwords, service_environment
from devstack.services import LocalService, ServiceSpec, wait_ready
from devstack.supervisor import Part, Supervisor
from vr_shared.create_topics import platform_topics
from vr_shared.db_roles import provision
from vr_shared.kafka import ensure_topics
from vr_shared.settings import KafkaSettings

# The clone this runs from (its tools and alert rules); the stack's state may live elsewhere (--root).
REPOSITORY = Path(__file__).resolve().parents[3]
# Every port of the local stack, by the variable that moves it (deploy/devstack/README.md); each is
# bound on 127.0.0.1 only. Tests and the soak start a stack of their own on free ports through these.
PORT_VARIABLES = {
    "VR_GATEWAY_PORT": 8000,
    "VR_INGEST_PORT": 8001,
    "VR_KPI_ENGINE_PORT": 8002,
    "VR_SETTLEMENT_PORT": 8003,
    "VR_GATEWAY_METRICS_PORT": 9100,
    "VR_INGEST_METRICS_PORT": 9101,
    "VR_KPI_ENGINE_METRICS_PORT": 9102,
    "VR_SETTLEMENT_METRICS_PORT": 9103,
    "VR_LOCAL_PG_PORT": 15432,
    "VR_LOCAL_S3_PORT": 19000,
    "VR_LOCAL_BROKER_PORT": 19092,
    "VR_PROMETHEUS_PORT": 9090,
}


def _port(variable: str) -> int:
    return int(os.environ.get(variable, str(PORT_VARIABLES[variable])))


def _service(name: str, module: str) -> ServiceSpec:
    prefix = f"VR_{name.upper().replace('-', '_')}"
    return ServiceSpec(
        name,
        module,
        _port(f"{prefix}_PORT"),
        _port(f"{prefix}_METRICS_PORT"),
        f"{prefix}_PORT",
        f"{prefix}_METRICS_PORT",
    )


SERVICES = (
    _service("ingest", "ingest"),
    _service("kpi-engine", "kpi_engine"),
    _service("settlement", "settlement"),
    _service("gateway", "gateway"),
)
# Where each service finds the others (the gateway routes to all three; settlement reads KPIs).
UPSTREAMS = {
    "VR_INGEST_URL": SERVICES[0].url,
    "VR_KPI_ENGINE_URL": SERVICES[1].url,
    "VR_SETTLEMENT_URL": SERVICES[2].url,
}


PROMETHEUS_PORT = _port("VR_PROMETHEUS_PORT")
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
# What the drain needs running: brought back (if down) before it waits.
DRAIN_NEEDS = ("postgres", "s3", "broker", "kpi-engine")
# One KPI engine runs here: after a crash its successor waits this long for the dead member's session
# to expire before it is given the partition (the default, 10 s, suits several engines).
LOCAL_SESSION_TIMEOUT_MS = "6000"
READY_TIMEOUT_S = 120.0
# Beyond the drain's own bound, the most a stop can take, every step at its worst (each part needing
# its SIGKILL, each start its whole timeout): Prometheus, the gateway and ingest 3 × 25 s; bringing back
# what the drain needs — PostgreSQL 115 s, the S3 server 70 s, the broker 45 s, the engine 85 s; the
# last poll 16 s (a slow answer); then settlement, the engine 2 × 25 s, the broker and its storage
# 2 × 20 s and PostgreSQL 50 s: 546 s, rounded up. Usually a stop takes seconds. `make down` waits
# this long too.
STOP_MARGIN_S = 560.0
STOP_BOUND_S = DRAIN_TIMEOUT_SECONDS + STOP_MARGIN_S


class Stack:
    def __init__(self, root: Path, watch: MakeWatch) -> None:
        self.root = root.resolve()
        self.state_dir = self.root / ".local"
        self.record = StackRecord(self.state_dir)
        self.watch = watch
        self.up = False  # said "up": events may have been accepted, so a stop drains
        self.parts: list[Part] = []
        self.services: list[LocalService] = []
        self.supervisor = Supervisor([], _say, self._write_record)
        self.database_url = os.environ.get("DATABASE_URL")
        self.service_database_urls: dict[str, str] = {}
        self.bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")

    def start(self) -> None:
        self.claim_folder()
        if not self.database_url:
            postgres = LocalPostgres(self.state_dir / "pgdata", _port("VR_LOCAL_PG_PORT"))
            self._start("PostgreSQL", postgres)
            self.database_url = postgres.url
        admin_url = self.database_url

        def provision_roles() -> None:
            self.service_database_urls = asyncio.run(provision(admin_url, database_passwords(self.state_dir)))

        _step("one database role per service", provision_roles)
        if not self.bootstrap_servers:
            s3 = LocalS3(self.state_dir / "s3", _port("VR_LOCAL_S3_PORT"), log_path=self.state_dir / "s3.log")
            self._start("the broker's storage (S3 server, files in .local/s3)", s3)
            broker = LocalBroker(
                _port("VR_LOCAL_BROKER_PORT"), log_path=self.state_dir / "broker.log", storage=s3
            )
            self._start("Kafka-protocol broker (Tansu, durable storage)", broker)
            self.bootstrap_servers = broker.bootstrap_servers
        settings = KafkaSettings(
            kafka_bootstrap_servers=self.bootstrap_servers or "",
            events_topic_partitions=int(LOCAL_EVENTS_PARTITIONS),
        )
        _step(
            "topics",
            lambda: asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, platform_topics(settings))),
        )
        self.services = [
            LocalService(
                spec, functools.partial(self._service_environment, spec), self.state_dir / f"{spec.name}.log"
            )
            for spec in SERVICES
        ]
        _step(f"services {', '.join(s.name for s in self.services)}", self._start_services)
        if binary := prometheus_binary(REPOSITORY):  # `make prometheus` unpacked it (Debian's package)
            prometheus = LocalPrometheus(
                binary,
                self.state_dir / "prometheus",
                PROMETHEUS_PORT,
                {spec.name: [f"http://127.0.0.1:{spec.metrics_port}"] for spec in SERVICES},
                rules=REPOSITORY / "deploy" / "prometheus" / "alerts.yml",
            )
            self._start("Prometheus (alert rules of deploy/prometheus)", prometheus)
        _step("every service ready (/readyz)", self._wait_ready)

    def claim_folder(self) -> None:
        """Before anything: one make up per folder (the lock); then the leftovers the last record names
        are stopped — before this run's record replaces it."""
        self.record.claim()
        if leftovers := self.record.stop_leftovers():
            named = ", ".join(f"{p.name} (pid {p.pid})" for p in leftovers)
            _say(f"stopped what an earlier make up left running: {named}")
        self.record.stop_bound_s = STOP_BOUND_S
        self._write_record(None)  # this run's, from now on

    def _start(self, title: str, part: Part) -> None:
        self.parts.append(part)  # before it starts: a half-started part is stopped too
        _step(title, part.start)
        self.supervisor.watch(part)
        self._write_record(part)
        self._check_make()

    def _start_services(self) -> None:
        """All four at once (each spends seconds importing and migrating), then each until it listens."""
        for service in self.services:
            self.parts.append(service)
            service.launch()
        for service in self.services:
            service.wait_started()
            self.supervisor.watch(service)
            self._write_record(service)

    def _write_record(self, _part: Part | None) -> None:
        pids = {p.name: p.process.pid for p in self.parts if p.process is not None}
        self.record.write(pids, self.supervisor.restarts)

    def _wait_ready(self) -> None:
        late = wait_ready(self.services, READY_TIMEOUT_S, self._between_waits)
        if late:
            raise RuntimeError(
                f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(late)}; see .local/*.log"
            )

    def _service_environment(self, spec: ServiceSpec) -> dict[str, str]:
        return {
            **os.environ,
            **service_environment(self.state_dir, spec.name),
            "DATABASE_URL": self.service_database_urls.get(spec.name, ""),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers or "",
            "VR_HTTP_PORT": str(spec.port),
            "VR_METRICS_PORT": str(spec.metrics_port),
            "VR_EVENTS_TOPIC_PARTITIONS": LOCAL_EVENTS_PARTITIONS,
            "VR_WEBHOOK_ALLOWED_NETWORKS": LOCAL_WEBHOOK_NETWORKS,
            "VR_SESSION_TIMEOUT_MS": os.environ.get("VR_SESSION_TIMEOUT_MS", LOCAL_SESSION_TIMEOUT_MS),
            **UPSTREAMS,
        }

    def supervise(self) -> None:
        """Until a stop is asked for: restart what exits; a signal make got stops us as our own would."""
        while True:
            self._between_waits()
            time.sleep(0.5)

    def _between_waits(self) -> None:
        self.supervisor.check()
        self._check_make()

    def _check_make(self) -> None:
        if (signum := self.watch.signalled()) is not None:
            _say(f"make got {signum.name}")
            raise KeyboardInterrupt

    def stop(self) -> None:
        """In order, each part whatever happened to the one before; the drain only once it was up."""
        for part in [*self._named("prometheus"), *(p for name in TAKING_EVENTS for p in self._named(name))]:
            _stop(part)
        accepted_until = time.time()  # ingest is stopped: nothing is accepted after this
        engine = next(iter(self._named("kpi-engine")), None)
        if self.up and engine is not None:
            try:
                self._drain(engine, accepted_until)
            except Exception as exc:  # the stop goes on: what was not counted is safe, as it says
                _say(f"the drain failed ({exc}); {UNCONFIRMED}")
        for part in reversed(self.parts):
            _stop(part)
        self.parts.clear()
        self.record.forget()

    def _drain(self, engine: Part, accepted_until: float) -> None:
        missing = self.supervisor.bring_back([n for n in DRAIN_NEEDS if self._named(n)])
        if missing:
            _say(f"could not start {', '.join(missing)} again to finish counting; {UNCONFIRMED}")
            return
        spec = next(s.spec for s in self.services if s is engine)
        wait_until_drained(spec.metrics_url, DRAIN_TIMEOUT_SECONDS, _say, accepted_until)

    def _named(self, *names: str) -> list[Part]:
        return [p for p in self.parts if p.name in names]

    def print_urls(self) -> None:
        gateway = SERVICES[-1]
        admin_key = service_environment(self.state_dir, "gateway")["VR_BOOTSTRAP_ADMIN_KEY"]
        lines = [
            "",
            "Value Realization is up.",
            "",
            f"  API (gateway)  {gateway.url}    docs: {gateway.url}/docs",
        ]
        lines += [f"  admin key      {admin_key}", ""]
        lines += ["  services behind it (each: /healthz /readyz; /metrics on its own port):"]
        lines += [f"    {spec.name:<11} {spec.url}    metrics :{spec.metrics_port}" for spec in SERVICES]
        prometheus = next(iter(self._named("prometheus")), None)
        if isinstance(prometheus, LocalPrometheus):
            lines.append(f"  prometheus     {prometheus.url}    alerts: {prometheus.url}/alerts")
        lines += [f"  postgres       {self.database_url}", f"  kafka          {self.bootstrap_servers}"]
        lines += [
            f"  logs           {self.state_dir}/*.log",
            "",
            "First steps: README.md, 'A first session'.",
            "",
        ]
        lines.append(
            "A part that exits is restarted. Ctrl-C (or `make down` from another terminal) stops the gateway"
            " and ingest, lets the KPI engine count what they accepted, then stops the rest."
        )
        _out("\n".join(lines) + "\n")


def _stop(part: Part) -> None:
    if part.process is not None:
        _say(f"stopping {part.name}")
    try:
        part.stop()
    except Exception as exc:  # the next part is stopped all the same
        _say(f"stopping {part.name} failed: {exc}")


def _out(text: str, end: str = "\n", stream: TextIO | None = None) -> None:
    """Written and flushed; a closed terminal (EIO) or a pipe whose reader died (`make up | tee`, then
    Ctrl-C) must not cut the orderly stop short, so such a failure is ignored."""
    with contextlib.suppress(OSError):
        print(text, end=end, file=stream or sys.stdout, flush=True)


def _say(line: str) -> None:
    _out(f"  {line}")


def _step(name: str, action: Callable[[], None]) -> None:
    _out(f"  starting {name} …", end=" ")
    started = time.monotonic()
    action()
    _out(f"ok ({time.monotonic() - started:.1f} s)")


def _interrupt(_signum: int, _frame: object) -> None:
    for stopping in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # none may cut the orderly stop short
        signal.signal(stopping, signal.SIG_IGN)
    raise KeyboardInterrupt


def run(root: Path) -> int:
    # Installed explicitly: a parent may have left SIGINT ignored (background jobs of a script), and
    # Ctrl-C, a closed terminal, `kill` and `make down` must all end in the same orderly stop.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    die_with_parent(signal.SIGTERM)  # make (or whoever started us) gone: stop in order
    bind_children_to_this_process()  # we gone, however: every part goes too
    stack = Stack(root, MakeWatch())
    try:
        stack.start()
        stack.print_urls()
        stack.up = True
        stack.supervise()
    except KeyboardInterrupt:
        _out(f"\nstopping (at most {STOP_BOUND_S:.0f} s; usually seconds) …")
        return 0
    except AlreadyRunning as exc:
        _out(f"\nerror: {exc}; stop it with `make down` or Ctrl-C in its terminal", stream=sys.stderr)
        return 1
    except Exception as exc:
        _out(f"\nerror: {exc}", stream=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        if stack.record.claimed:  # another make up's parts are never ours to stop
            stack.stop()
    return 0


def down(root: Path) -> int:
    """`make down`: the running `make up` of this folder stopped as Ctrl-C would (SIGTERM), waiting
    for its orderly stop; else its leftovers stopped; else nothing to do."""
    record = StackRecord(root.resolve() / ".local")
    running = record.running_orchestrator()
    if running is not None:
        bound = record.stop_bound_s or STOP_BOUND_S  # as the running one was started
        print(f"stopping make up (pid {running.pid}) in order, at most {bound:.0f} s; its output shows how")
        os.kill(running.pid, signal.SIGCONT)  # a suspended one (Ctrl-Z) could not stop
        os.kill(running.pid, signal.SIGTERM)
        deadline = time.monotonic() + bound
        while running.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        if running.alive():
            os.kill(running.pid, signal.SIGKILL)  # its parts die with it (their death signal)
            while running.alive():  # it holds the lock until it is gone
                time.sleep(0.1)
    leftovers = record.stop_leftovers()
    for part in leftovers:
        print(f"stopped {part.name} (pid {part.pid}), left by an earlier make up", flush=True)
    if running is None and not leftovers:
        print(f"nothing of make up runs for {root.resolve()}")
    return 0
