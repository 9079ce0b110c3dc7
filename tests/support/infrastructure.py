"""One way to get a real broker and a real PostgreSQL for the whole test session (SPEC §9).

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
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as container:
        yield container.get_bootstrap_server()


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
