"""Work a service runs beside its API (a consumer loop, a periodic check): started in the lifespan,
reported when it stops on its own, cancelled at shutdown — and readiness checks built on both."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vr_shared.db import database_reachable

log = logging.getLogger(__name__)
ReadinessCheck = Callable[[], Awaitable[bool]]


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_report_stop)
        self._tasks[name] = task
        return task

    def stopped(self) -> list[str]:
        """The work that stopped on an error (a loop meant to run until shutdown): the process is no
        longer doing its job, so its liveness check fails and the orchestrator restarts it."""
        return [
            name
            for name, task in self._tasks.items()
            if task.done() and not task.cancelled() and task.exception() is not None
        ]

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def check(self, name: str) -> ReadinessCheck:
        """Ready while the named task runs (a stopped consumer makes the service unready: the
        orchestrator restarts it and the work is resumed from its last commit)."""

        async def running() -> bool:
            return self.running(name)

        return running

    async def stop(self) -> None:
        """Cancel every task, the last started first, and wait for each to end (one that stopped on an
        error was reported then: shutting down does not raise it again)."""
        for task in reversed(list(self._tasks.values())):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        self._tasks.clear()


def _report_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(f"{task.get_name()} stopped", exc_info=task.exception())


def database_check(engine_of: Callable[[], AsyncEngine | None]) -> ReadinessCheck:
    """Ready when the database answers; `engine_of` gives the engine once the lifespan has made it."""

    async def reachable() -> bool:
        engine = engine_of()
        return engine is not None and await database_reachable(engine)

    return reachable
