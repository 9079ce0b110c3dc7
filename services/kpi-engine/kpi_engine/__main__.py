"""`python -m kpi_engine`: build settings once, then serve (vr_shared.runtime.serve).
`python -m kpi_engine rebuild --tenant T [--kpi K]`: recompute a tenant's cells (entrypoints.rebuild)."""

from __future__ import annotations

import sys

from kpi_engine.config import Settings
from kpi_engine.entrypoints.app import create_app
from vr_shared.runtime import serve, settings_or_exit


def main() -> None:
    if sys.argv[1:2] == ["rebuild"]:
        from kpi_engine.entrypoints import rebuild

        rebuild.main(sys.argv[2:])
    serve(create_app, settings_or_exit(Settings))  # secrets and connections come from the environment


if __name__ == "__main__":
    main()
