"""XEP-0198 end to end with the real slixmpp client and its xep_0198 plugin.

The server's acks keep slixmpp's unacknowledged queue short and both sides' counters agree;
a TCP connection cut under a client (no </stream:stream>, messages in flight) is resumed by
the plugin and every message arrives exactly once; and where resumption is impossible no
message is lost: the unacknowledged ones wait in offline storage for the next login.

How the plugin behaves (slixmpp/plugins/xep_0198/stream_management.py): after binding it
sends <enable resume='true'/> (``allow_resume``), keeps the id of <enabled/>, counts inbound
stanzas in ``handled`` and outbound ones in ``seq`` and asks for an ack every ``window``
stanzas. <enabled/> sets ``end_session_on_disconnect = False``, so that state survives a
dropped connection. slixmpp does not reconnect by itself: a test calls ``connect()`` again,
and with an id kept the plugin sends <resume/> instead of binding and fires
'session_resumed' (on <failed/> it fires 'sm_failed' and binds a new session).

"In flight" is made exact: the receiving client stops reading (``pause_reading``), the test
waits until the server has written the messages (they are in its unacked queue), then cuts.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import slixmpp
from rawxmpp import Gate, eventually
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    STEP_TIMEOUT,
    Client,
    assert_empty,
    connect_and_start,
    disconnect_all,
    next_item,
    next_matching,
    registered_accounts,
)
from tests.conftest import Deployment, write_config

from stockade.core.jid import JID
from stockade.core.stream.sm import SMState
from stockade.server.config import load_config
from stockade.server.server import Server
from stockade.server.session import Detached, Session

WINDOW = 5  # the plugin asks for an ack after every 5 stanzas it sends
accounts_template, deployment = registered_accounts()


@pytest.fixture
def c2s_overrides() -> dict[str, object]:
    """[c2s] settings of the test's server (a test parametrizes this to change them)."""
    return {}


@pytest.fixture
async def server(deployment: Deployment, c2s_overrides: dict[str, object],
                 ) -> AsyncIterator[Server]:
    """A running server with the test's [c2s] settings."""
    if c2s_overrides:
        raw = tomllib.loads(deployment.config_path.read_text(encoding="utf-8"))
        raw["c2s"].update(c2s_overrides)
        write_config(deployment.config_path, raw)
    srv = Server(load_config(deployment.config_path))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[list[Client]]:
    """Clients a test creates; all disconnected before the server stops."""
    made: list[Client] = []
    yield made
    await disconnect_all(made)


# ---------------------------------------------------------------------------- helpers


def sm_client(deployment: Deployment, jid: str, *, allow_resume: bool = True) -> Client:
    client = Client(jid, ACCOUNTS[jid.split("/")[0]], deployment.ca_file)
    client.register_plugin("xep_0198", pconfig={"window": WINDOW,
                                                "allow_resume": allow_resume})
    return client


def first_of(client: Client, *events: str) -> asyncio.Future[tuple[str, Any]]:
    """Resolves with (name, data) of whichever of ``events`` the client fires first."""
    future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
    for name in events:
        def handler(data: Any, name: str = name) -> None:
            if not future.done():
                future.set_result((name, data))
        client.add_event_handler(name, handler, disposable=True)
    return future


