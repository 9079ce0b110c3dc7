"""One way to get a real broker and a real PostgreSQL for the whole test session (docs/testing.md).

1. `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` when set (each independently);
2. else testcontainers (Apache Kafka in KRaft mode, PostgreSQL) when a Docker engine answers;
3. else the local wheels (Tansu broker, embedded PostgreSQL) on free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap_servers: str
    database_url: str
    origin: str


def docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def provide() -> Iterator[Infrastructure]:
    kafka, database = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        origin = "environment"
        if not (kafka and database):
            if docker_engine_answers():
                origin = "testcontainers"
                kafka = kafka or stack.enter_context(_kafka_container())
                database = database or stack.enter_context(_postgres_container())
            else:
                origin = "local wheels"
                kafka = kafka or stack.enter_context(_local_broker())
                database = database or stack.enter_context(_local_postgres())
        yield Infrastructure(kafka, database, origin)


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    """The official Apache Kafka image, single node in KRaft mode (as docker-compose.yml runs it).

    A client reaches the broker at the address the broker advertises, so the host port is chosen
    before start and advertised as it is.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    from devstack.ports import free_port

    host, port = os.environ.get("TC_HOST", "127.0.0.1"), free_port()
    container = (
        DockerContainer("apache/kafka:3.8.0")
        .with_bind_ports(9092, port)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{host}:{port}",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    )
    with container:
        yield f"{host}:{port}"


@contextlib.contextmanager
def _postgres_container() -> Iterator[str]:
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver=None) as container:
        yield container.get_connection_url()


@contextlib.contextmanager
def _local_broker() -> Iterator[str]:
    from devstack.broker import running_broker

    with running_broker() as broker:
        yield broker.bootstrap_servers


@contextlib.contextmanager
def _local_postgres() -> Iterator[str]:
    from devstack.postgres import running_postgres

    with running_postgres() as server:
        yield server.url
