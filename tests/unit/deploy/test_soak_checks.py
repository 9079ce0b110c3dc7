"""The soak's invariants (deploy/devstack/devstack/soak/checks.py) fail on what violates them and hold
on what does not; its fault schedule is a function of the seed that hits every part in turn; the HL7
pipeline's resending and the stack's start and stop end in bounded time or fail aloud."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from devstack.soak.api import Stuck
from devstack.soak.billing import down_windows
from devstack.soak.checks import (
    AnswerKind,
    Booked,
    CountedValue,
    Delivery,
    FeedItem,
    StatementCheck,
    check_answers,
    check_booked_events,
    check_counts,
    check_faults,
    check_restarts,
    check_statements,
    check_webhooks,
)
from devstack.soak.faults import (
    PARTS,
    ComposeTarget,
    DevstackTarget,
    Fault,
    FaultOutcome,
    process_start_ticks,
    schedule,
)
from devstack.soak.pipelines import Hl7Pipeline
from devstack.soak.report import MARKER, write_section
from devstack.soak.stackrun import MARKER as SOAK_FOLDER_MARKER
from devstack.soak.stackrun import LocalStack, StackFailed, prepare_root

D = Decimal


# --- the schedule -----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_fault_schedule() -> None:
    assert schedule(42, 600, (20, 60)) == schedule(42, 600, (20, 60))


def test_another_seed_gives_another_schedule() -> None:
    assert schedule(42, 600, (20, 60)) != schedule(43, 600, (20, 60))


def test_faults_are_spaced_within_the_interval_and_end_before_the_duration() -> None:
    faults = schedule(7, 3600, (20, 60))
    gaps = [b.at - a.at for a, b in itertools.pairwise(faults)]
    assert 20 <= faults[0].at <= 60 and all(19.99 <= g <= 60.01 for g in gaps)
    assert faults[-1].at < 3600 and len(faults) >= 3600 // 60
    assert {f.part for f in faults} == set(PARTS)  # an hour's faults reach every part
    assert "prometheus" not in {f.part for f in faults}


def test_a_short_run_with_faults_every_10_to_20_s_has_several() -> None:
    assert 3 <= len(schedule(20261207, 60, (10, 20))) <= 6


@pytest.mark.parametrize("seed", [1, 20261207, 2036773569])
def test_every_part_is_killed_once_in_each_round_of_faults(seed: int) -> None:
    faults = schedule(seed, 7200, (20, 60))
    rounds = [faults[i : i + len(PARTS)] for i in range(0, len(faults) - len(PARTS) + 1, len(PARTS))]
    assert len(rounds) >= 10
    assert all(sorted(f.part for f in r) == sorted(PARTS) for r in rounds)
    assert len({tuple(f.part for f in r) for r in rounds}) > 1  # shuffled, not one fixed order


def test_the_rounds_are_of_the_parts_given() -> None:
    faults = schedule(3, 600, (10, 20), parts=("gateway", "broker"))
    assert all(sorted(f.part for f in faults[i : i + 2]) == ["broker", "gateway"] for i in range(0, 30, 2))
    with pytest.raises(ValueError, match="no part"):
        schedule(3, 600, (10, 20), parts=())


def test_a_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="MIN <= MAX"):
        schedule(1, 60, (30, 10))


def test_the_receivers_down_windows_are_seeded_and_apart() -> None:
    windows = down_windows(5, 600)
    assert windows == down_windows(5, 600) and windows
    assert all(10 <= w.end - w.start <= 30 and w.mode in ("closed", "503") for w in windows[:-1])
    assert all(b.start - a.end >= 20 for a, b in itertools.pairwise(windows))


def test_a_process_is_known_by_its_start_time() -> None:
    assert isinstance(process_start_ticks(os.getpid()), int)
    assert process_start_ticks(2**22 + 12345) is None  # above pid_max: no such process


# --- counted exactly once ---------------------------------------------------------------------------


def _count(observed: Decimal | None, expected: Decimal = Decimal(120)) -> CountedValue:
    return CountedValue("json", "clean_claim_rate", "json-1", "sample_size", expected, observed)


def test_counts_equal_to_the_tally_hold() -> None:
    assert check_counts([_count(D(120)), _count(D("0.00"), D(0))]) == []


def test_an_event_counted_twice_or_lost_is_a_violation() -> None:
    twice, lost = check_counts([_count(D(121)), _count(D(119))])
    assert "is 121" in twice and "had 120 accepted" in twice
    assert "is 119" in lost


def test_no_value_where_events_were_accepted_is_a_violation() -> None:
    (missing,) = check_counts([_count(None)])
    assert "no value" in missing


def test_nothing_compared_is_a_violation() -> None:
    assert check_counts([]) != []


# --- statements ---------------------------------------------------------------------------------------


def _statement(status: str, total: str, recomputed: str, adjustments: str = "0") -> StatementCheck:
    return StatementCheck(
        contract="soak-a",
        period="2026-03",
        status=status,
        total=D(total),
        lines={"savings": D(total)},
        recomputed_total=D(recomputed),
        recomputed_lines={"savings": D(recomputed)},
        adjustments_total=D(adjustments),
        adjustments_lines={"savings": D(adjustments)},
    )


def test_a_statement_equal_to_its_recomputation_holds() -> None:
    assert check_statements([_statement("draft", "50000.00", "50000.00")]) == []


def test_a_statement_that_differs_from_its_recomputation_is_a_violation() -> None:
    (wrong,) = [v for v in check_statements([_statement("draft", "50000.00", "49950.00")]) if "total" in v]
    assert "recomputed 49950.00" in wrong


def test_final_plus_adjustments_equal_to_the_recomputation_holds() -> None:
    assert check_statements([_statement("final", "50000.00", "49900.00", adjustments="-100.00")]) == []


def test_a_lost_adjustment_is_a_violation() -> None:
    found = check_statements([_statement("final", "50000.00", "49900.00", adjustments="-50.00")])
    assert any("final 50000.00 + adjustments -50.00 = 49950.00, recomputed 49900.00" in v for v in found)
    assert any("line savings is 49950.00" in v for v in found)


def test_a_line_wrong_while_the_total_is_right_is_a_violation() -> None:
    split = StatementCheck(
        "soak-c",
        "2026-Q1",
        "draft",
        D(100),
        {"savings": D(100), "contract_caps": D(0)},
        D(100),
        {"savings": D(120), "contract_caps": D(-20)},
    )
    assert len(check_statements([split])) == 2


# --- webhooks and the feed ----------------------------------------------------------------------------

FEED = [FeedItem("evt_1", "contract.updated"), FeedItem("evt_2", "statement.finalized")]
DELIVERED = [
    Delivery("evt_1", "contract.updated", "aa"),
    Delivery("evt_2", "statement.finalized", "bb"),
    Delivery("evt_2", "statement.finalized", "bb"),  # delivered twice, same body: at least once
]


def test_every_feed_event_delivered_with_a_stable_id_holds() -> None:
    assert check_webhooks(FEED, DELIVERED, unverified=0) == []


def test_a_feed_event_never_delivered_is_a_violation() -> None:
    (lost,) = check_webhooks([*FEED, FeedItem("evt_3", "statement.adjusted")], DELIVERED, 0)
    assert "evt_3" in lost and "never delivered" in lost


def test_an_event_twice_in_the_feed_is_a_violation() -> None:
    (twice,) = check_webhooks([*FEED, FEED[1]], DELIVERED, 0)
    assert "evt_2" in twice and "more than once" in twice


def test_one_id_with_two_bodies_is_a_violation() -> None:
    (unstable,) = check_webhooks(FEED, [*DELIVERED, Delivery("evt_1", "contract.updated", "cc")], 0)
    assert "evt_1" in unstable and "2 different bodies" in unstable


def test_a_delivery_not_in_the_feed_or_unverifiable_is_a_violation() -> None:
    found = check_webhooks(FEED, [*DELIVERED, Delivery("evt_9", "statement.ready", "dd")], 2)
    assert any("evt_9" in v and "not in the feed" in v for v in found)
    assert any("2 deliveries failed" in v for v in found)


def test_an_empty_feed_is_a_violation() -> None:
    assert check_webhooks([], [], 0) != []


# --- answers ------------------------------------------------------------------------------------------


def test_2xx_409_where_expected_and_429_503_with_retry_after_hold() -> None:
    counts = {
        AnswerKind("POST /v1/events", 202, False): 100,
        AnswerKind("POST /v1/events", 503, True): 4,
        AnswerKind("POST /v1/hl7v2", 429, True): 2,
        AnswerKind("POST /v1/contracts/{id}/settlements/{period}/finalize", 409, True, True): 1,
    }
    assert check_answers(counts) == []


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        (AnswerKind("POST /v1/events", 502, False), "answered 502"),
        (AnswerKind("POST /v1/events", 504, False), "answered 504"),
        (AnswerKind("POST /v1/events", 500, False), "answered 500"),
        (AnswerKind("POST /v1/events", 503, False), "503 without Retry-After"),
        (AnswerKind("POST /v1/fhir", 429, False), "429 without Retry-After"),
        (AnswerKind("POST /v1/contracts/{id}/settlements/{period}/finalize", 409, True), "answered 409"),
        (AnswerKind("GET /v1/kpis/{kpi}/values", 404, False), "answered 404"),
    ],
)
def test_any_other_answer_is_a_violation(kind: AnswerKind, said: str) -> None:
    (wrong,) = check_answers({AnswerKind("POST /v1/events", 202, False): 10, kind: 3})
    assert said in wrong and "3 time(s)" in wrong


# --- faults -------------------------------------------------------------------------------------------


PLANNED = [Fault(30.0, "broker"), Fault(60.0, "postgres"), Fault(90.0, "gateway")]


def test_every_part_back_holds_and_one_not_back_or_not_killed_is_a_violation() -> None:
    back = FaultOutcome(30.0, 30.1, "broker", 123, 4.2)
    assert check_faults(PLANNED[:1], [back], asked=True) == []
    gone = FaultOutcome(60.0, 60.2, "postgres", 456, None)
    missed = FaultOutcome(90.0, 90.0, "gateway", None, None, "not in the supervisor's record", injected=False)
    found = check_faults(PLANNED, [back, gone, missed], asked=True)
    assert len(found) == 2 and "postgres" in found[0] and "not injected" in found[1]


def test_a_planned_fault_never_injected_is_a_violation() -> None:
    back = FaultOutcome(30.0, 30.1, "broker", 123, 4.2)
    found = check_faults(PLANNED, [back], asked=True)
    assert found == [
        "fault planned at 60.0 s on postgres was never injected",
        "fault planned at 90.0 s on gateway was never injected",
    ]


def test_no_fault_where_faults_were_asked_for_is_a_violation() -> None:
    (none,) = check_faults([], [], asked=True)
    assert "none was planned" in none
    assert check_faults([], [], asked=False) == []  # --no-faults


def test_restarts_equal_to_the_kills_hold() -> None:
    restarts = {"postgres": 1, "kpi-engine": 2, "gateway": 0, "prometheus": 0}
    assert check_restarts(restarts, {"postgres": 1, "kpi-engine": 2}) == []


def test_a_part_that_restarted_by_itself_or_was_never_restarted_is_a_violation() -> None:
    crashed, unnoticed = check_restarts({"gateway": 3, "postgres": 0}, {"gateway": 1, "postgres": 1})
    assert "gateway restarted 3 time(s) but was killed 1 time(s)" in crashed and "by itself" in crashed
    assert "postgres was killed 1 time(s) but restarted 0" in unnoticed
    (loop,) = check_restarts({"settlement": 7, "gateway": 0}, {})  # no fault at all: a restart loop
    assert "settlement restarted 7" in loop


def test_restarts_that_cannot_be_read_are_a_violation() -> None:
    assert check_restarts({}, {"gateway": 1}) != []


# --- every booked thing has its event -------------------------------------------------------------------

BOOKED_FEED = [
    FeedItem("evt_1", "contract.updated", "soak-a"),
    FeedItem("evt_2", "statement.ready", "soak-a", "2026-01"),
    FeedItem("evt_3", "statement.finalized", "soak-a", "2026-01"),
    FeedItem("evt_4", "statement.adjusted", "soak-a", "2026-01", "17"),
]


def test_a_finalize_and_an_adjustment_with_their_events_hold() -> None:
    booked = [Booked("soak-a", "2026-01"), Booked("soak-a", "2026-01"), Booked("soak-a", "2026-01", "17")]
    assert check_booked_events(BOOKED_FEED, booked) == []


def test_a_finalize_without_its_event_is_a_violation() -> None:
    (lost,) = check_booked_events(BOOKED_FEED, [Booked("soak-a", "2026-02")])
    assert "soak-a 2026-02 was finalized" in lost and "has 0 statement.finalized" in lost
    ready_only = [item for item in BOOKED_FEED if item.event_type != "statement.finalized"]
    assert check_booked_events(ready_only, [Booked("soak-a", "2026-01")]) != []  # ready is not final


def test_a_period_finalized_twice_in_the_feed_is_a_violation() -> None:
    (twice,) = check_booked_events([*BOOKED_FEED, BOOKED_FEED[2]], [Booked("soak-a", "2026-01")])
    assert "has 2 statement.finalized" in twice


def test_an_adjustment_without_its_event_is_a_violation() -> None:
    (lost,) = check_booked_events(BOOKED_FEED, [Booked("soak-a", "2026-01", "18")])
    assert "adjustment 18 of soak-a 2026-01" in lost and "no statement.adjusted" in lost
    (elsewhere,) = check_booked_events(BOOKED_FEED, [Booked("soak-a", "2026-02", "17")])
    assert "adjustment 17 of soak-a 2026-02" in elsewhere


# --- the report ---------------------------------------------------------------------------------------


def test_the_report_replaces_what_follows_the_marker_and_keeps_the_rest(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# Reliability\n\nHow the soak works.\n\n{MARKER}\n\nold run\n")
    write_section(doc, "new run\n")
    text = doc.read_text()
    assert text.startswith("# Reliability\n\nHow the soak works.") and "old run" not in text
    assert text.endswith(f"{MARKER}\n\nnew run\n")


# --- the injector's kill ------------------------------------------------------------------------------


def _record(path: Path, part: str, pid: int, started: int | None) -> None:
    entry = {"pid": pid, "started": started, "restarts": 2}
    path.write_text(json.dumps({"orchestrator": {}, "parts": {part: entry}}))


def test_the_injector_kills_the_recorded_process(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        record = tmp_path / "stack.json"
        _record(record, "ingest", victim.pid, process_start_ticks(victim.pid))
        target = DevstackTarget(record, [], httpx.AsyncClient())
        kill = target.kill("ingest")
        assert kill.injected and kill.pid == victim.pid
        assert victim.wait(5) == -signal.SIGKILL
        assert target.restarts() == {"ingest": 2}
    finally:
        victim.kill()


def test_a_pid_that_is_not_the_recorded_process_any_more_is_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        record = tmp_path / "stack.json"
        started = process_start_ticks(bystander.pid)
        assert started is not None
        _record(record, "ingest", bystander.pid, started - 1)  # the recorded process ended; its pid reused
        kill = DevstackTarget(record, [], httpx.AsyncClient()).kill("ingest")
        assert not kill.injected and "not the recorded process" in kill.note
        assert bystander.poll() is None
        missing = DevstackTarget(tmp_path / "absent.json", [], httpx.AsyncClient()).kill("gateway")
        assert not missing.injected
    finally:
        bystander.kill()
        bystander.wait()


class FakeDocker:
    """`docker` as the compose target calls it: a container that runs, is killed, and is started again."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.started_at = "2026-12-07T10:00:00Z"
        self.running = True

    def __call__(self, command: list[str]) -> str:
        self.calls.append(command)
        if command[-2:] == ["-q", "kafka"]:
            return "c0ffee"
        if command[:2] == ["docker", "inspect"]:
            return "3" if "RestartCount" in command[3] else f"{str(self.running).lower()} {self.started_at}"
        if "kill" in command:
            self.running = False
        if "up" in command:
            self.running, self.started_at = True, "2026-12-07T10:05:00Z"
        return ""


