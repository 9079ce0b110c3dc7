"""A statement's lines as CSV, for a billing or finance system that imports spreadsheets
(`Accept: text/csv` on a statement): one row per line, every amount the decimal string of the JSON."""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = (
    "contract_id",
    "contract_version",
    "period",
    "status",
    "currency",
    "term_id",
    "kind",
    "amount",
    "reason",
    "complete",
)


def statement_csv(statement: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(COLUMNS)
    for line in statement["lines"]:
        writer.writerow(
            (
                statement["contract_id"],
                statement["contract_version"],
                statement["period"],
                statement["status"],
                statement["currency"],
                line["term_id"],
                line["kind"],
                line["amount"],
                line.get("reason") or "",
                "true" if line.get("complete", True) else "false",
            )
        )
    return out.getvalue()
