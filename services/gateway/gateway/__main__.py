"""`python -m gateway`: build settings once, configure logging, serve the API."""

from __future__ import annotations

import uvicorn

from gateway.config import Settings
from gateway.entrypoints.app import create_app
from vr_shared.logging import configure_logging


def main() -> None:
    settings = Settings()  # secrets and connections come from the environment
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