def test_the_compose_target_kills_the_service_and_starts_it_again(tmp_path: Path) -> None:
    docker = FakeDocker()
    target = ComposeTarget(tmp_path / "docker-compose.yml", [], httpx.AsyncClient(), run=docker)
    kill = target.kill("broker")
    assert kill.injected and "kill -s KILL kafka" in kill.note
    compose = ["docker", "compose", "-f", str(tmp_path / "docker-compose.yml")]
    assert [*compose, "kill", "-s", "KILL", "kafka"] in docker.calls
    assert [*compose, "up", "-d", "--no-deps", "kafka"] in docker.calls
    assert target.restarts() == {"broker": 3}
    assert "s3" not in ComposeTarget.parts  # compose runs no S3 server


async def test_the_compose_target_is_back_only_with_a_new_container_start(tmp_path: Path) -> None:
    docker = FakeDocker()
    target = ComposeTarget(tmp_path / "docker-compose.yml", [], httpx.AsyncClient(), run=docker)
    target.kill("broker")
    assert await target.recovered("broker", None)  # running again, started later; no URL to wait for
    docker.started_at = "2026-12-07T10:00:00Z"  # the start time from before the kill: not back
    assert not await target.recovered("broker", None)


# --- the HL7 pipeline's resending ---------------------------------------------------------------------

