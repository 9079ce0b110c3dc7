"""Process-level tuning every service applies once start-up is complete."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import prometheus_client
import uvicorn
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from vr_shared.logging import configure_logging
from vr_shared.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)
AnySettings = TypeVar("AnySettings", bound=BaseSettings)

# A request of 500 events allocates tens of thousands of containers. With the default threshold
# (700) the collector runs several times per request, and every full collection walks the whole
# start-up heap (pydantic schemas, the framework, Kafka clients): ≈ 15 % of ingest's CPU, measured.
YOUNG_GENERATION_THRESHOLD = 7_000


def settle_heap() -> None:
    """Move what start-up allocated out of the collector's scans and collect less often.

    Call at the end of start-up (clients opened): those objects live as long as the process, so
    scanning them again on every full collection finds nothing. Reference cycles made later are still
    collected.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run one batch without the cyclic collector, then collect the young generations once.

    A batch of thousands of events keeps its objects alive until it ends, so every collection during
    it walks them all again and frees nothing; reference counting frees them when the batch ends, and
    the one collection after it finds what cycles are left.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect(1)


def settings_or_exit(settings_type: type[AnySettings]) -> AnySettings:
    """The service's settings from its environment, or exit 2 with one line per setting at fault
    (its variable and why — never its value)."""
    try:
        return settings_type()
    except ValidationError as exc:
        prefix = str(settings_type.model_config.get("env_prefix", ""))
        for error in exc.errors():
            name = (prefix + "_".join(str(part) for part in error["loc"])).upper()
            print(f"refusing to start: {name} {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        sys.exit(2)


def serve(create_app: Callable[[S], Any], settings: S) -> None:
    """`python -m <service>`: JSON logging first, then the app from its factory, served by uvicorn
    (no uvicorn log config and no access log — the request middleware logs each request), with a
    bounded graceful shutdown."""
    configure_logging(settings.service_name, settings.log_level)
    if settings.metrics_port is not None:
        # Its own port, never the API's: Prometheus reaches it, clients do not (docs/security.md).
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_host)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
