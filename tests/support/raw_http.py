"""HTTP as an attacker sends it: a raw socket, so nothing between the test and the server normalises the
path or buffers the body (httpx would resolve `..` and send a whole body before reading an answer)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawAnswer:
    status: int
    head: str
    body: bytes
    sent_bytes: int  # body bytes the client had written when the answer came
    seconds: float  # from the request's first byte to the answer's status line


async def raw_request(url: str, method: str, target: str, headers: dict[str, str] | None = None) -> RawAnswer:
    """One request with the target exactly as given (no body)."""
    return await _exchange(url, method, target, headers or {}, body_limit=0)


async def chunked_upload(
    url: str,
    target: str,
    total_bytes: int,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    chunk: int = 256 * 1024,
) -> RawAnswer:
    """A chunked body of up to `total_bytes`, stopping as soon as the server answers (or closes)."""
    return await _exchange(url, method, target, headers or {}, body_limit=total_bytes, chunk=chunk)


async def _exchange(
    url: str, method: str, target: str, headers: dict[str, str], body_limit: int, chunk: int = 0
) -> RawAnswer:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body_limit:
        lines += ["Transfer-Encoding: chunked", "Content-Type: application/json"]
    started, sent = time.monotonic(), 0
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    block = b"[" + b" " * max(0, chunk - 1)

    async def upload() -> None:
        nonlocal sent
        if not body_limit:
            return
        try:
            while sent < body_limit:
                writer.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                await writer.drain()
                sent += len(block)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, OSError):
            return  # the server stopped reading: what matters is its answer

    received = bytearray()
    answered = asyncio.Event()

    async def read_all() -> None:
        """Everything the server sends, as it arrives: a reset after the answer (the server closing
        with the client's bytes unread) must not take the answer with it."""
        try:
            while chunk := await reader.read(65536):
                received.extend(chunk)
                if _complete(received):
                    answered.set()
        except (ConnectionError, OSError):
            pass
        finally:
            answered.set()

    uploading, reading = asyncio.create_task(upload()), asyncio.create_task(read_all())
    try:
        await asyncio.wait_for(answered.wait(), timeout=120)
        seconds, sent_at_answer = time.monotonic() - started, sent
    finally:
        uploading.cancel()
        reading.cancel()
        writer.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    status = int(text.split()[1]) if text else 0
    return RawAnswer(status, text, body[: _content_length(text)], sent_at_answer, seconds)


def _complete(received: bytearray) -> bool:
    head, separator, body = bytes(received).partition(b"\r\n\r\n")
    return bool(separator) and len(body) >= _content_length(head.decode("latin-1"))


def _content_length(head: str) -> int:
    for line in head.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value)
    return 0
