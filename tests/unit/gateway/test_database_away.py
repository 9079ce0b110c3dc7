"""The gateway's own PostgreSQL away (starting, shutting down, out of connections, refusing connections)
is a 503 with `Retry-After` and problem+json — in a route and in the idempotency middleware, which runs
outside the app's exception handlers — never a 500; a statement or a login it refuses, or an OS error
that is not the network's, stays a 500. Settlement answering a server error while a vendor's view is
built is a 503 too.

The app is the real one (`create_app`), its adapters the real ones, on an engine whose every connection
fails as asyncpg fails; no lifespan runs, so no database is needed."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway import bootstrap
from gateway.adapters.contracts import SettlementContracts
from gateway.adapters.directory import PostgresDirectory
from gateway.adapters.idempotency import PostgresIdempotencyStore
from gateway.config import Settings
from gateway.domain.idempotency import Answer, Claimed, ClaimOutcome
from gateway.domain.keys import ApiKey
from gateway.domain.limits import TokenBuckets
from gateway.domain.ports import KeyDirectory
from gateway.domain.tenants import Tenant
from gateway.entrypoints.app import create_app
from gateway.handlers import KeyResolver
from tests.support.identity import GATEWAY_PRIVATE_KEY
from vr_shared.db import database_away
from vr_shared.identity import IdentitySigner

PIPELINE_KEY = "vrk_the-pipeline-key-of-this-test-000000000000"
HEALTH = Tenant(id="hs", name="H", kind="health_system", timezone="UTC", facilities=["main"])


class _AdaptedError(Exception):
    """How SQLAlchemy's asyncpg dialect carries the driver's error: a `sqlstate`, the cause behind it."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.sqlstate = getattr(cause, "sqlstate", None)
        self.__cause__ = cause


def _invalidated() -> DBAPIError:
    error = DBAPIError("SELECT 1", {}, _AdaptedError(RuntimeError("the pool found it dead")))
    error.connection_invalidated = True
    return error


