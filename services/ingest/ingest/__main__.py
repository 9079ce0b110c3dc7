"""`python -m ingest`: build settings once, configure logging, serve with uvicorn."""

from __future__ import annotations

import uvicorn

from ingest.config import Settings
from ingest.entrypoints.app import create_app
from vr_shared.logging import configure_logging


def main() -> None:
    settings = Settings()  # secrets come from the environment
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep our JSON logging
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
