"""XEP-0198 over real sockets: the TCP connection is cut mid-stream and no message is lost
or delivered twice.

Bob counts what he handles himself (raw client), so every 'h' in these tests is exact: he
receives messages, acknowledges only some, and the connection dies. Either he resumes (the
server retransmits exactly what he did not acknowledge) or the session ends (the server puts
the unacknowledged messages in offline storage, where his next login finds them).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import trustme
from rawxmpp import Gate, Harness, RawClient, body_of, eventually, running_server

NS_SM = "urn:xmpp:sm:3"
_ENABLED = re.compile(rb"<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'[^>]*/>")
_RESUMED = re.compile(rb"<resumed xmlns='urn:xmpp:sm:3' h='(\d+)' previd='([^']+)'/>")
_ACK = re.compile(rb"<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>")


async def enable(client: RawClient) -> str:
    """Enable stream management with resumption; return the resumption id."""
    await client.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    data = await client.read_until(_ENABLED)
    match = _ENABLED.search(data)
    assert match is not None
    return match.group(1).decode()


async def read_bodies(client: RawClient, count: int) -> list[str]:
    """The bodies of the next ``count`` messages (server <r/> requests in between are
    skipped: this client answers them only when a test says so)."""
    bodies = []
    for _ in range(count):
        message = await client.read_message()
        body = body_of(message)
        assert body is not None
        bodies.append(body)
    return bodies


async def send_messages(sender: RawClient, to: str, names: range) -> None:
    for i in names:
        await sender.send(f"<message to='{to}' type='chat' id='m{i}'><body>m{i}</body>"
                          "</message>")
    await sender.ping(f"sent-{names.stop}")  # every one of them has been routed


async def resume(h: Harness, previd: str, handled: int, user: str = "bob") -> RawClient:
    client = await h.connect()
    await client.authenticate(user)
    await client.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{handled}'/>")
    return client


def cut(client: RawClient) -> None:
    """The network goes away: no </stream:stream>, no TLS close_notify, no FIN handshake."""
    transport = client.writer.transport
    transport.abort()


@pytest.mark.timeout(30)
async def test_cut_connection_then_resume_delivers_each_message_exactly_once(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice", "desk")
        bob = await h.login("bob", "phone")
        previd = await enable(bob)
        assert bob.jid is not None
        await send_messages(alice, bob.jid, range(10))
        first = await read_bodies(bob, 10)
        # He handled five, acknowledged them, and the rest were in flight when the link died.
        await bob.send(f"<a xmlns='{NS_SM}' h='5'/>")
        await alice.ping("acked")
        cut(bob)
        await eventually(lambda: _hibernated(h, "bob"), "bob's session hibernates")
        # While he is away: messages to him go to storage, his session stays bound.
        await send_messages(alice, "bob@localhost", range(10, 15))

        again = await resume(h, previd, handled=5)
        data = await again.read_until(_RESUMED)
        resumed = _RESUMED.search(data)
        assert resumed is not None and resumed.group(2).decode() == previd
        assert resumed.group(1) == b"0"  # bob sent no stanza on the old stream
        retransmitted = await read_bodies(again, 5)
        await again.send("<presence/>")  # available again: the stored messages follow
        stored = await read_bodies(again, 5)

    delivered = first[:5] + retransmitted + stored
    assert retransmitted == [f"m{i}" for i in range(5, 10)]
    assert sorted(delivered, key=lambda b: int(b[1:])) == [f"m{i}" for i in range(15)]
    assert max(Counter(delivered).values()) == 1


@pytest.mark.timeout(30)
async def test_clean_close_without_resumption_stores_the_unacked_messages(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice", "desk")
        bob = await h.login("bob", "phone")
        await enable(bob)
        assert bob.jid is not None
        await send_messages(alice, bob.jid, range(8))
        await read_bodies(bob, 8)
        await bob.send(f"<a xmlns='{NS_SM}' h='3'/></stream:stream>")
        await bob.expect_closed()
        # A closed stream is not resumable: m3..m7 were never acknowledged, so they wait
        # in storage instead of being lost with the connection.
        await eventually(lambda: not h.server.hosts["localhost"].resources("bob"),
                         "bob's session ends")
        await eventually(lambda: _stored(h, "bob") == 5, "five messages stored")
        fresh = await h.login("bob", "tablet")
        await fresh.send("<presence/>")
        assert await read_bodies(fresh, 5) == [f"m{i}" for i in range(3, 8)]


@pytest.mark.timeout(30)
async def test_hibernated_session_expires_into_offline_storage(tmp_path: Path,
                                                               ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"c2s": {"sm_resume_timeout_s": 1}}) as h:
        alice = await h.login("alice", "desk")
        bob = await h.login("bob", "phone")
        previd = await enable(bob)
        assert bob.jid is not None
        await send_messages(alice, bob.jid, range(4))
        await read_bodies(bob, 4)
        cut(bob)  # nothing acknowledged
        await eventually(lambda: _hibernated(h, "bob"), "bob's session hibernates")
        await eventually(lambda: not h.server.hosts["localhost"].resources("bob"),
                         "the session expires", seconds=5)
        await eventually(lambda: _stored(h, "bob") == 4, "all four stored")
        late = await resume(h, previd, handled=0)
        await late.read_until(b"<failed xmlns='urn:xmpp:sm:3'><item-not-found")
        await late.bind("tablet")  # the stream goes on: a fresh session
        await late.send("<presence/>")
        assert await read_bodies(late, 4) == [f"m{i}" for i in range(4)]


@pytest.mark.timeout(30)
async def test_another_account_cannot_resume_a_session(tmp_path: Path,
                                                       ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob", "phone")
        previd = await enable(bob)
        cut(bob)
        await eventually(lambda: _hibernated(h, "bob"), "bob's session hibernates")
        thief = await resume(h, previd, handled=0, user="alice")
        await thief.read_until(b"<failed xmlns='urn:xmpp:sm:3'><item-not-found")
        assert _hibernated(h, "bob")  # untouched, still waiting for bob


@pytest.mark.timeout(30)
async def test_acking_more_than_was_sent_is_a_stream_error(tmp_path: Path,
                                                          ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob", "phone")
        await enable(bob)
        await bob.send(f"<a xmlns='{NS_SM}' h='7'/>")
        data = await bob.expect_stream_error("undefined-condition")
        assert b"<handled-count-too-high xmlns='urn:xmpp:sm:3' h='7' send-count='0'/>" in data


@pytest.mark.timeout(30)
async def test_server_answers_requests_with_the_count_it_handled(tmp_path: Path,
                                                                ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice", "desk")
        await enable(alice)
        for i in range(3):
            await alice.send(f"<message to='bob@localhost' id='x{i}'><body>x</body></message>")
        await alice.send(f"<r xmlns='{NS_SM}'/>")
        data = await alice.read_until(_ACK)
        match = _ACK.search(data)
        assert match is not None and match.group(1) == b"3"
        # And the server asks for our count once it has sent us something.
        await alice.ping("p")
        await alice.read_until(f"<r xmlns='{NS_SM}'/>".encode())


def _hibernated(h: Harness, user: str) -> bool:
    sessions = h.server.hosts["localhost"].resources(user)
    return bool(sessions) and all(s.hibernation is not None for s in sessions)


def _stored(h: Harness, user: str) -> int:
    """Offline messages of ``user``, read from the database file itself."""
    conn = sqlite3.connect(h.server.config.database)
    try:
        (n,) = conn.execute("SELECT COUNT(*) FROM offline_messages WHERE username = ?",
                            (user,)).fetchone()
        return int(n)
    finally:
        conn.close()



@pytest.mark.timeout(30)
async def test_resuming_while_the_old_connection_still_routes_loses_nothing(
        tmp_path: Path, ca: trustme.CA) -> None:
    """Stanzas the old connection had read but not yet routed (one waits for storage, the
    next queues behind it) are counted in <resumed h>: they must still be routed, before
    anything the resumed stream sends (found by review: they were dropped)."""
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob", "phone")
        alice = await h.login("alice", "desk")
        previd = await enable(alice)
        gate = Gate(h.server.storage, "store_offline")
        await alice.send("<message to='carol@localhost' type='chat'><body>to carol</body>"
                         f"</message><message to='{bob.jid}' type='chat' id='m2'>"
                         "<body>to bob</body></message>")
        await asyncio.wait_for(gate.entered.wait(), 5)  # carol's waits; bob's queues
        again = await resume(h, previd, handled=0, user="alice")
        await asyncio.sleep(0.2)
        assert _RESUMED.search(again.buffer) is None  # it waits for the old queue
        gate.release.set()
        data = await again.read_until(_RESUMED)
        resumed = _RESUMED.search(data)
        assert resumed is not None and resumed.group(1) == b"2"
        assert b"<message" not in data[:resumed.start()]  # nothing before <resumed/>
        message = await bob.read_message()
        assert body_of(message) == "to bob"
        await again.send(f"<message to='{bob.jid}' type='chat' id='m3'><body>after</body>"
                         "</message>")
        assert body_of(await bob.read_message()) == "after"
