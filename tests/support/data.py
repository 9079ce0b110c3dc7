"""Test data kept in the repository (`tests/data/`): published examples others wrote, sources named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"


def golden(name: str) -> Any:
    """A golden file (`tests/data/golden/README.md` says where each case comes from)."""
    return json.loads((DATA / "golden" / name).read_text())


def hl7_sample(name: str) -> str:
    """A public HL7 v2 sample (tests/data/hl7v2/: its README names the source), as its file has it."""
    return (DATA / "hl7v2" / "uclh-emap" / f"{name}.txt").read_text()
