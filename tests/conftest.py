"""Session-wide fixtures: the real broker and PostgreSQL are started once per session."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import hypothesis  # noqa: F401 - imported (and assertion-rewritten) now, not lazily at session end
import pytest

from tests.support.infrastructure import Infrastructure, provide


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    with provide() as infra:
        logging.getLogger("tests").info("infrastructure from %s", infra.origin)
        yield infra
