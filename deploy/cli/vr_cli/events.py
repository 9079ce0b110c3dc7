"""Reading event files: JSON (one event or an array), NDJSON, or CSV with `data.<field>` columns."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENVELOPE = ("id", "source", "type", "time", "facility")


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv(path)
    elif suffix in (".ndjson", ".jsonl"):
        with path.open() as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    else:
        document = json.loads(path.read_text())
        yield from document if isinstance(document, list) else [document]


def _csv(path: Path) -> Iterator[dict[str, Any]]:
    """Envelope columns as they are; `data.x` columns into `data`; true/false become booleans, empty
    cells are left out; everything else stays a string (money and times are strings in events)."""
    with path.open(newline="") as rows:
        for row in csv.DictReader(rows):
            event: dict[str, Any] = {k: row[k] for k in ENVELOPE if row.get(k)}
            data: dict[str, Any] = {}
            for column, value in row.items():
                if column.startswith("data.") and value != "":
                    data[column[5:]] = {"true": True, "false": False}.get(value.lower(), value)
            event["data"] = data
            yield event


def batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