async def settle(future: asyncio.Future[Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(future, STEP_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def start_with_sm(client: Client, port: int) -> None:
    """Log in, let the plugin enable stream management, then send initial presence."""
    enabled = first_of(client, "sm_enabled", "sm_failed")  # fires after session_start
    await connect_and_start(client, port)
    name, _ = await settle(enabled, f"stream management for {client.boundjid}")
    assert name == "sm_enabled"
    client.send_presence()
    await next_matching(client.presences, "own presence",
                        lambda p: p["from"] == client.boundjid)


async def alice_and_bob(deployment: Deployment, server: Server, clients: list[Client], *,
                        allow_resume: bool = True) -> tuple[Client, Client, Session]:
    """alice (no stream management) and bob/phone (with it, available); bob's session."""
    alice = Client(ALICE + "/desk", ACCOUNTS[ALICE], deployment.ca_file)
    bob = sm_client(deployment, BOB + "/phone", allow_resume=allow_resume)
    clients.extend((alice, bob))
    await connect_and_start(alice, server.ports["starttls"][0])
    await start_with_sm(bob, server.ports["starttls"][0])
    return alice, bob, session_of(server, bob)


def session_of(server: Server, client: Client) -> Session:
    session = server.hosts["localhost"].session_for(JID.parse(str(client.boundjid)))
    assert session is not None and session.sm is not None
    return session


def sm_of(session: Session) -> SMState:
    assert session.sm is not None
    return session.sm


def send_batch(sender: Client, to: str, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}{i}" for i in range(count)]
    for body in names:
        sender.send_message(mto=to, mbody=body, mtype="chat")
    return names


async def messages(client: Client, count: int, what: str) -> list[slixmpp.Message]:
    return [await next_item(client.messages, f"{what} {i + 1} of {count}")
            for i in range(count)]


async def bodies(client: Client, count: int) -> list[str]:
    return [m["body"] for m in await messages(client, count, "message")]


async def all_routed(sender: Client) -> None:
    """The server handles a session's stanzas in order: once a ping from the same client
    is answered, every message sent before it has been routed (or stored)."""
    await sender.plugin["xep_0199"].send_ping("localhost", timeout=STEP_TIMEOUT)


async def stored(server: Server, user: str, count: int) -> None:
    """Wait until ``count`` messages of ``user`` are in offline storage."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while (n := await server.storage.count_offline(user)) != count:
        assert loop.time() < deadline, f"{n} stored for {user}, not {count}"
        await asyncio.sleep(0.01)


async def cut_with_messages_in_flight(alice: Client, bob: Client, state: SMState) -> list[str]:
    """bob stops reading; alice sends him messages, the server writes them (they wait in its
    unacked queue) and bob's TCP connection is cut before he has handled any of them: no
    </stream:stream>, no TLS close_notify."""
    assert bob.transport is not None
    bob.transport.pause_reading()
    in_flight = send_batch(alice, BOB + "/phone", "flight-", 5)
    await eventually(lambda: [b for b in in_flight if any(f"<body>{b}</body>" in x
                                                          for x in state.unacked)] == in_flight,
                     "the server wrote the messages to bob", seconds=STEP_TIMEOUT)
    gone = first_of(bob, "disconnected")
    assert bob.transport is not None
    bob.transport.abort()
    await settle(gone, "bob's side of the cut")
    assert bob.messages.empty()  # he never handled them
    return in_flight


async def reconnect(client: Client, port: int) -> tuple[str, Any]:
    """Connect again; return the first of 'session_resumed' (the plugin resumed) and
    'session_start' (it bound a new session)."""
    outcome = first_of(client, "session_resumed", "session_start")
    client.connect(host="127.0.0.1", port=port)
    result: tuple[str, Any] = await settle(outcome, f"{client.boundjid} back online")
    return result


# ---------------------------------------------------------------------------- acks


@pytest.mark.timeout(20)
async def test_server_acks_keep_the_client_queue_short_and_counters_agree(
        deployment: Deployment, server: Server, clients: list[Client]) -> None:
    alice = sm_client(deployment, ALICE + "/desk")
    bob = sm_client(deployment, BOB + "/phone")
    clients.extend((alice, bob))
    for client in (alice, bob):
        await start_with_sm(client, server.ports["starttls"][0])
    sm = bob.plugin["xep_0198"]
    state = sm_of(session_of(server, bob))
    assert sm.enabled_in and sm.enabled_out
    assert sm.sm_id == state.id and state.resumable  # resumption offered, by this id
    acked: list[Any] = []
    bob.add_event_handler("stanza_acked", acked.append)

    sent_by_bob = send_batch(bob, ALICE + "/desk", "b", 40)
    sent_by_alice = send_batch(alice, BOB + "/phone", "a", 40)
    assert await bodies(alice, 40) == sent_by_bob
    assert await bodies(bob, 40) == sent_by_alice

    # The plugin asks every WINDOW stanzas; without the server's <a/> answers all 40 (and
    # the presence) would still be queued.
    await eventually(lambda: len(sm.unacked_queue) < WINDOW, "bob's queue drains",
                     seconds=STEP_TIMEOUT)
    acked_bodies = [s["body"] for s in acked if isinstance(s, slixmpp.Message)]
    assert acked_bodies == sent_by_bob[:len(acked_bodies)]
    assert len(acked_bodies) > len(sent_by_bob) - WINDOW

    # Two independent counters per direction, slixmpp's and the server's, agree exactly.
    await eventually(lambda: state.inbound == sm.seq, "server counted what bob sent",
                     seconds=STEP_TIMEOUT)
    await eventually(lambda: state.sent == sm.handled, "bob counted what the server sent",
                     seconds=STEP_TIMEOUT)


# ---------------------------------------------------------------------------- resumption


@pytest.mark.timeout(20)
async def test_cut_connection_is_resumed_and_every_message_arrives_once(
        deployment: Deployment, server: Server, clients: list[Client]) -> None:
    alice, bob, session = await alice_and_bob(deployment, server, clients)
    sm_id = bob.plugin["xep_0198"].sm_id

    before = send_batch(alice, BOB + "/phone", "before-", 5)
    received = await bodies(bob, 5)
    in_flight = await cut_with_messages_in_flight(alice, bob, sm_of(session))
    await eventually(lambda: isinstance(session.conn, Detached), "bob's session hibernates",
                     seconds=STEP_TIMEOUT)
    # While he is away his session stays bound; messages to him go to offline storage.
    away = send_batch(alice, BOB + "/phone", "away-", 5)
    await all_routed(alice)

    name, resumed = await reconnect(bob, server.ports["starttls"][0])
    assert name == "session_resumed"
    assert resumed["previd"] == sm_id
    assert server.hosts["localhost"].session_for(session.jid) is session  # the same one
    later = await messages(bob, len(in_flight) + len(away), "message after resuming")
    await assert_empty(bob.messages, "a duplicate", wait=0.3)

    # Retransmitted as first sent, then the stored ones (stamped by XEP-0203).
    assert [m["body"] for m in later] == in_flight + away
    assert [bool(m["delay"]["stamp"]) for m in later] == [False] * 5 + [True] * 5
    delivered = received + [m["body"] for m in later]
    assert Counter(delivered) == Counter(before + in_flight + away)  # each exactly once
    sm = bob.plugin["xep_0198"]
    await eventually(lambda: sm_of(session).sent == sm.handled,
                     "the counters still agree after resuming", seconds=STEP_TIMEOUT)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("c2s_overrides", "allow_resume"), [
    ({"sm_resume_timeout_s": 0}, True),  # the server offers no resumption
    ({}, False),  # the client does not ask for it
], ids=["server-offers-none", "client-asks-none"])
async def test_without_resumption_unacked_messages_wait_in_offline_storage(
        deployment: Deployment, server: Server, clients: list[Client],
        allow_resume: bool) -> None:
    alice, bob, session = await alice_and_bob(deployment, server, clients,
                                              allow_resume=allow_resume)
    assert bob.plugin["xep_0198"].sm_id is None  # <enabled/> carried no id
    assert not sm_of(session).resumable

    before = send_batch(alice, BOB + "/phone", "before-", 5)
    received = await bodies(bob, 5)
    # Bob's ack of those must have arrived: a message handled but not yet acknowledged when
    # the link dies is, by XEP-0198's rules, rerouted (the client may see it twice).
    await eventually(lambda: not sm_of(session).unacked, "bob acknowledged the first five",
                     seconds=STEP_TIMEOUT)
    in_flight = await cut_with_messages_in_flight(alice, bob, sm_of(session))
    # Not resumable: the session ends and what bob never acknowledged is rerouted.
    await stored(server, "bob", len(in_flight))
    assert not server.hosts["localhost"].resources("bob")
    away = send_batch(alice, BOB, "away-", 3)
    await all_routed(alice)

    name, _ = await reconnect(bob, server.ports["starttls"][0])
    assert name == "session_start"  # a new session, not a resumed one
    bob.send_presence()  # initial presence: the stored messages follow
    later = await messages(bob, len(in_flight) + len(away), "stored message")
    await assert_empty(bob.messages, "a duplicate", wait=0.3)

    assert [m["body"] for m in later] == in_flight + away
    assert all(m["delay"]["stamp"] for m in later)  # from offline storage
    assert Counter(received + [m["body"] for m in later]) == Counter(
        before + in_flight + away)


@pytest.mark.timeout(20)
async def test_rerouted_messages_are_not_overtaken_by_newer_ones(
        deployment: Deployment, server: Server, clients: list[Client]) -> None:
    alice, bob, session = await alice_and_bob(deployment, server, clients,
                                              allow_resume=False)
    # A busy storage thread, made deterministic: the first rerouted message is held.
    gate = Gate(server.storage, "store_offline",
                when=lambda _user, xml, *_: "<body>flight-0</body>" in xml)
    in_flight = await cut_with_messages_in_flight(alice, bob, sm_of(session))
    await settle(asyncio.ensure_future(gate.entered.wait()), "the reroute")
    away = send_batch(alice, BOB, "away-", 3)  # sent after the in-flight ones
    # Alice's first new message reaches offline storage while the reroute is still held:
    # it is queued behind it (and her stream waits for it, so the rest follow in order).
    offline = server.hosts["localhost"].offline
    await eventually(lambda: len(offline.tasks) > len(in_flight),
                     "a new message is queued behind the reroute")
    gate.release.set()
    await all_routed(alice)
    await stored(server, "bob", len(in_flight) + len(away))

    await reconnect(bob, server.ports["starttls"][0])
    bob.send_presence()
    later = await messages(bob, len(in_flight) + len(away), "stored message")
    assert sorted(m["body"] for m in later) == sorted(in_flight + away)  # nothing lost
    assert [m["body"] for m in later] == in_flight + away  # observed: away-* come first
