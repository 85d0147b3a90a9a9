"""A deliberately weak XMPP server for the audit tests: just enough of RFC 6120 to be probed.

Each :class:`Weakness` switch makes it misbehave the way real servers have: no or optional
STARTTLS, PLAIN before TLS, stanzas answered before authentication, bytes pipelined behind
``<starttls/>`` processed after the handshake (CVE-2011-0411), DTDs accepted, its software
version given to anyone, XEP-0138 compression offered. Nobody ever logs in: every SASL
attempt fails with ``not-authorized`` (after running, which is what the audit looks for).

Example::

    async with weak_server(Weakness(injection=True), ca) as server:
        findings = await probe(server.endpoint())
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trustme

from stockade.core.audit.model import Endpoint, Service
from stockade.core.errors import RemoteProtocolError
from stockade.core.xml.element import Element
from stockade.core.xml.parser import StreamEnd, StreamHeader, XMLStreamParser

HOST = "127.0.0.1"
DOMAIN = "localhost"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_VERSION = "jabber:iq:version"
_STARTTLS = re.compile(rb"<starttls\b[^>]*?(?:/>|>\s*</starttls>)")
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(?:\[[^\]]*\])?\s*>")


@dataclass(frozen=True, slots=True)
class Weakness:
    """Which weaknesses the fixture has (the defaults are a well-behaved server)."""

    starttls_offered: bool = True
    starttls_required: bool = True
    plain_before_tls: bool = False  # offer PLAIN before TLS and run it when asked
    answer_before_auth: bool = False  # answer stanzas from unauthenticated streams
    injection: bool = False  # process what was pipelined behind <starttls/> after TLS
    doctype_accepted: bool = False
    version_disclosed: bool = False  # answer jabber:iq:version to anyone, name in caps
    compression: bool = False  # advertise XEP-0138 zlib


class _Session:
    """One client connection."""

    def __init__(self, server: WeakServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tls: bool) -> None:
        self.weak = server.weakness
        self.server = server
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.parser = XMLStreamParser()
        self.header_sent = False
        self.done = False

    async def run(self) -> None:
        try:
            while not self.done and (data := await self.reader.read(65536)):
                await self.handle(data)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.writer.close()

    async def handle(self, data: bytes) -> None:
        if self.weak.doctype_accepted:
            data = _DOCTYPE.sub(b"", data)
        leftover = b""
        if not self.tls and (m := _STARTTLS.search(data)):
            data, leftover = data[:m.end()], data[m.end():]
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            await self.stream_error(exc.condition.value)
            return
        for event in events:
            if self.done:
                return
            if isinstance(event, StreamHeader):
                await self.open_stream()
            elif isinstance(event, StreamEnd):
                await self.stream_error(None)
            elif event.tag == (NS_TLS, "starttls"):
                await self.starttls(leftover)
                return
            else:
                await self.element(event)

    def send(self, data: str) -> None:
        self.writer.write(data.encode())

    async def open_stream(self) -> None:
        self.send(self.header())
        self.send(f"<stream:features>{self.features()}</stream:features>")
        await self.writer.drain()

    def header(self) -> str:
        self.header_sent = True
        return (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                f"xmlns:stream='{NS_STREAMS}' id='{secrets.token_hex(8)}' from='{DOMAIN}' "
                "version='1.0'>")

    def features(self) -> str:
        weak = self.weak
        parts = []
        if not self.tls and weak.starttls_offered:
            required = "<required/>" if weak.starttls_required else ""
            parts.append(f"<starttls xmlns='{NS_TLS}'>{required}</starttls>")
        mechanisms = (["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"] if self.tls
                      else ["PLAIN"] if weak.plain_before_tls else [])
        if mechanisms:
            parts.append(f"<mechanisms xmlns='{NS_SASL}'>"
                         + "".join(f"<mechanism>{m}</mechanism>" for m in mechanisms)
                         + "</mechanisms>")
        if weak.compression:
            parts.append("<compression xmlns='http://jabber.org/features/compress'>"
                         "<method>zlib</method></compression>")
        if weak.version_disclosed:
            parts.append("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                         "node='https://weak.example/weakxmpp-0.1' ver='x'/>")
        return "".join(parts)

    async def starttls(self, leftover: bytes) -> None:
        if not self.weak.starttls_offered:
            await self.stream_error("unsupported-feature")
            return
        self.send(f"<proceed xmlns='{NS_TLS}'/>")
        await self.writer.drain()
        await self.writer.start_tls(self.server.tls_context)
        self.tls = True
        self.parser = XMLStreamParser()
        if self.weak.injection and leftover:
            # The vulnerability: bytes that came in clear are read as if sent under TLS.
            await self.handle(leftover)

    async def element(self, el: Element) -> None:
        if el.ns == NS_SASL and el.name == "auth":
            await self.auth()
            return
        if el.name not in ("iq", "message", "presence"):
            await self.stream_error("unsupported-stanza-type")
            return
        is_version = el.find(NS_VERSION, "query") is not None
        if is_version and self.weak.version_disclosed:
            self.send(f"<iq type='result' id='{el.get('id')}' from='{DOMAIN}'>"
                      f"<query xmlns='{NS_VERSION}'><name>weakxmpp</name>"
                      "<version>0.1</version><os>Linux</os></query></iq>")
        elif self.weak.answer_before_auth and el.name == "iq":
            self.send(f"<iq type='result' id='{el.get('id')}' from='{DOMAIN}'/>")
        elif not self.weak.answer_before_auth:
            await self.stream_error("not-authorized")
            return
        await self.writer.drain()

    async def auth(self) -> None:
        if not self.tls and not self.weak.plain_before_tls:
            self.send(f"<failure xmlns='{NS_SASL}'><encryption-required/></failure>")
            await self.stream_error("policy-violation")
            return
        self.send(f"<failure xmlns='{NS_SASL}'><not-authorized/></failure>")
        await self.writer.drain()

    async def stream_error(self, condition: str | None) -> None:
        if not self.header_sent:
            self.send(self.header())
        if condition is not None:
            self.send(f"<stream:error><{condition} xmlns='{NS_ERRORS}'/></stream:error>")
        self.send("</stream:stream>")
        self.done = True
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()


@dataclass
class WeakServer:
    """The running fixture: a STARTTLS port and a direct TLS port."""

    weakness: Weakness
    tls_context: ssl.SSLContext
    starttls_port: int = 0
    direct_tls_port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def endpoint(self, *, direct_tls: bool = False) -> Endpoint:
        if direct_tls:
            return Endpoint(DOMAIN, HOST, self.direct_tls_port, Service.C2S_DIRECT_TLS)
        return Endpoint(DOMAIN, HOST, self.starttls_port, Service.C2S_STARTTLS)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    *, tls: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await _Session(self, reader, writer, tls=tls).run()
        finally:
            self.tasks.discard(task)


@contextlib.asynccontextmanager
async def weak_server(weakness: Weakness, ca: trustme.CA) -> AsyncIterator[WeakServer]:
    """Start the fixture on loopback ephemeral ports; stop it (and its connections) after."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(DOMAIN).configure_cert(ctx)
    server = WeakServer(weakness, ctx)

    async def plain(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await server.serve(r, w, tls=False)

    async def direct(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await server.serve(r, w, tls=True)

    starttls = await asyncio.start_server(plain, HOST, 0)
    direct_tls = await asyncio.start_server(direct, HOST, 0, ssl=ctx)
    server.starttls_port = starttls.sockets[0].getsockname()[1]
    server.direct_tls_port = direct_tls.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        for listener in (starttls, direct_tls):
            listener.close()
        for task in list(server.tasks):
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        for listener in (starttls, direct_tls):
            await listener.wait_closed()
