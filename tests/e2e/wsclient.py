"""A raw XMPP-over-WebSocket client for end-to-end tests: a real loopback socket, the HTTP
handshake written out by hand, frames from tests/wsframes.py (never the server's codec), and
XMPP in RFC 7395 framing. Like rawxmpp.RawClient it sends whatever a test asks, however
wrong, and every read has a deadline.

Example::

    async with running_server(tmp_path, ca) as h:
        ws = await WSClient.connect(h.server.ports["http"][0])
        await ws.login("alice")
        await ws.send_text("<message to='bob@localhost'><body>hi</body></message>")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import ssl
import xml.etree.ElementTree as ET
from pathlib import Path

from rawxmpp import ACCOUNTS, DOMAIN, HOST, TIMEOUT

from stockade.core.crypto.certs import tls_server_end_point
from stockade.core.sasl.scram import ScramClient
from wsframes import CLOSE, PING, TEXT, ServerFrame, client_frame, read_server_frames, text

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
OPEN = f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>"
CLOSE_XMPP = f"<close xmlns='{NS_FRAMING}'/>"
PATH = "/xmpp-websocket"


def handshake_request(*, path: str = PATH, protocol: str | None = "xmpp",
                      origin: str | None = None, extra: str = "") -> bytes:
    """An opening handshake (RFC 6455 §4.1) with a fresh key."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


