"""Webhook receivers on real sockets for the sender's tests: a raw HTTP/1.1 server bound to one address
that records what reached it (the Host header, the TLS server name the client sent, the body) and
answers 204 — or trickles its answer a byte at a time, the way a receiver holding a sender would.
A raw server, not an ASGI one, because the tests need what an ASGI server hides: the address a
connection arrived on, the SNI, and an answer's bytes paced one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# An answer that takes 30 s to arrive at one byte per 0.2 s: far past any deadline under test.
TRICKLE_SECONDS_PER_BYTE = 0.2
SLOW_ANSWER = b"HTTP/1.1 204 No Content\r\nX-Slow: " + b"a" * 120 + b"\r\n\r\n"


@dataclass
class Request:
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Receiver:
    host: str
    port: int = 0
    trickle: bool = False
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # the SNI of each TLS handshake
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a request has been read
    open_connections: int = 0
    _handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        self.open_connections += 1
        try:
            self.requests.append(await _read_request(reader))
            self.arrived.set()
            await self._answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the sender gave up and closed the connection
        finally:
            self.open_connections -= 1
            self._handlers.pop(task, None)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        if not self.trickle:
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        for byte in SLOW_ANSWER:
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(TRICKLE_SECONDS_PER_BYTE)

    def _remember_server_name(self, _: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        self.server_names.append(name)


async def _read_request(reader: asyncio.StreamReader) -> Request:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")[1:]
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines if line)
    }
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(headers, body)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serves until the block ends (port 0: any free port, set on the receiver)."""
    if receiver.tls is not None:
        receiver.tls.sni_callback = receiver._remember_server_name
    server = await asyncio.start_server(receiver._handle, receiver.host, receiver.port, ssl=receiver.tls)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        for writer in list(receiver._handlers.values()):
            writer.transport.abort()  # a trickling answer stops at its next byte
        await asyncio.gather(*receiver._handlers, return_exceptions=True)
        await server.wait_closed()


@dataclass(frozen=True)
class TlsPair:
    server: ssl.SSLContext  # presents a certificate for the name only (no IP address in it)
    client: ssl.SSLContext  # trusts the test authority that signed it, and checks host names


def tls_for(name: str) -> TlsPair:
    """A certificate authority made for the test and a server certificate for `name` it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test authority")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with _pem_files(leaf, server_key) as (cert_path, key_path):
        server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return TlsPair(server, client)


@contextlib.contextmanager
def _pem_files(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Iterator[tuple[str, str]]:
    """Python's ssl module loads a certificate chain from files only."""
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        yield str(cert_path), str(key_path)
