"""The local stack's supervision, drain and record, on real processes where it matters (a `sleep` as the
part, signals, /proc), with a clock of our own where time decides (backoff, budget, stall)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack import drain, parent
from devstack.processes import exit_status, spawn, start_time
from devstack.record import AlreadyRunning, StackRecord
from devstack.stack import Stack
from devstack.supervisor import RESTART_BUDGET, GaveUp, Supervisor, last_lines


class SleepPart:
    """A part that is a real process (`sleep`), its log a real file."""

    def __init__(self, name: str, log_path: Path, *, fail_starts: int = 0) -> None:
        self.name, self.log_path, self.fail_starts = name, log_path, fail_starts
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("port 5 is taken")
        self.process = spawn(["sleep", "60"], log_path=self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _killed(part: SleepPart) -> None:
    assert part.process is not None
    part.process.send_signal(signal.SIGKILL)
    part.process.wait()


def test_a_part_that_exits_is_reported_with_its_status_and_log_and_restarted_after_its_backoff(
    tmp_path: Path,
) -> None:
    (tmp_path / "broker.log").write_text("".join(f"line {i}\n" for i in range(30)))
    broker, clock, said, started = SleepPart("broker", tmp_path / "broker.log"), Clock(), [], []
    broker.start()
    supervisor = Supervisor([broker], said.append, started.append, clock)
    first = broker.process
    assert first is not None
    try:
        _killed(broker)
        supervisor.check()
        assert said[0] == f"broker exited unexpectedly (killed by SIGKILL, pid {first.pid})"
        assert said[1:11] == [f"  | line {i}" for i in range(20, 30)]  # its last ten lines
        assert said[-1] == "restarting broker in 0.5 s"
        assert broker.starts == 1  # not before the backoff
        clock.now += 0.5
        supervisor.check()
        assert broker.starts == 2 and broker.process is not None and broker.process.poll() is None
        assert started == [broker] and supervisor.restarts == {"broker": 1}
        assert said[-1].startswith("broker restarted (pid ")
        _killed(broker)  # a second exit in the window: the backoff doubles
        supervisor.check()
        assert said[-1] == "restarting broker in 1.0 s"
    finally:
        broker.stop()


def test_a_part_that_keeps_failing_stops_the_stack_instead_of_looping(tmp_path: Path) -> None:
    engine, clock, said = SleepPart("kpi-engine", tmp_path / "engine.log", fail_starts=100), Clock(), []
    engine.process = spawn(["true"], log_path=None)
    engine.process.wait()
    supervisor = Supervisor([engine], said.append, lambda _p: None, clock)
    with pytest.raises(
        GaveUp, match="kpi-engine failed 5 times, the last start with: port 5 is taken; stopping"
    ):
        for _ in range(50):
            supervisor.check()
            clock.now += 1
    assert engine.starts == RESTART_BUDGET - 1  # the exit, then every failed start, counts
    assert "kpi-engine did not start (port 5 is taken); next try in 1.0 s" in said


def test_failures_spread_beyond_the_window_do_not_stop_the_stack(tmp_path: Path) -> None:
    ingest, clock = SleepPart("ingest", tmp_path / "ingest.log"), Clock()
    ingest.start()
    supervisor = Supervisor([ingest], lambda _line: None, lambda _p: None, clock)
    try:
        for _ in range(RESTART_BUDGET * 2):  # one crash every 61 s: never 5 within 120 s
            _killed(ingest)
            supervisor.check()
            clock.now += 61
            supervisor.check()
        assert supervisor.restarts == {"ingest": RESTART_BUDGET * 2}
    finally:
        ingest.stop()


def test_a_part_given_up_is_not_counted_again_and_the_stop_can_still_bring_back_the_others(
    tmp_path: Path,
) -> None:
    """Over its budget the part stops the stack; the stop's bring_back then neither raises nor counts
    it again, and brings back what else the drain needs."""
    broker = SleepPart("broker", tmp_path / "b.log", fail_starts=100)
    engine = SleepPart("kpi-engine", tmp_path / "e.log")
    broker.process = spawn(["true"], log_path=None)
    broker.process.wait()
    engine.start()
    clock = Clock()
    supervisor = Supervisor([broker, engine], lambda _line: None, lambda _p: None, clock)
    try:
        with pytest.raises(GaveUp):
            for _ in range(50):
                supervisor.check()
                clock.now += 1
        _killed(engine)
        assert supervisor.bring_back(["broker", "kpi-engine"]) == ["broker"]
        assert engine.process is not None and engine.process.poll() is None
    finally:
        engine.stop()


def test_an_optional_part_that_keeps_failing_is_left_stopped_and_the_stack_runs_on(tmp_path: Path) -> None:
    prometheus, said = SleepPart("prometheus", tmp_path / "p.log", fail_starts=100), []
    prometheus.process = spawn(["true"], log_path=None)
    prometheus.process.wait()
    clock = Clock()
    supervisor = Supervisor([prometheus], said.append, lambda _p: None, clock)
    for _ in range(20):
        supervisor.check()  # never raises
        clock.now += 1
    assert prometheus.starts == RESTART_BUDGET - 1
    assert said[-1].startswith(
        "prometheus failed 5 times, the last start with: port 5 is taken; left stopped"
    )


def test_bring_back_restarts_what_the_drain_needs_at_once_and_names_what_could_not(tmp_path: Path) -> None:
    broker = SleepPart("broker", tmp_path / "b.log")
    engine = SleepPart("kpi-engine", tmp_path / "e.log")
    for part in (broker, engine):
        part.start()
    supervisor = Supervisor([broker, engine], lambda _line: None, lambda _p: None, Clock())
    try:
        _killed(broker)
        _killed(engine)
        engine.fail_starts = 1
        assert supervisor.bring_back(["broker", "kpi-engine"]) == ["kpi-engine"]
        assert broker.process is not None and broker.process.poll() is None
    finally:
        broker.stop()
        engine.stop()


def test_exit_status_names_the_signal() -> None:
    assert exit_status(-9) == "killed by SIGKILL"
    assert exit_status(3) == "exit 3"


def test_last_lines_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert last_lines(tmp_path / "none.log", 5) == []


# --- the record: leftovers of an earlier make up, its own and only its own ---


def test_the_next_make_up_stops_its_own_leftovers_and_only_those(tmp_path: Path) -> None:
    record = StackRecord(tmp_path)
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record.write({"broker": leftover.pid, "s3": stranger.pid}, {})
        # The stranger's pid was reused by another program since: its start time differs.
        body = json.loads(record.path.read_text())
        body["parts"]["s3"]["started"] -= 1
        body["orchestrator"]["pid"] = 2**22 + 1  # the orchestrator is gone
        record.path.write_text(json.dumps(body))
        assert record.running_orchestrator() is None
        stopped = record.stop_leftovers()
        assert [(p.name, p.pid) for p in stopped] == [("broker", leftover.pid)]
        assert leftover.wait(timeout=20) == -signal.SIGTERM
        assert stranger.poll() is None  # not ours: untouched
        assert not record.path.exists()
    finally:
        for process in (leftover, stranger):
            process.kill()
            process.wait()


def test_one_make_up_per_folder_and_a_running_one_is_recognised_by_its_lock(tmp_path: Path) -> None:
    running_one = StackRecord(tmp_path)
    assert StackRecord(tmp_path).running_orchestrator() is None
    running_one.claim()
    running_one.write({}, {})  # this process as the orchestrator
    other = StackRecord(tmp_path)
    found = other.running_orchestrator()
    assert found is not None and found.started == start_time(found.pid)
    with pytest.raises(AlreadyRunning, match=f"make up already runs for this folder \\(pid {found.pid}\\)"):
        other.claim()
    assert other.stop_leftovers() == []  # a running make up's parts are never leftovers
    other.forget()  # not the lock's holder: the record stays
    assert running_one.path.exists()


def test_the_next_make_up_stops_the_leftovers_its_record_names_before_writing_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier make up SIGKILLed, one of its parts alive (a platform without the death signal): the
    next one, once it holds the folder's lock, stops it and says so — and only then records itself."""
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        earlier = StackRecord(tmp_path / ".local")
        earlier.path.parent.mkdir(parents=True)
        earlier.write({"broker": leftover.pid}, {})
        body = json.loads(earlier.path.read_text())
        body["orchestrator"]["pid"] = 2**22 + 1  # gone
        earlier.path.write_text(json.dumps(body))
        stack = Stack(tmp_path, parent.MakeWatch())
        stack.claim_folder()
        assert leftover.wait(timeout=20) == -signal.SIGTERM
        assert (
            f"stopped what an earlier make up left running: broker (pid {leftover.pid})"
            in capsys.readouterr().out
        )
        orchestrator, parts = StackRecord(tmp_path / ".local").read()
        assert orchestrator is not None and orchestrator.pid == os.getpid() and parts == []
    finally:
        leftover.kill()
        leftover.wait()