async def http_exchange(port: int, request: bytes, *, tls: ssl.SSLContext | None = None,
                        ) -> tuple[int, dict[str, str], bytes]:
    """Send one request, read until the server closes or the announced body is complete;
    return status, headers (lower-case names) and body."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        HOST, port, ssl=tls, server_hostname=DOMAIN if tls else None), TIMEOUT)
    try:
        writer.write(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert chunk, f"closed before a response head: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status, headers = parse_head(head)
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert chunk, f"closed mid-body: {body!r}"
            body += chunk
        return status, headers, body
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and headers of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    assert re.fullmatch(r"HTTP/1\.1 \d{3} .*", lines[0]), lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


class WSClient:
    """One WebSocket connection; ``messages`` queues the text messages received."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.frames: list[ServerFrame] = []
        self.eof = False
        self.jid: str | None = None
        self.response_headers: dict[str, str] = {}

    @classmethod
    async def connect(cls, port: int, *, tls: ssl.SSLContext | None = None,
                      origin: str | None = None) -> WSClient:
        """Open a connection and complete the handshake (asserting the 101)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            HOST, port, ssl=tls, server_hostname=DOMAIN if tls else None), TIMEOUT)
        client = cls(reader, writer)
        await client.send_raw(handshake_request(origin=origin))
        status, headers = await client.read_response_head()
        assert status == 101, (status, headers)
        assert headers["sec-websocket-protocol"] == "xmpp", headers
        client.response_headers = headers
        return client

    async def read_response_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            await self._read()
            assert not self.eof, f"closed before a response: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return parse_head(head)

    async def close(self) -> None:
        """Close our side; never hangs."""
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    # ------------------------------------------------------------------ frames
    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def send_text(self, message: str | bytes) -> None:
        """One masked text frame."""
        await self.send_raw(text(message))

    async def _read(self, seconds: float = TIMEOUT) -> None:
        try:
            chunk = await asyncio.wait_for(self.reader.read(65536), seconds)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    async def next_frame(self, timeout: float = TIMEOUT) -> ServerFrame:
        """The next frame from the server (pings are answered, not returned)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frames, self.buffer = read_server_frames(self.buffer)
            self.frames.extend(frames)
            while self.frames:
                frame = self.frames.pop(0)
                if frame.opcode == PING:
                    await self.send_raw(client_frame(0xA, frame.payload))
                    continue
                return frame
            if self.eof:
                raise AssertionError(f"server closed; left over: {self.buffer!r}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no frame within {timeout}s; got {self.buffer!r}")
            try:
                await self._read(remaining)
            except TimeoutError:
                raise AssertionError(f"no frame within {timeout}s") from None

    async def next_message(self, timeout: float = TIMEOUT) -> str:
        """The next text message (asserting it is one, unfragmented)."""
        frame = await self.next_frame(timeout)
        assert frame.opcode == TEXT and frame.fin, frame
        return frame.payload.decode()

    async def next_element(self, timeout: float = TIMEOUT) -> ET.Element:
        """The next message, parsed: each must be a complete document (RFC 7395 §3.3.3)."""
        return ET.fromstring(await self.next_message(timeout))

    async def expect_close(self, code: int, timeout: float = TIMEOUT) -> list[str]:
        """Text messages up to a Close frame with ``code``, then TCP EOF; returns them."""
        texts = []
        while True:
            frame = await self.next_frame(timeout)
            if frame.opcode == CLOSE:
                assert frame.close_code == code, (frame.close_code, frame.payload)
                break
            texts.append(frame.payload.decode())
        await self.expect_eof()
        return texts

    async def expect_eof(self, timeout: float = 3.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof:
            remaining = deadline - loop.time()
            assert remaining > 0, "server did not close the TCP connection"
            with contextlib.suppress(TimeoutError):
                await self._read(remaining)

    async def expect_stream_error(self, condition: str, timeout: float = TIMEOUT) -> None:
        """<stream:error/> with ``condition``, then <close/>, then Close 1000 and EOF."""
        texts = await self.expect_close(1000, timeout)
        assert len(texts) >= 2, texts
        error, closing = ET.fromstring(texts[-2]), ET.fromstring(texts[-1])
        assert error.tag == f"{{{NS_STREAMS}}}error", texts
        assert [c.tag for c in error if c.tag.endswith(condition)] == \
            [f"{{{NS_STREAM_ERRORS}}}{condition}"], texts
        assert closing.tag == f"{{{NS_FRAMING}}}close", texts

    # ------------------------------------------------------------------ XMPP
    async def open_stream(self) -> ET.Element:
        """<open/>: returns the features (after asserting the server's <open/>)."""
        await self.send_text(OPEN)
        opened = await self.next_element()
        assert opened.tag == f"{{{NS_FRAMING}}}open", ET.tostring(opened)
        assert opened.get("from") == DOMAIN
        features = await self.next_element()
        assert features.tag == f"{{{NS_STREAMS}}}features", ET.tostring(features)
        return features

    def channel_binding(self) -> tuple[str, bytes] | None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        return ("tls-server-end-point", tls_server_end_point(ssl_object.getpeercert(True)))

    async def scram(self, username: str, password: str, mechanism: str) -> ET.Element:
        """A SCRAM exchange; returns <success/> (verified) or <failure/>."""
        hash_name = mechanism.removeprefix("SCRAM-").removesuffix("-PLUS")
        plus = mechanism.endswith("-PLUS")
        cb = self.channel_binding()
        client = ScramClient(hash_name, username, password, channel_binding=cb, plus=plus,
                             server_offers_plus=plus)
        first = base64.b64encode(client.first()).decode()
        await self.send_text(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
        step = await self.next_element()
        if step.tag != f"{{{NS_SASL}}}challenge":
            return step
        final = client.final(base64.b64decode(step.text or ""))
        await self.send_text(f"<response xmlns='{NS_SASL}'>"
                             f"{base64.b64encode(final).decode()}</response>")
        outcome = await self.next_element()
        if outcome.tag == f"{{{NS_SASL}}}success":
            client.verify(base64.b64decode(outcome.text or ""))
        return outcome

    async def login(self, username: str, *, mechanism: str = "SCRAM-SHA-256",
                    resource: str = "ws") -> str:
        """Open, authenticate, restart, bind; returns the bound JID."""
        features = await self.open_stream()
        offered = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert mechanism in offered, offered
        outcome = await self.scram(username, ACCOUNTS[username], mechanism)
        assert outcome.tag == f"{{{NS_SASL}}}success", ET.tostring(outcome)
        features = await self.open_stream()
        assert features.find(f"{{{NS_BIND}}}bind") is not None, ET.tostring(features)
        await self.send_text(f"<iq xmlns='jabber:client' type='set' id='bind'>"
                             f"<bind xmlns='{NS_BIND}'><resource>{resource}</resource>"
                             f"</bind></iq>")
        result = await self.next_element()
        jid = result.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        assert result.get("type") == "result" and jid is not None, ET.tostring(result)
        self.jid = jid.text
        assert self.jid is not None
        return self.jid


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """A verifying client context trusting the test CA."""
    return ssl.create_default_context(cafile=str(ca_file))
