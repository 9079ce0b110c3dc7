"""Background work that stops on an error makes `/healthz` fail, so the orchestrator restarts the
process: a consumer loop that died must never leave a service that answers but does nothing."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from vr_shared.background import BackgroundTasks
from vr_shared.web import ops_router


async def _healthz(app: FastAPI) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        return await client.get("/healthz")


async def _fails(reached: asyncio.Event) -> None:
    await reached.wait()
    raise RuntimeError("a bug in the loop")


async def _runs_forever() -> None:
    await asyncio.Event().wait()


async def _finishes() -> None:
    return None


async def test_healthz_fails_once_a_background_task_stopped_on_an_error() -> None:
    tasks, app = BackgroundTasks(), FastAPI()
    app.include_router(ops_router({}, stopped=tasks.stopped))
    reached = asyncio.Event()
    failing = tasks.start("consume-updates", _fails(reached))
    tasks.start("watch", _runs_forever())
    tasks.start("connect", _finishes())  # work that is done when it returns is not a failure
    await asyncio.sleep(0)
    assert (await _healthz(app)).json() == {"status": "ok"}

    reached.set()
    await asyncio.wait([failing])
    answer = await _healthz(app)
    assert answer.status_code == 503
    assert answer.json() == {"status": "stopped", "stopped": ["consume-updates"]}
    await tasks.stop()


async def test_healthz_without_background_work_answers_ok() -> None:
    app = FastAPI()
    app.include_router(ops_router({}))
    answer = await _healthz(app)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
