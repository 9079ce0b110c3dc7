"""A local, file-backed S3-compatible server for the broker's durable storage: MiniStack, from PyPI.

Tansu keeps topics, messages and consumer-group offsets in an S3 bucket when started with `s3://`
storage; MiniStack serves S3 on loopback and, with `S3_PERSIST=1`, keeps every object as a file under
`data_dir`, so the broker's state survives a stop, a SIGKILL of either process and a reboot. Why this
server: deploy/devstack/README.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import free_port, port_is_free, wait_listening
from devstack.processes import spawn, terminate

BUCKET = "tansu"
# MiniStack accepts any credentials; the broker's S3 client needs some to sign its requests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class LocalS3:
    data_dir: Path
    port: int
    log_path: Path | None = None
    name = "s3"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_environment(self) -> dict[str, str]:
        """What an S3 client (the broker) needs to reach this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def start(self) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; set another port for the local S3 server")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "BIND_HOST": "127.0.0.1",  # loopback only (its default is every interface)
            "GATEWAY_PORT": str(self.port),
            "SERVICES": "s3",
            "S3_PERSIST": "1",
            "S3_DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "WARNING",  # a log line per request costs the broker latency
            # Its IoT emulation opens an MQTT/TLS listener on 0.0.0.0:8883 and its SFTP emulation one
            # more, whatever SERVICES says: neither is wanted, and no port may leave loopback.
            "IOT_MTLS_ENABLED": "0",
            "SFTP_ENABLED": "0",
        }
        self.process = spawn(
            [sys.executable, "-m", "ministack"], log_path=self.log_path, env=environment, cwd=self.data_dir
        )
        if not wait_listening(self.port, timeout_s=30):
            self.stop()
            raise RuntimeError("the S3 server did not start listening")
        self._create_bucket()

    def _create_bucket(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{BUCKET}", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # it exists already: the data of an earlier run
                raise

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process, grace_s=10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def running_s3(data_dir: Path) -> Iterator[LocalS3]:
    server = LocalS3(data_dir, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