AR = "MSH|^~\\&|VR|||||||ACK|1|P|2.5\rMSA|AR|1\r"


class RelayAnsweringAR:
    """An MLLP connection whose relay answers every message AR."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def writeblock(self, block: bytes) -> None:
        self.sent.append(block)

    async def drain(self) -> None:
        return None

    async def readblock(self) -> bytes:
        return AR.encode()


async def test_a_message_answered_ar_after_the_traffic_stopped_is_given_up_as_a_violation() -> None:
    relay = RelayAnsweringAR()
    pipeline = Hl7Pipeline(0, ["hl7-1"], 1, lambda: 0.0, again_after_s=0.01, after_stop_s=0.05)
    stop = asyncio.Event()
    stop.set()
    assert not await pipeline.until_answered(relay, relay, "MSH|^~\\&|A01\rPID|1", stop)
    assert len(relay.sent) >= 2 and pipeline.rejected_again == len(relay.sent)
    (given_up,) = pipeline.tally.refused
    assert "still answered AR" in given_up and "after the traffic stopped" in given_up


async def test_a_message_answered_ar_for_too_long_stops_the_soak() -> None:
    relay = RelayAnsweringAR()
    pipeline = Hl7Pipeline(0, ["hl7-1"], 1, lambda: 0.0, again_after_s=0.01, retry_bound_s=0.05)
    with pytest.raises(Stuck, match="still answered AR"):
        await pipeline.until_answered(relay, relay, "MSH|^~\\&|A01\rPID|1", asyncio.Event())


# --- the stack's folder, start and stop -------------------------------------------------------------------


def test_a_soak_folder_is_wiped_only_after_what_runs_there_is_stopped(tmp_path: Path) -> None:
    root = tmp_path / "soak"
    root.mkdir()
    (root / SOAK_FOLDER_MARKER).write_text("")
    (root / "up.log").write_text("old run")
    seen: list[bool] = []
    prepare_root(root, stop=lambda r: seen.append((r / "up.log").exists()))
    assert seen == [True]  # stopped while the folder was still there
    assert not (root / "up.log").exists() and (root / SOAK_FOLDER_MARKER).exists()


def test_a_folder_the_soak_did_not_make_is_neither_stopped_nor_wiped(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    stopped: list[Path] = []
    with pytest.raises(StackFailed, match="not a soak folder"):
        prepare_root(tmp_path, stop=stopped.append)
    assert stopped == [] and (tmp_path / "notes.txt").exists()


def test_a_stack_that_had_already_exited_fails_its_stop_with_the_code_and_the_log(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, tmp_path)
    stack.log_path.write_text("starting\nerror: kpi-engine exited 5 times within 60 s; stopping the stack\n")
    stack._process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    stack._process.wait()
    with pytest.raises(StackFailed) as failed:
        stack.stop()
    assert "already exited with 1" in str(failed.value) and "kpi-engine exited 5 times" in str(failed.value)
