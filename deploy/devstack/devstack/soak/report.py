"""The soak's report in markdown: the machine and date, the faults and how long each part took to come
back, restarts per part, events per second minute by minute, and each invariant with its result. It
replaces whatever follows the marker line in the report file (docs/reliability.md)."""

from __future__ import annotations

import math
import os
import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from devstack.soak.faults import FaultOutcome

MARKER = "<!-- soak report -->"
SHOWN_PER_INVARIANT = 20


@dataclass(frozen=True)
class Outcome:
    seed: int
    minutes: float
    command: str
    faults: Sequence[FaultOutcome]
    planned_faults: int
    restarts: Mapping[str, int]
    per_minute: Mapping[str, Counter[int]]  # pipeline → minute → accepted events
    invariants: Mapping[str, Sequence[str]]  # name → violations
    finished: datetime
    activity: Sequence[str] = ()


def machine() -> str:
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    u = platform.uname()
    return (
        f"`{u.system} {u.node} {u.release} {u.version} {u.machine}`, {os.cpu_count()} cores, {memory} memory"
    )


def render(o: Outcome) -> str:
    verdict = "every invariant holds" if not any(o.invariants.values()) else "**invariants violated**"
    lines = [
        f"### Latest run: {o.finished.astimezone(UTC):%Y-%m-%d %H:%M} UTC — {verdict}",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{o.command}`",
        f"- Seed {o.seed}, {o.minutes:g} min of traffic; "
        f"{len(o.faults)} of {o.planned_faults} planned faults injected",
        *[f"- {line}" for line in o.activity],
        "",
        *_faults(o.faults),
        *_restarts(o.restarts),
        *_throughput(o.per_minute, o.minutes),
        *_invariants(o.invariants),
    ]
    return "\n".join(lines) + "\n"


def _faults(faults: Sequence[FaultOutcome]) -> list[str]:
    if not faults:
        return ["No fault was injected.", ""]
    rows = ["| at (s) | part killed | what was done | back after (s) |", "|---:|---|---|---:|"]
    for f in faults:
        back = "—" if f.recovered_after is None else f"{f.recovered_after:.1f}"
        rows.append(f"| {f.injected_at:.1f} | {f.part} | {f.note} | {back} |")
    recovered = [f.recovered_after for f in faults if f.recovered_after is not None]
    if recovered:
        rows += [
            "",
            f"Time to recover: median {sorted(recovered)[len(recovered) // 2]:.1f} s, "
            f"longest {max(recovered):.1f} s.",
        ]
    by_part: dict[str, list[float]] = {}
    for f in faults:
        if f.recovered_after is not None:
            by_part.setdefault(f.part, []).append(f.recovered_after)
    rows += ["", "| part | faults | longest recovery (s) |", "|---|---:|---:|"]
    rows += [f"| {p} | {len(t)} | {max(t):.1f} |" for p, t in sorted(by_part.items())]
    return [*rows, ""]


def _restarts(restarts: Mapping[str, int]) -> list[str]:
    if not restarts:
        return ["Restarts per part: the supervisor's record was not there.", ""]
    return [
        "Restarts per part (the supervisor's record at the end):",
        "",
        "| part | restarts |",
        "|---|---:|",
        *[f"| {part} | {n} |" for part, n in sorted(restarts.items())],
        "",
    ]


def _throughput(per_minute: Mapping[str, Counter[int]], soak_minutes: float) -> list[str]:
    """A row per minute of traffic; what was accepted after the last whole minute (a request answered
    as the traffic stopped) is counted in the last one."""
    last = max(0, math.ceil(soak_minutes) - 1)
    per_minute = {name: _clamped(counts, last) for name, counts in per_minute.items()}
    names = sorted(per_minute)
    minutes = sorted({m for counts in per_minute.values() for m in counts})
    rows = [
        "Accepted events per second, minute by minute:",
        "",
        "| minute | " + " | ".join(names) + " | all |",
        "|---:|" + "---:|" * (len(names) + 1),
    ]
    for m in minutes:
        each = [per_minute[n][m] for n in names]
        rows.append(
            f"| {m + 1} | " + " | ".join(f"{c / 60:.1f}" for c in each) + f" | {sum(each) / 60:.1f} |"
        )
    return [*rows, ""]


def _clamped(counts: Counter[int], last: int) -> Counter[int]:
    clamped: Counter[int] = Counter()
    for minute, n in counts.items():
        clamped[min(minute, last)] += n
    return clamped


def _invariants(invariants: Mapping[str, Sequence[str]]) -> list[str]:
    rows = ["| invariant | result |", "|---|---|"]
    details = []
    for name, violations in invariants.items():
        rows.append(f"| {name} | {'holds' if not violations else f'{len(violations)} violation(s)'} |")
        if violations:
            details += ["", f"{name}:", *[f"- {v}" for v in violations[:SHOWN_PER_INVARIANT]]]
            if len(violations) > SHOWN_PER_INVARIANT:
                details.append(f"- … and {len(violations) - SHOWN_PER_INVARIANT} more")
    return [*rows, *details]


def write_section(path: Path, section: str) -> None:
    """Replace everything under the marker line with `section` (the marker is added if missing)."""
    text = path.read_text() if path.exists() else ""
    head = text.split(MARKER, 1)[0].rstrip("\n")
    path.write_text(f"{head}\n\n{MARKER}\n\n{section}" if head else f"{MARKER}\n\n{section}")
