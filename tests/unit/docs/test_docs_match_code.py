"""The product's definitions in `docs/` say what the code does: every KPI with its definition, every
event type, every decision record the code cites."""

from __future__ import annotations

import re
from pathlib import Path

from kpi_engine.domain.catalogue import CATALOGUE
from vr_shared.events.catalogue import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[3]


def test_every_kpi_is_defined_in_docs_as_the_code_defines_it() -> None:
    text = (ROOT / "docs" / "kpis.md").read_text()
    for kpi in CATALOGUE.values():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{kpi.name}` |")), None)
        assert row is not None, kpi.name
        assert kpi.definition in row and kpi.unit in row, kpi.name


def test_every_event_type_is_in_the_catalogue_doc() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    assert {t for t in EVENT_TYPES if f"| `{t}` |" in text} == set(EVENT_TYPES)


def test_every_docs_file_the_repository_cites_exists() -> None:
    cited: set[str] = set()
    for folder in ("services", "shared", "deploy", "bench", "tests", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".md", ".yml", ".yaml", ".toml"} and ".venv" not in path.parts:
                cited |= set(re.findall(r"docs/[a-z0-9/_-]+\.md", path.read_text(errors="ignore")))
    cited |= set(re.findall(r"docs/[a-z0-9/_-]+\.md", (ROOT / "README.md").read_text()))
    assert cited and not {c for c in cited if not (ROOT / c).is_file()}


def test_nothing_in_the_repository_cites_a_file_outside_it() -> None:
    """A fresh clone holds everything a reader is sent to: no `../shared/…`, no SPEC of another tree."""
    outside = re.compile(r"\.\./shared|\bSPEC(?:\.md|'s| §)|\bthe SPEC\b")
    citing = {
        str(path.relative_to(ROOT))
        for folder in ("services", "shared", "deploy", "bench", "tests", "docs")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".md", ".yml", ".yaml", ".toml"}
        and ".venv" not in path.parts
        and path != Path(__file__).resolve()
        and outside.search(path.read_text(errors="ignore"))
    }
    assert not citing
