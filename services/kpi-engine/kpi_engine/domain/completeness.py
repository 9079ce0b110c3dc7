"""Completeness of KPI values (docs/completeness.md): a value is trusted only as far as every feed it
depends on is declared complete, for every facility it covers, through the value's end.

Silence is ambiguous (a quiet day or a broken interface), so nothing here is guessed from traffic: only
`feed.complete` declarations move a watermark.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from kpi_engine.domain.catalogue import KpiDefinition


@dataclass(frozen=True, slots=True)
class Watermark:
    """The declaration in force for one facility's feed: complete through `through`."""

    through: datetime
    source: str
    id: str
    declared_at: datetime  # the declaration's own event time
    recorded_at: datetime  # when the engine recorded it


@dataclass(frozen=True, slots=True, order=True)
class MissingFeed:
    facility: str
    feed: str
    complete_through: datetime | None  # None: never declared

    def as_json(self) -> dict[str, str | None]:
        return {
            "facility": self.facility,
            "feed": self.feed,
            "complete_through": None if self.complete_through is None else self.complete_through.isoformat(),
        }


def missing_feeds(
    kpi: KpiDefinition,
    facilities: Collection[str],
    end: datetime,
    watermarks: Mapping[tuple[str, str], Watermark],
) -> list[MissingFeed]:
    """Every facility × feed of the KPI that is not complete through `end` (the value's exclusive end)."""
    missing = []
    for facility in sorted(facilities):
        for feed in kpi.feeds:
            found = watermarks.get((facility, feed))
            if found is None or found.through < end:
                missing.append(MissingFeed(facility, feed, None if found is None else found.through))
    return missing
