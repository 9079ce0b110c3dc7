"""`python -m ingest`: build settings once, then serve (vr_shared.runtime.serve)."""

from __future__ import annotations

from ingest.config import Settings
from ingest.entrypoints.app import create_app
from vr_shared.runtime import serve


def main() -> None:
    serve(create_app, Settings())  # secrets come from the environment


if __name__ == "__main__":
    main()
