"""The soak of docs/reliability.md, short: about a minute of traffic (JSON, FHIR and HL7 through the
MLLP relay, contracts finalizing while late data arrives, a billing receiver down part of the time)
while a part of the stack is SIGKILLed every 10–20 s, with a fixed seed chosen so that its four faults
kill the KPI engine and PostgreSQL among others. `make soak` is the long run; this proves the harness
and the invariants on every `make test`.

It runs `python -m devstack.soak` as a process, as `make soak` does: its own stack on free ports under
a temporary folder, the supervisor restarting each part killed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.soak.faults import schedule

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
# schedule(SEED, 60, (10, 20)): kpi-engine at 10 s, postgres at 21 s, settlement at 35 s, s3 at 49 s;
# the billing receiver is down 22–39 s (down_windows), so its retried deliveries arrive before the end.
SEED = 20261701


def test_a_short_soak_with_faults_keeps_every_invariant(tmp_path: Path) -> None:
    planned = [f.part for f in schedule(SEED, 60, (10, 20))]
    assert {"kpi-engine", "postgres"} <= set(planned) and len(planned) >= 3, planned
    report = tmp_path / "reliability.md"
    report.write_text("# Reliability\n\n<!-- soak report -->\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.soak",
            "--minutes",
            "1",
            "--seed",
            str(SEED),
            "--fault-every",
            "10",
            "20",
            "--root",
            str(tmp_path / "soak"),
            "--report",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = done.stdout + done.stderr
    assert f"seed {SEED}" in output  # printed, so a failure can be repeated
    assert done.returncode == 0, output[-8000:]
    injected = re.findall(r"fault: (\S+) \(pid \d+: SIGKILL", output)
    recovered = re.findall(r"(\S+) back after [\d.]+ s", output)
    assert injected == planned and len(recovered) >= 3, output[-8000:]
    assert {"kpi-engine", "postgres"} <= set(recovered), output[-8000:]
    written = report.read_text()
    assert "every invariant holds" in written and f"Seed {SEED}" in written
    assert f"{len(planned)} of {len(planned)} planned faults injected" in written
    assert written.count("| holds |") == 7
