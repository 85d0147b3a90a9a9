"""Regressions from the issue-2 review: how a stream ends.

Stanzas a client sent before it closed (``</stream:stream>``, TLS close_notify or a TCP FIN)
are still processed; a half-closed connection stuck behind unread data can be replaced and
does not break shutdown; shutdown finishes the storage work already started; and a client
cannot pile up elements while its SASL credential is being looked up.

Some clients here run TLS on memory BIOs (:class:`BioTLSClient`), so the test decides which
records go into which TCP write and can half-close TCP under TLS, which asyncio's own TLS
transport cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from rawxmpp import (
    ACCOUNTS,
    DOMAIN,
    HOST,
    TIMEOUT,
    Gate,
    Harness,
    RawClient,
    body_of,
    client_tls_context,
    eventually,
    plain_auth,
    running_server,
)

from stockade.storage import StorageError, open_storage


class BioTLSClient(RawClient):
    """A raw client whose TLS runs on memory BIOs: :meth:`queue` encrypts without writing,
    :meth:`write_out` puts everything queued into one TCP write, and ``writer.write_eof()``
    half-closes TCP without a close_notify."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ca_file: Path) -> None:
        super().__init__(reader, writer, ca_file)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tls: ssl.SSLObject | None = None

    @classmethod
    async def open(cls, h: Harness) -> BioTLSClient:
        """A plain TCP connection to the STARTTLS port, closed when the harness ends."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, h.starttls_port), TIMEOUT)
        client = cls(reader, writer, h.deployment.ca_file)
        h.clients.append(client)
        return client

    async def start_tls_handshake(self) -> None:
        assert self.buffer == b"", f"bytes after <proceed/>: {self.buffer!r}"
        self.tls = client_tls_context(self.ca_file).wrap_bio(self._in, self._out,
                                                             server_hostname=DOMAIN)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self.write_out()
                chunk = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
                assert chunk, "server closed during the TLS handshake"
                self._in.write(chunk)
        await self.write_out()

    def queue(self, data: bytes | str) -> None:
        """Encrypt ``data`` into TLS records that wait for :meth:`write_out`."""
        assert self.tls is not None
        self.tls.write(data.encode() if isinstance(data, str) else data)

    def queue_close_notify(self) -> None:
        """Our TLS close_notify, waiting for :meth:`write_out`."""
        assert self.tls is not None
        # The server's close_notify has not arrived (SSLWantReadError); ours is in the BIO.
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()

    async def write_out(self) -> None:
        """Everything queued, in one TCP write."""
        data = self._out.read()
        if data:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def send(self, data: bytes | str) -> None:
        if self.tls is None:
            await super().send(data)
            return
        self.queue(data)
        await self.write_out()

    async def _receive(self, seconds: float) -> bool:
        if self.tls is None:
            return await super()._receive(seconds)
        try:
            chunk = await asyncio.wait_for(self.reader.read(65536), seconds)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return True
        self._in.write(chunk)
        while True:
            try:
                plaintext = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:
                break  # the server's close_notify (or an alert): TCP EOF follows
            if not plaintext:
                break
            self.buffer += plaintext
        return True



def _connection_of(h: Harness, jid: str) -> Any:
    conns = [c for c in h.server.connections if c.session and str(c.session.jid) == jid]
    assert len(conns) == 1, (jid, conns)
    return conns[0]


async def _available(h: Harness, username: str, resource: str) -> RawClient:
    client = await h.login(username, resource)
    await client.send("<presence/>")
    await client.read_until(b"<presence")
    return client


@pytest.mark.timeout(30)
async def test_message_with_stream_end_and_close_notify_in_one_read_is_delivered(
        tmp_path: Path, ca: trustme.CA) -> None:
    """Defect r1: a message, ``</stream:stream>`` and the TLS close_notify arriving in one
    read were dropped (the close_notify closed the connection before the plaintext read
    with it was processed). The message must be delivered."""
    async with running_server(tmp_path, ca) as h:
        bob = await _available(h, "bob", "phone")
        alice = await BioTLSClient.open(h)
        await alice.authenticate("alice")
        await alice.bind("desk")
        alice.queue(f"<message to='{bob.jid}' type='chat' id='m1'>"
                    f"<body>hello before close_notify</body></message>")
        alice.queue("</stream:stream>")
        alice.queue_close_notify()
        await alice.write_out()  # message + stream end + close_notify: one TCP write
        message = await bob.read_message()
        assert body_of(message) == "hello before close_notify"
        assert message.get("from") == "alice@localhost/desk"
        assert message.get("id") == "m1"
        # The server answers the stream end and closes.
        assert b"</stream:stream>" in await alice.expect_closed()
        await bob.ping("after")


@pytest.mark.timeout(30)
async def test_stanzas_read_before_tcp_fin_are_processed(tmp_path: Path,
                                                         ca: trustme.CA) -> None:
    """Defect r2: ``<presence/>`` + message + ``</stream:stream>`` followed by a TCP FIN
    (half-close, no close_notify): the FIN arriving while the presence was still being
    processed dropped the message queued behind it. The message must be delivered."""
    async with running_server(tmp_path, ca) as h:
        bob = await _available(h, "bob", "phone")
        # Alice's presence waits for her roster until the FIN has been handled.
        gate = Gate(h.server.storage, "get_roster", lambda username: username == "alice")
        alice = await BioTLSClient.open(h)
        await alice.authenticate("alice")
        await alice.bind("desk")
        try:
            await alice.send(f"<presence/><message to='{bob.jid}' type='chat' id='m1'>"
                             f"<body>hello before FIN</body></message></stream:stream>")
            alice.writer.write_eof()  # TCP FIN under TLS, no close_notify
            await alice.expect_closed()  # the server handled the FIN: it closed too
            await asyncio.wait_for(gate.entered.wait(), TIMEOUT)
        finally:
            gate.release.set()
        message = await bob.read_message()
        assert body_of(message) == "hello before FIN"
        assert message.get("from") == "alice@localhost/desk"
        await bob.ping("after")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("relogin", [True, False], ids=["kick-old-then-stop", "stop"])
async def test_half_closed_tls_connection_can_be_replaced_and_stopped(
        tmp_path: Path, ca: trustme.CA, relogin: bool) -> None:
    """Defect r12/r12b: a client half-closed TCP (no close_notify) while the server still
    had unsent data for it, so its connection stayed bound in the closing state. Writing
    the stream error to that TLS session raised: a new login with the same resource
    (kick_old) failed, and ``server.stop()`` raised before closing storage. The new login
    must bind, and ``stop()`` must complete and close storage."""
    async with running_server(tmp_path, ca, {"c2s": {"resource_conflict": "kick_old"}}) as h:
        old = await BioTLSClient.open(h)
        await old.authenticate("alice")
        await old.bind("r")  # and never reads again
        bob = await h.login("bob", "phone")
        conn = _connection_of(h, "alice@localhost/r")
        pad = "p" * 200_000
        for batch in range(40):  # until the server holds unsent bytes for alice/r
            if conn.transport.get_write_buffer_size() > 0:
                break
            for i in range(5):
                await bob.send(f"<iq type='get' id='q{batch}-{i}' to='alice@localhost/r'>"
                               f"<x xmlns='urn:example:pad'>{pad}</x></iq>")
            await bob.ping(f"routed-{batch}")
        assert conn.transport.get_write_buffer_size() > 0, "alice/r never backed up"
        old.writer.write_eof()  # TCP FIN, no close_notify
        await eventually(conn.transport.is_closing, "the server saw the FIN")
        # The precondition of the defect: still bound, closing, with unsent data.
        assert conn in h.server.connections
        assert conn.session is not None
        assert conn.transport.get_write_buffer_size() > 0

        if relogin:
            new = await h.login("alice", "r")
            assert new.jid == "alice@localhost/r"
            sessions = h.server.hosts["localhost"].resources("alice")
            assert len(sessions) == 1, sessions
            assert sessions[0].conn is not conn, "the old connection is still bound"
            await new.ping("new-session")

        await asyncio.wait_for(h.server.stop(), 15)  # completes, does not raise
        with pytest.raises(StorageError):
            await h.server.storage.count_offline("bob")  # storage was closed


@pytest.mark.timeout(30)
async def test_message_stored_while_the_server_stops_is_kept(tmp_path: Path,
                                                             ca: trustme.CA) -> None:
    """Defect r13: ``server.stop()`` closed storage right after closing the connections,
    so a message to an offline user whose storage write was still in progress was lost.
    Shutdown must wait for that work: the message is in the database afterwards."""
    async with running_server(tmp_path, ca) as h:
        database = h.server.config.database
        # The offline store is held inside its storage work (a busy SQLite worker).
        gate = Gate(h.server.storage, "count_offline", lambda username: username == "bob")
        alice = await h.login("alice", "desk")
        try:
            await alice.send("<message to='bob@localhost' type='chat' id='m1'>"
                             "<body>important</body></message>")
            await asyncio.wait_for(gate.entered.wait(), TIMEOUT)
            stop = asyncio.create_task(h.server.stop())  # SIGTERM path
            await asyncio.sleep(0.3)  # far longer than stop() needs when it does not wait
            assert not stop.done(), "stop() finished while a message was being stored"
        finally:
            gate.release.set()
        await asyncio.wait_for(stop, 15)
    storage = open_storage(str(database))
    await storage.open()
    try:
        stored = await storage.fetch_offline("bob")
    finally:
        await storage.close()
    assert len(stored) == 1, stored
    assert "<body>important</body>" in stored[0].stanza, stored[0].stanza
    assert "id='m1'" in stored[0].stanza or 'id="m1"' in stored[0].stanza, stored[0].stanza


@pytest.mark.timeout(30)
async def test_pipelining_during_credential_lookup_is_a_policy_violation(
        tmp_path: Path, ca: trustme.CA) -> None:
    """Defect r6: while the SASL credential was being looked up, everything a peer sent was
    kept in an unbounded backlog (memory held for an unauthenticated peer). The backlog is
    bounded: pipelining many elements ends the stream with ``<policy-violation/>``."""
    async with running_server(tmp_path, ca) as h:
        gate = Gate(h.server.storage, "get_credential")  # the lookup stays pending
        client = await h.connect()
        await client.to_sasl()
        junk = "".join(f"<x xmlns='urn:example:junk'>{i:04d}</x>" for i in range(64))
        try:
            # All of it in one write (read at once by the server, so its close is a FIN).
            await client.send(plain_auth("alice", ACCOUNTS["alice"]).decode() + junk)
            await asyncio.wait_for(gate.entered.wait(), TIMEOUT)
            # The error goes out while the lookup is still pending (not after it) ...
            seen = await client.read_until(lambda data: b"</stream:stream>" in data)
            client.buffer = seen + client.buffer
        finally:
            gate.release.set()
        # ... and is exactly <policy-violation/>; TCP closes once the lookup returns.
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()