@pytest.mark.parametrize(
    ("error", "away"),
    [
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        # A network error is the database's only as its driver met it (tests/unit/shared/
        # test_database_errors.py): alone it could be anything's; a missing file or a refused permission
        # is never away.
        (ConnectionRefusedError(111, "Connect call failed"), False),
        (TimeoutError(), False),
        (FileNotFoundError(2, "No such file or directory"), False),
        (PermissionError(13, "Permission denied"), False),
        (IsADirectoryError(21, "Is a directory"), False),
        (DBAPIError("SELECT 1", {}, _AdaptedError(ConnectionResetError(104, "reset by peer"))), True),
        (DBAPIError("SELECT 1", {}, _AdaptedError(PermissionError(13, "Permission denied"))), False),
        (OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")), True),
        (OperationalError("SELECT 1", {}, _AdaptedError(RuntimeError("server closed the connection"))), True),
        (InterfaceError("SELECT 1", {}, _AdaptedError(asyncpg.InterfaceError("connection is closed"))), True),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
        (DBAPIError("SELECT 1", {}, _AdaptedError(asyncpg.exceptions.AdminShutdownError("bye"))), True),
        (_invalidated(), True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key value"), False),
        (IntegrityError("INSERT", {}, _AdaptedError(asyncpg.exceptions.UniqueViolationError("dup"))), False),
        (asyncpg.exceptions.InvalidPasswordError("password authentication failed"), False),
        (asyncpg.exceptions.UndefinedTableError('relation "api_keys" does not exist'), False),
        # asyncpg's interface errors other than a closed connection are the caller's own mistakes.
        (asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"), False),
        (asyncpg.exceptions.DataError("invalid input for query argument $1"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_a_database_that_cannot_answer_now_is_away(error: Exception, away: bool) -> None:
    assert database_away(error) is away


# --- the app, on an engine whose connections fail ------------------------------------------------------


def _failing_engine(error: Callable[[], Exception]) -> AsyncEngine:
    """A real SQLAlchemy engine whose driver connect fails with `error()`, as asyncpg's does."""

    async def connect() -> asyncpg.Connection:
        raise error()

    return create_async_engine("postgresql+asyncpg://", async_creator=connect, pool_pre_ping=True)


@dataclass
class _PipelineKeys:
    """The key directory where the database is still up: the pipeline key of tenant `hs`."""

    async def key_by_secret(self, key: str) -> ApiKey | None:
        if key != PIPELINE_KEY:
            return None
        return ApiKey("key_1", "hs", "pipeline", "feed", datetime(2026, 1, 1, tzinfo=UTC), None, None)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return HEALTH if tenant_id == "hs" else None


@dataclass
class _StoreThatCannotRecord:
    """Claims work; keeping or releasing the answer meets the database gone (a restart in between)."""

    records: list[str] = field(default_factory=list)

    async def claim(self, owner: str, key: str, fingerprint: bytes) -> ClaimOutcome:
        self.records.append("claim")
        return Claimed()

    async def complete(self, owner: str, key: str, answer: Answer) -> None:
        self.records.append(f"complete {answer.status}")
        lost = asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )
        lost.__cause__ = ConnectionResetError(104, "Connection reset by peer")
        raise DBAPIError("INSERT INTO idempotency_records …", {}, _AdaptedError(lost))

    async def release(self, owner: str, key: str) -> None:
        self.records.append("release")
        raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")


def _ingest_answering_202(request: httpx.Request) -> httpx.Response:
    body = orjson.dumps({"accepted": 1, "rejected": 0})
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    return httpx.Response(202, headers=headers, stream=httpx.ByteStream(body))  # streamed, as over a socket


@dataclass
class Gateway:
    app: FastAPI
    settings: Settings
    built_engine: AsyncEngine | None = None

    def compose(self, engine: AsyncEngine, **replaced: Any) -> None:
        """The components the lifespan would build, every database adapter on `engine` (and any of them
        `replaced`); ingest answers 202."""
        components = bootstrap.build(self.settings)
        ingest = httpx.AsyncClient(
            base_url="http://ingest", transport=httpx.MockTransport(_ingest_answering_202)
        )
        directory = PostgresDirectory(engine)
        self.app.state.components = dataclasses.replace(
            components,
            **{
                "engine": engine,
                "directory": directory,
                "resolver": _resolver_on(directory),
                "idempotency": PostgresIdempotencyStore(engine),
                "upstreams": {**components.upstreams, "ingest": ingest},
                **replaced,
            },
        )
        self.built_engine = components.engine

    def client(self, *, raising: bool = False) -> httpx.AsyncClient:
        # Not `raising`: an unexpected error answers 500, as a server would, instead of reaching the test.
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=raising)
        return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = Settings.model_validate(
        {"identity_private_key": GATEWAY_PRIVATE_KEY, "database_url": "postgresql://u@127.0.0.1:9/unused"}
    )
    running = Gateway(create_app(settings), settings)
    yield running
    components = getattr(running.app.state, "components", None)
    if components is not None:
        for client in components.upstreams.values():
            await client.aclose()
        await components.engine.dispose()
        if running.built_engine is not None:
            await running.built_engine.dispose()


def _resolver_on(directory: KeyDirectory) -> KeyResolver:
    return KeyResolver(
        directory,
        IdentitySigner(GATEWAY_PRIVATE_KEY),
        cache_seconds=5,
        token_ttl_seconds=60,
        unknown_key_seconds=30,
        failures=TokenBuckets(1, 30),
    )


def _assert_retry_later(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(answer.content)
    assert (problem["status"], problem["title"]) == (503, "Service unavailable")
    # The driver's message (SQL, parameters, the key's hash) never reaches the client.
    assert problem["detail"] == "the database cannot answer now; retry in 2 s"


def _events() -> list[dict[str, Any]]:
    return [
        {
            "id": "e1",
            "source": "billing",
            "type": "claim.submitted",
            "time": "2026-11-02T09:00:00Z",
            "facility": "main",
            "data": {"claim_ref": "C1", "amount": "10.00", "clean": True},
        }
    ]


async def test_a_route_answers_503_while_the_database_is_starting(gateway: Gateway) -> None:
    gateway.compose(_failing_engine(lambda: asyncpg.exceptions.CannotConnectNowError("starting up")))
    async with gateway.client() as client:
        answer = await client.get("/v1/tenants", headers={"Authorization": f"Bearer {PIPELINE_KEY}"})
    _assert_retry_later(answer)
    assert answer.json()["instance"] == "/v1/tenants"


async def test_a_route_answers_503_while_connections_are_refused(gateway: Gateway) -> None:
    gateway.compose(_failing_engine(lambda: ConnectionRefusedError(111, "Connect call failed")))
    async with gateway.client() as client:
        answer = await client.post(
            "/v1/events", json=_events(), headers={"Authorization": f"Bearer {PIPELINE_KEY}"}
        )
    _assert_retry_later(answer)


async def test_a_refused_login_is_still_an_unexpected_error(gateway: Gateway) -> None:
    """A wrong password or role is our configuration's fault and will not pass by retrying: 500."""
    gateway.compose(_failing_engine(lambda: asyncpg.exceptions.InvalidPasswordError("authentication failed")))
    async with gateway.client() as client:
        answer = await client.get("/v1/tenants", headers={"Authorization": f"Bearer {PIPELINE_KEY}"})
    assert answer.status_code == 500, answer.text
    assert "retry-after" not in answer.headers


@pytest.mark.parametrize(
    "error",
    [
        lambda: PermissionError(13, "Permission denied", "/etc/vr/db-ca.pem"),
        lambda: FileNotFoundError(2, "No such file or directory", "/run/secrets/db-password"),
    ],
)
async def test_an_os_error_that_is_not_the_network_is_an_unexpected_error(
    gateway: Gateway, error: Callable[[], Exception]
) -> None:
    """Met while connecting, but no retry cures it: 500, never a 503 a client would retry forever."""
    gateway.compose(_failing_engine(error))
    async with gateway.client() as client:
        answer = await client.get("/v1/tenants", headers={"Authorization": f"Bearer {PIPELINE_KEY}"})
    assert answer.status_code == 500, answer.text
    assert "retry-after" not in answer.headers


async def test_the_idempotency_middleware_answers_503_when_authentication_meets_the_database_away(
    gateway: Gateway,
) -> None:
    gateway.compose(_failing_engine(lambda: asyncpg.exceptions.TooManyConnectionsError("too many")))
    async with gateway.client() as client:
        answer = await client.post(
            "/v1/events",
            json=_events(),
            headers={"Authorization": f"Bearer {PIPELINE_KEY}", "Idempotency-Key": str(uuid.uuid4())},
        )
    _assert_retry_later(answer)


async def test_the_idempotency_middleware_answers_503_when_the_claim_meets_the_database_away(
    gateway: Gateway,
) -> None:
    """The key is known (cached before the restart); claiming the Idempotency-Key needs the database."""
    gateway.compose(
        _failing_engine(lambda: asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")),
        resolver=_resolver_on(_PipelineKeys()),
    )
    async with gateway.client() as client:
        answer = await client.post(
            "/v1/events",
            json=_events(),
            headers={"Authorization": f"Bearer {PIPELINE_KEY}", "Idempotency-Key": str(uuid.uuid4())},
        )
    _assert_retry_later(answer)


async def test_an_answer_the_database_cannot_record_still_reaches_the_client(gateway: Gateway) -> None:
    """The request was processed: its answer goes out whole though the record of it could not be kept."""
    store = _StoreThatCannotRecord()
    gateway.compose(
        _failing_engine(lambda: ConnectionRefusedError(111, "Connect call failed")),
        resolver=_resolver_on(_PipelineKeys()),
        idempotency=store,
    )
    async with gateway.client() as client:
        answer = await client.post(
            "/v1/events",
            json=_events(),
            headers={"Authorization": f"Bearer {PIPELINE_KEY}", "Idempotency-Key": str(uuid.uuid4())},
        )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "rejected": 0}
    assert store.records == ["claim", "complete 202"]


async def test_a_statement_the_database_refuses_while_recording_is_not_hidden(gateway: Gateway) -> None:
    """Only the database away is passed over: any other error while recording still fails the request."""

    @dataclass
    class _StoreWithABug(_StoreThatCannotRecord):
        async def complete(self, owner: str, key: str, answer: Answer) -> None:
            raise ValueError("a bug")

    gateway.compose(
        _failing_engine(lambda: ConnectionRefusedError(111, "Connect call failed")),
        resolver=_resolver_on(_PipelineKeys()),
        idempotency=_StoreWithABug(),
    )
    async with gateway.client(raising=True) as client:
        with pytest.raises(ValueError, match="a bug"):
            await client.post(
                "/v1/events",
                json=_events(),
                headers={"Authorization": f"Bearer {PIPELINE_KEY}", "Idempotency-Key": str(uuid.uuid4())},
            )


# --- settlement answering a server error while a vendor's view is built --------------------------------

VENDOR_KEY = "vrk_the-vendor-key-of-this-test-0000000000000000"
VENDOR = Tenant(id="vendor", name="V", kind="vendor", timezone="UTC", facilities=[])


@dataclass
class _VendorDirectory:
    """A vendor's ops key; the health system `hs` and the vendor as tenants."""

    async def key_by_secret(self, key: str) -> ApiKey | None:
        if key != VENDOR_KEY:
            return None
        return ApiKey("key_v", "vendor", "ops", "dashboard", datetime(2026, 1, 1, tzinfo=UTC), None, None)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return {"hs": HEALTH, "vendor": VENDOR}.get(tenant_id)


async def test_a_vendor_view_answers_503_while_settlement_answers_a_server_error(gateway: Gateway) -> None:
    """Its contracts cannot be read: the vendor retries — never an empty view the KPI engine answers 404."""
    asked: list[str] = []

    def settlement(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(503, headers={"retry-after": "5"}, json={"title": "Service unavailable"})

    def kpi_engine(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(404, json={"title": "Unknown facility"})

    directory = _VendorDirectory()
    contracts_client = httpx.AsyncClient(
        base_url="http://settlement", transport=httpx.MockTransport(settlement)
    )
    engine_client = httpx.AsyncClient(base_url="http://kpi-engine", transport=httpx.MockTransport(kpi_engine))
    gateway.compose(
        _failing_engine(lambda: ConnectionRefusedError(111, "Connect call failed")),
        directory=directory,
        resolver=_resolver_on(directory),
        contracts=SettlementContracts(contracts_client, ttl_seconds=5),
    )
    components = gateway.app.state.components
    gateway.app.state.components = dataclasses.replace(
        components, upstreams={**components.upstreams, "kpi-engine": engine_client}
    )
    try:
        async with gateway.client() as client:
            answer = await client.get(
                "/v1/kpis/uptime_pct/values",
                params={"tenant": "hs", "facility": "main", "start": "2026-11-01", "end": "2026-11-02"},
                headers={"Authorization": f"Bearer {VENDOR_KEY}"},
            )
    finally:
        await contracts_client.aclose()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "2"
    assert answer.json()["detail"] == "settlement answered 503: the contracts cannot be read now"
    assert asked == ["/v1/contracts"]  # nothing went on to the KPI engine
