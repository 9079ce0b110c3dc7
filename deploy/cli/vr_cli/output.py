"""How a command prints what it got: a table for people, JSON for scripts, CSV for spreadsheets
(`--output table|json|csv`)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def emit(
    console: Console,
    output: Output,
    answer: Any,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str = "",
) -> None:
    """JSON: the API's answer as it came; CSV: the rows under their column names; a table otherwise."""
    if output == Output.JSON:
        print(json.dumps(answer, indent=2))
    elif output == Output.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    else:
        table = Table(title=title or None)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
