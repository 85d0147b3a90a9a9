"""Deliberately weak TLS servers on loopback for the audit tests.

``WeakHelloServer`` speaks just enough XMPP to reach ``<proceed/>`` (or starts with TLS) and
answers each ClientHello with a hand-built ServerHello following a configurable, weak policy
(TLS 1.0, 3DES, RC4, DEFLATE, no renegotiation_info), which this machine's OpenSSL 3 could
not serve. It parses the ClientHello itself (independently of the code under test) and never
finishes a handshake: the audit only reads the first answer.

``certificate_server`` is a real stdlib ``ssl`` direct-TLS server with a given certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SSL3, TLS1_0, TLS1_1, TLS1_2 = 0x0300, 0x0301, 0x0302, 0x0303
PROTOCOL_VERSION_ALERT = bytes([21, 3, 1, 0, 2, 2, 70])
HANDSHAKE_FAILURE_ALERT = bytes([21, 3, 1, 0, 2, 2, 40])
RENEGOTIATION_INFO = 0xFF01
# Suites that RFC 5246 §A.5 allows below TLS 1.2 (everything else in the policies here is
# TLS 1.2-only AEAD/SHA-256).
TLS12_ONLY = {0x009C, 0x009D, 0xC02F, 0xC030, 0xC02B, 0xC02C, 0xCCA8, 0xCCA9, 0x003C}


@dataclass
class ClientHello:
    version: int
    suites: list[int]
    compression: bytes
    extensions: dict[int, bytes]


def parse_client_hello(record: bytes) -> ClientHello:
    """The fields of a ClientHello in one handshake record (RFC 5246 §7.4.1.2)."""
    body = record[5 + 4:]
    version = int.from_bytes(body[0:2], "big")
    pos = 2 + 32
    pos += 1 + body[pos]
    size = int.from_bytes(body[pos:pos + 2], "big")
    suites = [int.from_bytes(body[pos + 2 + i:pos + 4 + i], "big") for i in range(0, size, 2)]
    pos += 2 + size
    compression = body[pos + 1:pos + 1 + body[pos]]
    pos += 1 + body[pos]
    extensions: dict[int, bytes] = {}
    if pos < len(body):
        end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
        while pos < end:
            kind = int.from_bytes(body[pos:pos + 2], "big")
            length = int.from_bytes(body[pos + 2:pos + 4], "big")
            extensions[kind] = body[pos + 4:pos + 4 + length]
            pos += 4 + length
    return ClientHello(version, suites, compression, extensions)


@dataclass
class WeakPolicy:
    """What the weak server negotiates. Versions: highest common one at or below the
    client's (it knows nothing of TLS 1.3's supported_versions, like a 2010 server)."""

    versions: tuple[int, ...] = (TLS1_0, TLS1_2)
    preference: tuple[int, ...] = (0x000A, 0x0005, 0x002F)  # 3DES, RC4, RSA-AES-CBC
    compress: bool = True
    renegotiation_info: bool = False
    starttls: bool = True


@dataclass
class WeakHelloServer:
    policy: WeakPolicy = field(default_factory=WeakPolicy)
    connections: int = 0
    hellos: list[ClientHello] = field(default_factory=list)
    port: int = 0

    def answer(self, hello: ClientHello) -> bytes:
        usable = [v for v in self.policy.versions if v <= hello.version]
        if not usable:
            return PROTOCOL_VERSION_ALERT
        version = max(usable)
        suite = next((s for s in self.policy.preference if s in hello.suites
                      and (version == TLS1_2 or s not in TLS12_ONLY)), None)
        if suite is None:
            return HANDSHAKE_FAILURE_ALERT
        compression = 1 if self.policy.compress and 1 in hello.compression else 0
        extensions = b""
        if self.policy.renegotiation_info and RENEGOTIATION_INFO in hello.extensions:
            extensions = RENEGOTIATION_INFO.to_bytes(2, "big") + b"\x00\x01\x00"
        body = (version.to_bytes(2, "big") + secrets.token_bytes(32) + b"\x00"
                + suite.to_bytes(2, "big") + bytes([compression])
                + len(extensions).to_bytes(2, "big") + extensions)
        message = b"\x02" + len(body).to_bytes(3, "big") + body
        return b"\x16" + version.to_bytes(2, "big") + len(message).to_bytes(2, "big") + message

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.policy.starttls:
                await self._starttls(reader, writer)
            header = await reader.readexactly(5)
            record = header + await reader.readexactly(int.from_bytes(header[3:5], "big"))
            hello = parse_client_hello(record)
            self.hellos.append(hello)
            writer.write(self.answer(hello))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _starttls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"version='1.0'>")
        writer.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     b"xmlns:stream='http://etherx.jabber.org/streams' from='localhost' "
                     b"id='w1' version='1.0'><stream:features>"
                     + f"<starttls xmlns='{NS_TLS}'><required/></starttls>".encode()
                     + b"</stream:features>")
        await reader.readuntil(b"/>")
        writer.write(f"<proceed xmlns='{NS_TLS}'/>".encode())


@contextlib.asynccontextmanager
async def weak_hello_server(policy: WeakPolicy | None = None) -> AsyncIterator[WeakHelloServer]:
    server = WeakHelloServer(policy or WeakPolicy())
    listener = await asyncio.start_server(server.handle, HOST, 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


@contextlib.asynccontextmanager
async def certificate_server(cert_file: Path, key_file: Path) -> AsyncIterator[int]:
    """A direct-TLS server presenting ``cert_file``; yields its port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            await reader.read()
        writer.close()

    listener = await asyncio.start_server(handle, HOST, 0, ssl=ctx)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never sends a byte; yields its port."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.read()
        writer.close()

    listener = await asyncio.start_server(handle, HOST, 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()