def test_an_unreadable_record_means_nothing_recorded(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{not json")
    assert StackRecord(tmp_path).read() == (None, [])


def test_a_part_dies_with_the_orchestrator_however_it_dies(tmp_path: Path) -> None:
    """The death pact: an orchestrator (a Python process binding its children) is SIGKILLed; its part
    (a `sleep` it spawned) gets SIGTERM from the kernel at once."""
    pid_file = tmp_path / "child.pid"
    orchestrator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from devstack.processes import bind_children_to_this_process, spawn\n"
            "bind_children_to_this_process()\n"
            "child = spawn(['sleep', '60'], log_path=None)\n"
            f"Path({str(pid_file)!r}).write_text(str(child.pid))\n"
            "time.sleep(60)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert start_time(child) is not None
        orchestrator.kill()
        orchestrator.wait()
        deadline = time.monotonic() + 10
        while start_time(child) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert start_time(child) is None
    finally:
        orchestrator.kill()


# --- make's own signals ---


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopping_signal_leaving_makes_caught_set_is_seen(signum: signal.Signals) -> None:
    """A stand-in for make: handles the three signals, and on one puts it back to the default and waits
    (what make does before it waits for its children)."""
    make = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "def fatal(s, f):\n"
            "    signal.signal(s, signal.SIG_DFL)\n"
            "    time.sleep(60)\n"
            "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):\n"
            "    signal.signal(s, fatal)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert make.stdout is not None and make.stdout.readline() == b"ready\n"
        caught = parent.caught_signals(make.pid)
        assert caught is not None and all(caught >> (s - 1) & 1 for s in (2, 15, 1))
        make.send_signal(signum)
        deadline = time.monotonic() + 10
        while (parent.caught_signals(make.pid) or 0) >> (signum - 1) & 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = parent.caught_signals(make.pid)
        assert after is not None and not after >> (signum - 1) & 1
    finally:
        make.kill()
        make.wait()


# --- the drain says only what it knows ---


class Metrics:
    def __init__(self) -> None:
        self.text = ""
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{server.server_port}/metrics"
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = metrics.text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        return Handler

    def set(self, *, caught_up: bool, left: int, last_fetch: float) -> None:
        self.text = (
            f"vr_kpi_consumer_caught_up {1.0 if caught_up else 0.0}\n"
            f'vr_kpi_consumer_lag_messages{{topic="vr.events.v1",partition="0"}} {float(left)}\n'
            f"vr_kpi_consumer_last_fetch_timestamp_seconds {last_fetch}\n"
        )


@pytest.fixture
def metrics() -> Metrics:
    served = Metrics()
    yield served
    served.server.shutdown()


def test_the_drain_never_shows_a_number_from_an_old_fetch_and_stops_when_nothing_is_answered(
    metrics: Metrics,
) -> None:
    """The broker away: the engine's lag is 0 and it says caught up, from a fetch answered long ago.
    Nothing is confirmed, no number is shown, and the drain gives up after STALL_S, saying where the
    unconfirmed events are safe."""
    clock = Clock()
    metrics.set(caught_up=True, left=0, last_fetch=clock.now - 60)
    said: list[str] = []

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert not drain.wait_until_drained(metrics.url, 600, said.append, clock.now - 70, clock, sleep)
    assert not any("to go" in line or "has counted every" in line for line in said), said
    assert said[0] == "the KPI engine is waiting for the broker; how many events are left is not known yet"
    assert said[-1].startswith(f"the KPI engine has had no answer from the broker for {drain.STALL_S:.0f} s;")
    assert "safe in the broker's durable storage" in said[-1]
    assert clock.now - 1000.0 <= drain.STALL_S + drain.POLL_SECONDS


def test_the_drain_counts_down_from_fresh_fetches_and_confirms_twice(metrics: Metrics) -> None:
    clock, said = Clock(), []
    lags = iter([500, 20, 0, 0])

    def sleep(seconds: float) -> None:
        clock.now += seconds
        left = next(lags)
        metrics.set(caught_up=left == 0, left=left, last_fetch=clock.now - 0.5)

    metrics.set(caught_up=False, left=1_200, last_fetch=clock.now)
    assert drain.wait_until_drained(metrics.url, 600, said.append, clock.now - 1, clock, sleep)
    assert said == [
        "the KPI engine is counting accepted events: 1,200 to go",
        "the KPI engine is counting accepted events: 500 to go",
        "the KPI engine is counting accepted events: 20 to go",
        "the KPI engine is counting accepted events: 0 to go",
        "the KPI engine has counted every accepted event",
    ]


def test_the_same_snapshot_read_twice_confirms_once(metrics: Metrics) -> None:
    """The engine's loop busy after one caught-up pass: its gauges do not move. Two reads of them are
    one fetch, not two; the drain waits for a second fetch."""
    clock, said = Clock(), []
    fetches = iter([clock.now + 0.2, clock.now + 0.2, clock.now + 0.2, clock.now + 3.0])

    def sleep(seconds: float) -> None:
        clock.now += seconds
        metrics.set(caught_up=True, left=0, last_fetch=next(fetches))

    metrics.set(caught_up=True, left=0, last_fetch=clock.now + 0.2)
    assert drain.wait_until_drained(metrics.url, 600, said.append, clock.now, clock, sleep)
    assert len(said) == 5 and said[-1] == "the KPI engine has counted every accepted event"


def test_the_drain_reports_an_engine_that_does_not_answer() -> None:
    said: list[str] = []
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert not drain.wait_until_drained("http://127.0.0.1:1/metrics", 60, said.append, 0, clock, sleep)
    assert said == [f"the KPI engine does not answer; {drain.UNCONFIRMED}"]
    assert clock.now - 1000.0 == drain.ANSWER_GRACE_S  # it was given time to start serving


def test_the_drain_confirms_nothing_from_a_fetch_older_than_the_last_acceptance(metrics: Metrics) -> None:
    """Caught up, lag 0, the fetch 2 s old (fresh) — but ingest stopped 1 s ago: events it accepted
    after that fetch may be missing from it. Not confirmed until a later fetch says so."""
    clock, said = Clock(), []
    fetches = iter([clock.now - 2, clock.now - 2, clock.now + 0.5, clock.now + 1.5])

    def sleep(seconds: float) -> None:
        clock.now += seconds
        metrics.set(caught_up=True, left=0, last_fetch=next(fetches))

    metrics.set(caught_up=True, left=0, last_fetch=clock.now - 2)
    assert drain.wait_until_drained(metrics.url, 600, said.append, clock.now - 1, clock, sleep)
    # three rounds from fetches before the last acceptance, then two after it: the second confirms
    assert said.count("the KPI engine is counting accepted events: 0 to go") == 4 and len(said) == 5
