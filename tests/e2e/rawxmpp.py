"""A raw XMPP client for end-to-end refusal tests: exact bytes over a real loopback socket.

Nothing here is clever on purpose: the client writes the bytes a test gives it and reads
into one buffer, so a test can send what no well-behaved library would (STARTTLS
injection, DTDs, half stanzas) and assert on exactly what the server answered. Every read
has a deadline; every failure message carries what was received.

Accounts come from a template database made once per test process with the real
``stockade user add`` CLI and copied into each test's data directory, so a test pays for a
server start (milliseconds) rather than for a CLI run per account (half a second each).

Example::

    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice")
        await alice.send("<foo xmlns='urn:x'/>")
        await alice.expect_stream_error("unsupported-stanza-type")
        await h.assert_still_serving()
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import functools
import re
import secrets
import shutil
import ssl
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from tests.conftest import Deployment, deployment_config

from stockade.core.sasl.scram import ScramClient
from stockade.server.config import load_config
from stockade.server.server import Server

HOST = "127.0.0.1"
DOMAIN = "localhost"
TIMEOUT = 5.0  # default deadline for one expected answer
CLOSE_TIMEOUT = 3.0  # how long the server may take to close TCP after </stream:stream>

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"

#: Accounts in every test server (created with the CLI), name -> password.
ACCOUNTS = {
    "alice": "alice-correct-horse",
    "bob": "bob-battery-staple",
    "carol": "carol-tr0ub4dor-3",
}

FEATURES_END = re.compile(rb"</stream:features>|<stream:features\s*/>")
PROCEED = f"<proceed xmlns='{NS_TLS}'/>".encode()
_SERVER_HEADER = re.compile(rb"<stream:stream\b[^>]*>")
_SASL_STEP = re.compile(
    rb"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>([^<]*)</challenge>"
    rb"|<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'(?:/>|>([^<]*)</success>)"
    rb"|<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>.*?</failure>",
    re.S,
)
_STREAM_ERROR = re.compile(rb"<stream:error>(.*?)</stream:error>", re.S)
_STREAM_CONDITION = re.compile(
    rb"<([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-streams'\s*/>")
_BOUND_JID = re.compile(rb"<jid>([^<]+)</jid>")
SASL_SUCCESS = re.compile(
    rb"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'(?:/>|>[^<]*</success>)")
ANY_MESSAGE = re.compile(rb"<message\b(?:[^>]*/>|[^>]*>.*?</message>)", re.S)

Until = bytes | re.Pattern[bytes] | Callable[[bytes], bool]
# The reads take ``timeout`` (ASYNC109 is silenced): a per-read deadline is this helper's API,
# and each one is enforced inside with asyncio.wait_for on every socket read.


def stream_header(to: str | None = DOMAIN, *, xmlns: str | None = NS_CLIENT,
                  stream_ns: str = NS_STREAMS, version: str | None = "1.0",
                  declaration: bool = True) -> bytes:
    """An initial stream header (RFC 6120 §4.7); every part can be left out or wrong."""
    attrs = []
    if xmlns is not None:
        attrs.append(f"xmlns='{xmlns}'")
    attrs.append(f"xmlns:stream='{stream_ns}'")
    if to is not None:
        attrs.append(f"to='{to}'")
    if version is not None:
        attrs.append(f"version='{version}'")
    decl = "<?xml version='1.0'?>" if declaration else ""
    return f"{decl}<stream:stream {' '.join(attrs)}>".encode()


def plain_auth(authcid: str, password: str, authzid: str = "") -> bytes:
    """An ``<auth mechanism='PLAIN'/>`` with its initial response (RFC 4616)."""
    payload = base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>".encode()


def sasl_failure(condition: str) -> bytes:
    """The exact SASL failure element the server sends (RFC 6120 §6.5)."""
    return f"<failure xmlns='{NS_SASL}'><{condition}/></failure>".encode()


def parse_stanza(fragment: bytes) -> ET.Element:
    """Parse one top-level element the server sent, in the jabber:client namespace."""
    wrapper = ET.fromstring(b"<w xmlns='jabber:client'>" + fragment + b"</w>")
    assert len(wrapper) == 1, fragment
    return wrapper[0]


def client_tls_context(ca_file: Path) -> ssl.SSLContext:
    """A verifying TLS client context trusting only the test CA."""
    return ssl.create_default_context(cafile=str(ca_file))


class RawClient:
    """One client connection; ``buffer`` holds what was received but not yet consumed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ca_file: Path) -> None:
        self.reader = reader
        self.writer = writer
        self.ca_file = ca_file
        self.buffer = b""
        self.eof = False
        self.header_seen = False  # a server stream header arrived on the current stream
        self.jid: str | None = None
        self.last_server_first = b""  # the SCRAM server-first-message of the last scram()

    @classmethod
    async def connect(cls, port: int, ca_file: Path, *, direct_tls: bool = False) -> RawClient:
        """Open a TCP connection (TLS from the first byte if ``direct_tls``)."""
        ctx = client_tls_context(ca_file) if direct_tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, ssl=ctx,
                                    server_hostname=DOMAIN if ctx else None), TIMEOUT)
        return cls(reader, writer, ca_file)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close our side; never hangs."""
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    # ------------------------------------------------------------------ bytes
    async def send(self, data: bytes | str) -> None:
        """Write ``data`` in one write (one sendall, for injection tests)."""
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def _receive(self, seconds: float) -> bool:
        """Read once into the buffer; False on timeout. EOF or reset sets ``eof``."""
        try:
            chunk = await asyncio.wait_for(self.reader.read(65536), seconds)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk
        return True

    def _match(self, until: Until) -> int | None:
        if isinstance(until, bytes):
            at = self.buffer.find(until)
            return None if at < 0 else at + len(until)
        if isinstance(until, re.Pattern):
            m = until.search(self.buffer)
            return None if m is None else m.end()
        return len(self.buffer) if until(self.buffer) else None

    async def read_until(self, until: Until, timeout: float = TIMEOUT) -> bytes:
        """Read until ``until`` (bytes, regex or predicate on the buffer) matches.

        Returns the buffer up to the end of the match (all of it for a predicate) and keeps
        the rest. Fails, showing what arrived, on timeout or if the server closes first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            end = self._match(until)
            if end is not None:
                data, self.buffer = self.buffer[:end], self.buffer[end:]
                if _SERVER_HEADER.search(data):
                    self.header_seen = True
                return data
            if self.eof:
                raise AssertionError(f"server closed before {until!r}; got {self.buffer!r}")
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._receive(remaining):
                raise AssertionError(f"no {until!r} within {timeout}s; got {self.buffer!r}")

    async def collect(self, duration: float) -> bytes:
        """Everything received within ``duration`` seconds (or until EOF), consumed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        while not self.eof:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._receive(remaining):
                break
        data, self.buffer = self.buffer, b""
        return data

    async def expect_closed(self, timeout: float = CLOSE_TIMEOUT) -> bytes:
        """Wait for EOF (the server closed TCP); return what arrived before it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._receive(remaining):
                raise AssertionError(f"server did not close the connection within {timeout}s;"
                                     f" got {self.buffer!r}")
        data, self.buffer = self.buffer, b""
        return data

    async def expect_stream_error(self, condition: str, timeout: float = TIMEOUT) -> bytes:
        """Read to ``</stream:stream>`` or EOF; assert the stream error is exactly
        ``condition`` (RFC 6120 §4.9.3) and that the server then closed TCP.

        Returns the bytes of the ``<stream:error/>`` element.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while b"</stream:stream>" not in self.buffer and not self.eof:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._receive(remaining):
                raise AssertionError(f"no end of stream within {timeout}s; got {self.buffer!r}")
        data, self.buffer = self.buffer, b""
        match = _STREAM_ERROR.search(data)
        assert match is not None, f"expected <{condition}/> stream error, got {data!r}"
        expected = f"<{condition} xmlns='{NS_STREAM_ERRORS}'/>".encode()
        assert expected in match.group(1), f"expected {expected!r}, got {match.group(0)!r}"
        conditions = [c.decode() for c in _STREAM_CONDITION.findall(match.group(1))]
        assert conditions == [condition], f"defined conditions {conditions}: {data!r}"
        # RFC 6120 §4.9.1.2: an error at stream setup still comes after a stream header.
        assert self.header_seen or _SERVER_HEADER.search(data[:match.start()]), data
        assert b"</stream:stream>" in data[match.end():], f"stream not closed: {data!r}"
        trailing = data[data.index(b"</stream:stream>", match.end()) + 16:]
        trailing += await self.expect_closed()
        assert not trailing.strip(), f"data after </stream:stream>: {trailing!r}"
        return match.group(0)

    # ------------------------------------------------------------------ negotiation
    async def open_stream(self, header: bytes | None = None) -> bytes:
        """Send a stream header; return the server's answer up to ``</stream:features>``."""
        self.header_seen = False
        await self.send(header if header is not None else stream_header())
        data = await self.read_until(FEATURES_END)
        assert self.header_seen, data
        return data

    async def restart(self) -> bytes:
        """The stream restart after TLS or SASL (RFC 6120 §4.3.3): a new header, new features."""
        return await self.open_stream()

    async def starttls(self) -> None:
        """``<starttls/>``, ``<proceed/>``, then the TLS handshake verifying 'localhost'."""
        await self.send(f"<starttls xmlns='{NS_TLS}'/>")
        await self.read_until(PROCEED)
        await self.start_tls_handshake()

    async def start_tls_handshake(self) -> None:
        """Just the TLS handshake (after a ``<proceed/>`` the test read itself)."""
        assert self.buffer == b"", f"bytes after <proceed/>: {self.buffer!r}"
        await asyncio.wait_for(
            self.writer.start_tls(client_tls_context(self.ca_file), server_hostname=DOMAIN),
            TIMEOUT)

    async def scram(self, username: str, password: str, *, hash_name: str = "SHA-256",
                    authzid: str | None = None) -> bytes:
        """A SCRAM exchange (RFC 5802, RFC 6120 §6.4); returns the final server element.

        On ``<success/>`` the server signature is verified.
        """
        client = ScramClient(hash_name, username, password, authzid=authzid)
        first = base64.b64encode(client.first()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-{hash_name}'>{first}</auth>")
        data = await self.read_until(_SASL_STEP)
        step = _SASL_STEP.search(data)
        assert step is not None
        if not step.group(0).startswith(b"<challenge"):
            return step.group(0)
        self.last_server_first = base64.b64decode(step.group(1))
        final = base64.b64encode(client.final(self.last_server_first)).decode()
        await self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        data = await self.read_until(_SASL_STEP)
        outcome = _SASL_STEP.search(data)
        assert outcome is not None
        if outcome.group(0).startswith(b"<success"):
            client.verify(base64.b64decode(outcome.group(2) or b""))
        return outcome.group(0)

    async def scram_server_first(self, username: str, hash_name: str = "SHA-256") -> str:
        """Send a client-first for ``username``; return the server-first, then abort."""
        client = ScramClient(hash_name, username, "irrelevant-password")
        first = base64.b64encode(client.first()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-{hash_name}'>{first}</auth>")
        data = await self.read_until(_SASL_STEP)
        step = _SASL_STEP.search(data)
        assert step is not None and step.group(0).startswith(b"<challenge"), data
        await self.send(f"<abort xmlns='{NS_SASL}'/>")
        await self.read_until(sasl_failure("aborted"))
        return base64.b64decode(step.group(1)).decode()

    async def bind(self, resource: str) -> str:
        """Resource binding (RFC 6120 §7); returns and remembers the full JID."""
        await self.send(f"<iq type='set' id='bind-1'><bind xmlns='{NS_BIND}'>"
                        f"<resource>{resource}</resource></bind></iq>")
        data = await self.read_until(re.compile(rb"<iq\b[^>]*\bid='bind-1'.*?</iq>", re.S))
        assert b"type='result'" in data, data
        jid = _BOUND_JID.search(data)
        assert jid is not None, data
        self.jid = jid.group(1).decode()
        return self.jid

    async def to_sasl(self) -> bytes:
        """Open, STARTTLS, reopen: return the post-TLS features (SASL offered)."""
        features = await self.open_stream()
        assert b"<starttls" in features, features
        await self.starttls()
        features = await self.restart()
        assert b"<mechanisms" in features, features
        return features

    async def authenticate(self, username: str, password: str | None = None) -> bytes:
        """to_sasl(), SCRAM, restart: return the post-SASL features (bind offered)."""
        await self.to_sasl()
        outcome = await self.scram(username, password or ACCOUNTS[username])
        assert outcome.startswith(b"<success"), outcome
        features = await self.restart()
        assert f"<bind xmlns='{NS_BIND}'/>".encode() in features, features
        return features

    async def ping(self, ping_id: str = "ping-1") -> None:
        """XEP-0199 ping to the server; asserts the result."""
        await self.send(f"<iq type='get' id='{ping_id}' to='{DOMAIN}'>"
                        f"<ping xmlns='{NS_PING}'/></iq>")
        data = await self.read_until(
            re.compile(rb"<iq\b[^>]*\bid='" + ping_id.encode() + rb"'[^>]*(?:/>|>.*?</iq>)",
                       re.S))
        reply = parse_stanza(data[data.rindex(b"<iq"):])
        assert reply.get("type") == "result", data

    async def read_message(self, timeout: float = TIMEOUT) -> ET.Element:
        """The next complete ``<message/>``; anything before it is dropped."""
        data = await self.read_until(ANY_MESSAGE, timeout)
        match = ANY_MESSAGE.search(data)
        assert match is not None
        return parse_stanza(match.group(0))


def body_of(message: ET.Element) -> str | None:
    """The text of a message's ``<body/>``."""
    body = message.find(f"{{{NS_CLIENT}}}body")
    return None if body is None else body.text


# ---------------------------------------------------------------------- servers


@functools.cache
def template_data_dir() -> Path:
    """A data directory whose database holds ``ACCOUNTS``, made once with the real CLI."""
    root = Path(tempfile.mkdtemp(prefix="stockade-refuse-template-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    deployment, _ = deployment_config(root, trustme.CA())
    for name, password in ACCOUNTS.items():  # one at a time: SQLite has one writer
        deployment.add_user(f"{name}@{DOMAIN}", password)
    return root / "data"


@dataclass
class Harness:
    """A running server and helpers to talk to it."""

    server: Server
    deployment: Deployment
    clients: list[RawClient] = field(default_factory=list)

    @property
    def starttls_port(self) -> int:
        return self.server.ports["starttls"][0]

    @property
    def direct_tls_port(self) -> int:
        return self.server.ports["direct_tls"][0]

    async def connect(self, *, direct_tls: bool = False) -> RawClient:
        """A new raw connection, closed when the harness ends."""
        port = self.direct_tls_port if direct_tls else self.starttls_port
        client = await RawClient.connect(port, self.deployment.ca_file, direct_tls=direct_tls)
        self.clients.append(client)
        return client

    async def login(self, username: str, resource: str | None = None) -> RawClient:
        """A connection logged in with SCRAM-SHA-256 and bound (RFC 6120 §5-§7)."""
        client = await self.connect()
        await client.authenticate(username)
        await client.bind(resource or f"r-{secrets.token_hex(4)}")
        return client

    async def assert_still_serving(self, observer: RawClient | None = None, *,
                                   sender: str = "alice", receiver: str = "bob") -> None:
        """A fresh client logs in and a message between two logged-in clients arrives.

        ``observer`` (the receiver, logged in before an attack) must get this message as the
        first thing since it logged in: nothing the attacker sent was delivered to it. (The
        server routes synchronously before it writes the attacker's stream error, so anything
        routed would already be in the observer's socket ahead of this message.)
        """
        alice = await self.login(sender)
        bob = observer or await self.login(receiver)
        body = f"still serving {secrets.token_hex(4)}"
        await alice.send(f"<message to='{bob.jid}' id='serving' type='chat'>"
                         f"<body>{body}</body></message>")
        data = await bob.read_until(ANY_MESSAGE)
        # Nothing at all reached the receiver before this message (not even a presence).
        assert ANY_MESSAGE.fullmatch(data), f"{bob.jid} received before it: {data!r}"
        message = parse_stanza(data)
        assert body_of(message) == body, ET.tostring(message)
        assert message.get("from") == alice.jid, ET.tostring(message)
        await alice.ping("serving-ping")

    async def close_clients(self) -> None:
        for client in self.clients:
            await client.close()


@functools.cache
def _rsa_leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(DOMAIN, key_type=trustme.KeyType.RSA)


def install_rsa_certificate(deployment: Deployment, ca: trustme.CA) -> None:
    """Replace the deployment's (ECDSA) server certificate with an RSA one from ``ca``."""
    cert = _rsa_leaf(ca)
    cert_file, key_file = deployment.root / "server.crt", deployment.root / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        with cert_file.open("ab") as f:
            f.write(pem.bytes())
    cert.private_key_pem.write_to_path(str(key_file))


@contextlib.asynccontextmanager
async def running_server(tmp_path: Path, ca: trustme.CA,
                         overrides: dict[str, dict[str, object]] | None = None, *,
                         rsa_certificate: bool = False) -> AsyncIterator[Harness]:
    """A real server on loopback ephemeral ports with ``ACCOUNTS``, stopped afterwards."""
    template = await asyncio.to_thread(template_data_dir)
    deployment, _ = deployment_config(tmp_path, ca, overrides)
    if rsa_certificate:
        install_rsa_certificate(deployment, ca)
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for db_file in template.glob("stockade.db*"):
        shutil.copy2(db_file, data_dir / db_file.name)
    server = Server(load_config(deployment.config_path))
    await server.start()
    harness = Harness(server, deployment)
    try:
        yield harness
    finally:
        await harness.close_clients()
        await server.stop()


class Gate:
    """Holds calls of one storage method (where ``when`` matches its arguments) until
    ``release`` is set: a busy storage thread, made deterministic."""

    def __init__(self, storage: Any, method: str,
                 when: Callable[..., bool] = lambda *_args: True) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        original = getattr(storage, method)

        async def held(*args: Any, **kwargs: Any) -> Any:
            if when(*args):
                self.entered.set()
                await self.release.wait()
            return await original(*args, **kwargs)

        setattr(storage, method, held)


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Wait until ``condition()`` holds, failing with ``what`` after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, f"not within {seconds}s: {what}"
        await asyncio.sleep(0.01)


async def attack_in_phase(h: Harness, phase: str, payload: bytes, condition: str) -> RawClient:
    """Log bob in, send ``payload`` from a client that is before TLS ("before-tls") or logged
    in ("established"), expect the stream error, and return bob (the observer)."""
    bob = await h.login("bob")
    assert bob.jid is not None
    if phase == "before-tls":
        client = await h.connect()
        await client.open_stream()
    else:
        client = await h.login("alice")
    await client.send(payload.replace(b"{to}", bob.jid.encode()))
    await client.expect_stream_error(condition)
    return bob
