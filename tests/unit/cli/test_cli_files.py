"""`vr events push` reads JSON, NDJSON and CSV files into the same events."""

from __future__ import annotations

import json
from pathlib import Path

from vr_cli.events import batches, read_events

EVENT = {
    "id": "c1",
    "source": "billing",
    "type": "claim.submitted",
    "time": "2026-11-02T09:00:00-05:00",
    "facility": "main",
    "data": {"claim_ref": "C1", "amount": "1250.00", "clean": True},
}


def test_json_ndjson_and_csv_give_the_same_events(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps(EVENT))
    (tmp_path / "many.json").write_text(json.dumps([EVENT, EVENT]))
    (tmp_path / "lines.ndjson").write_text(json.dumps(EVENT) + "\n\n" + json.dumps(EVENT) + "\n")
    (tmp_path / "table.csv").write_text(
        "id,source,type,time,facility,data.claim_ref,data.amount,data.clean,data.note\n"
        "c1,billing,claim.submitted,2026-11-02T09:00:00-05:00,main,C1,1250.00,true,\n"
    )
    assert list(read_events(tmp_path / "one.json")) == [EVENT]
    assert list(read_events(tmp_path / "many.json")) == [EVENT, EVENT]
    assert list(read_events(tmp_path / "lines.ndjson")) == [EVENT, EVENT]
    assert list(read_events(tmp_path / "table.csv")) == [EVENT]  # money stays a string, empty cells dropped


def test_batches_cut_at_the_size_and_keep_the_rest() -> None:
    assert [len(b) for b in batches(iter(range(1001)), 500)] == [500, 500, 1]  # type: ignore[arg-type]
