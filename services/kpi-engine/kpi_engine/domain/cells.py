"""KPI cells: one KPI, one facility, one local day, one dimension value — the unit everything sums from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, order=True)
class CellKey:
    kpi: str
    facility: str
    day: date
    dimension: str = ""  # the dimension's value ("ehr", "revenue_cycle"); empty when the KPI has none


@dataclass(slots=True)
class Cell:
    """Sums for one cell. `sample_size` counts the events that stand behind the value: those of the
    denominator (for a total, the events summed; for uptime, the unplanned outages), plus any the KPI
    counts but keeps out of its denominator (a claim of unknown cleanliness), so a reader can judge how
    much data stands behind a value."""

    numerator: Decimal = ZERO
    denominator: Decimal = ZERO
    sample_size: int = 0

    def add(self, other: Cell, sign: int = 1) -> None:
        self.numerator += sign * other.numerator
        self.denominator += sign * other.denominator
        self.sample_size += sign * other.sample_size

    def is_empty(self) -> bool:
        return self.numerator == 0 and self.denominator == 0 and self.sample_size == 0


@dataclass(slots=True)
class CellTable:
    """Cells by key, with deltas applied in place; empty cells are dropped (a retraction can empty one)."""

    cells: dict[CellKey, Cell] = field(default_factory=dict)

    def apply(self, key: CellKey, delta: Cell, sign: int = 1) -> None:
        cell = self.cells.setdefault(key, Cell())
        cell.add(delta, sign)
        if cell.is_empty():
            del self.cells[key]

    def put(self, key: CellKey, cell: Cell) -> None:
        if cell.is_empty():
            self.cells.pop(key, None)
        else:
            self.cells[key] = cell
