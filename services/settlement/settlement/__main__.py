"""`python -m settlement`: build settings once, then serve (vr_shared.runtime.serve)."""

from __future__ import annotations

from settlement.config import Settings
from settlement.entrypoints.app import create_app
from vr_shared.runtime import serve, settings_or_exit


def main() -> None:
    serve(create_app, settings_or_exit(Settings))  # secrets and connections come from the environment


if __name__ == "__main__":
    main()
