"""`python -m kpi_engine rebuild --tenant T [--kpi K]`: recompute a tenant's cells from its stored
events while the engine runs — after a KPI definition is fixed — print the differences, correct them.

Needs only the engine's database (`DATABASE_URL`, `VR_DB_SCHEMA`). Exit status: 0 when the cells equal
what the events give (after correcting), 1 when differences remain, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kpi_engine.adapters.rebuild import Difference, PostgresRebuild
from kpi_engine.config import DEFAULT_DATABASE_URL, SCHEMA_PATTERN
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.catalogue import CATALOGUE
from kpi_engine.domain.cells import Cell
from vr_shared.db import create_engine
from vr_shared.runtime import settings_or_exit

_SHOWN = 50  # differences printed one per line; the rest are counted


class RebuildSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VR_", extra="ignore", frozen=True)

    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    db_schema: str = Field(default="kpi", pattern=SCHEMA_PATTERN)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kpi_engine rebuild", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--kpi", choices=sorted(CATALOGUE), help="only this KPI's cells")
    parser.add_argument(
        "--timezone", help="the tenant's IANA zone (default: as its latest events carried it)"
    )
    parser.add_argument("--dry-run", action="store_true", help="report the differences, correct nothing")
    return parser.parse_args(argv)


async def rebuild(settings: RebuildSettings, arguments: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    engine = create_engine(settings.database_url, schema=settings.db_schema, statement_timeout_ms=0)
    try:
        store = PostgresRebuild(engine)
        zone = arguments.timezone or await store.zone_of(arguments.tenant)
        if zone is None:
            print(f"no events recorded for tenant {arguments.tenant!r} (or give --timezone)", file=out)
            return 2
        calendar = TenantCalendar.of(zone)
        started = time.monotonic()

        def progress(events: int) -> None:
            print(f"read {events:,} events ({time.monotonic() - started:.1f} s)", file=out, flush=True)

        comparison = await store.compare(arguments.tenant, calendar, kpi=arguments.kpi, progress=progress)
        print(
            f"{comparison.events:,} events give {comparison.cells:,} cells; "
            f"{len(comparison.differences):,} differ from the stored ones",
            file=out,
        )
        for difference in comparison.differences[:_SHOWN]:
            print(_line(difference), file=out)
        if len(comparison.differences) > _SHOWN:
            print(f"… and {len(comparison.differences) - _SHOWN:,} more", file=out)
        if arguments.dry_run or not comparison.differences:
            return 1 if comparison.differences else 0
        written = await store.correct(arguments.tenant, calendar, comparison.differences)
        after = await store.compare(arguments.tenant, calendar, kpi=arguments.kpi)
        print(
            f"corrected: {written:,} cells written; {len(after.differences):,} differ now "
            f"({time.monotonic() - started:.1f} s)",
            file=out,
        )
        return 1 if after.differences else 0
    finally:
        await engine.dispose()


def _line(difference: Difference) -> str:
    key = difference.key
    where = f"{key.kpi} {key.facility} {key.day.isoformat()}" + (f" {key.dimension}" if key.dimension else "")
    return f"{where}: stored {_cell(difference.stored)}, rebuilt {_cell(difference.rebuilt)}"


def _cell(cell: Cell | None) -> str:
    if cell is None:
        return "none"
    return f"{cell.numerator}/{cell.denominator} (n={cell.sample_size})"


def main(argv: Sequence[str]) -> None:
    arguments = parse(argv)
    sys.exit(asyncio.run(rebuild(settings_or_exit(RebuildSettings), arguments)))
