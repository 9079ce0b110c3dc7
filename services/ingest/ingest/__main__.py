"""`python -m ingest`: build settings once, then serve (vr_shared.runtime.serve)."""

from __future__ import annotations

from ingest.config import Settings
from ingest.entrypoints.app import create_app
from vr_shared.runtime import serve, settings_or_exit


def main() -> None:
    serve(create_app, settings_or_exit(Settings))  # secrets come from the environment


if __name__ == "__main__":
    main()
