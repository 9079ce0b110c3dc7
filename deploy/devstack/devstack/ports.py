from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable

# Ports below the Linux ephemeral range (32768+), so a server never collides with a client's socket.
_LOW, _HIGH = 20_000, 32_000


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    for _ in range(200):
        port = random.randint(_LOW, _HIGH)
        if port_is_free(port):
            return port
    raise RuntimeError("no free TCP port found below 32768")


def wait_listening(
    port: int, *, timeout_s: float, host: str = "127.0.0.1", alive: Callable[[], bool] = lambda: True
) -> bool:
    """True once `port` accepts a connection; False after `timeout_s` or as soon as `alive()` is false
    (the process that was to listen has exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
