"""XEP-0115 on a real host: a client's caps are verified before they count, cached by ver
for other clients, and never taken from a client that lies about its ver."""

from __future__ import annotations

import pytest

from stockade.core.pubsub.caps import NS_DISCO_INFO, compute_ver
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules import xep0115_caps
from stockade.server.modules.xep0115_caps import Caps, _Cache
from stockade.server.session import Session
from tests.server.pep_support import (
    DOMAIN,
    FakeConn,
    answer_caps_query,
    caps_presence,
    disco_info,
    eventually,
    host,
    online,
    send,
    settle,
)

__all__ = ["host"]  # the fixture

OMEMO = "urn:xmpp:omemo:2:devices"
NOTIFY = [f"{OMEMO}+notify", "urn:xmpp:avatar:metadata+notify"]


def caps(host: Host) -> Caps:
    module = host.modules["xep0115_caps"]
    assert isinstance(module, Caps)
    return module


def bind(host: Host, user: str, resource: str) -> tuple[Session, FakeConn]:
    conn = FakeConn()
    session = host.bind(user, resource, conn)
    assert isinstance(session, Session)
    return session, conn


def queries(conn: FakeConn) -> list[Element]:
    return [e for e in conn.received if e.name == "iq" and e.get("type") == "get"]


async def test_verified_caps_set_the_notify_nodes(host: Host) -> None:
    session, conn = bind(host, "alice", "a")
    ver = compute_ver(disco_info(NOTIFY))
    await send(host, session, caps_presence(ver))
    query = await answer_caps_query(host, session, conn, NOTIFY)
    # §6.2: the question goes to the client's full JID, for node#ver, from the server.
    assert query.get("to") == f"alice@{DOMAIN}/a" and query.get("from") == DOMAIN
    assert query.find(NS_DISCO_INFO, "query").get("node") == f"https://client.example#{ver}"  # type: ignore[union-attr]
    await eventually(lambda: caps(host).notify_nodes(session) ==
                     {OMEMO, "urn:xmpp:avatar:metadata"}, "notify nodes")
    assert set(NOTIFY) <= caps(host).features(session)


async def test_a_known_ver_is_not_asked_again(host: Host) -> None:
    await online(host, "alice", "a", notify=[OMEMO])
    bob, b_conn = bind(host, "bob", "b")
    await send(host, bob, caps_presence(compute_ver(disco_info([f"{OMEMO}+notify"]))))
    await settle()
    assert queries(b_conn) == []  # the cached, verified answer serves every client
    assert caps(host).notify_nodes(bob) == {OMEMO}


async def test_a_lying_client_gets_nothing_and_poisons_nothing(host: Host) -> None:
    honest_ver = compute_ver(disco_info(["urn:xmpp:ping"]))  # no +notify in it
    liar, l_conn = bind(host, "carol", "liar")
    await send(host, liar, caps_presence(honest_ver))
    await answer_caps_query(host, liar, l_conn, NOTIFY)  # answers with other features
    await settle()
    assert caps(host).notify_nodes(liar) == frozenset()
    assert caps(host).features(liar) == frozenset()
    # Another client claiming the same ver is asked itself: nothing was cached.
    bob, b_conn = bind(host, "bob", "b")
    await send(host, bob, caps_presence(honest_ver))
    await answer_caps_query(host, bob, b_conn, ["urn:xmpp:ping"])
    await eventually(lambda: caps(host).features(bob) == {"urn:xmpp:ping"}, "bob's caps")
    assert caps(host).notify_nodes(bob) == frozenset()
    # The liar repeating its claim is not asked again, and still gets nothing.
    await send(host, liar, caps_presence(honest_ver))
    await settle()
    assert caps(host).notify_nodes(liar) == frozenset()


async def test_an_error_answer_or_silence_counts_as_no_caps(host: Host,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    monkeypatch.setattr(xep0115_caps, "QUERY_TIMEOUT_S", 0.05)
    session, conn = bind(host, "alice", "a")
    await send(host, session, caps_presence("bm90IGEgcmVhbCB2ZXI="))
    await eventually(lambda: bool(queries(conn)), "caps query")
    (query,) = conn.take(lambda e: e.name == "iq")
    error = Element(NS_CLIENT, "iq", {"type": "error", "id": query.attrs["id"], "to": DOMAIN})
    await send(host, session, error)
    await settle()
    assert caps(host).notify_nodes(session) == frozenset()
    silent, s_conn = bind(host, "bob", "b")
    await send(host, silent, caps_presence("c2lsZW5jZQ=="))
    await eventually(lambda: bool(queries(s_conn)), "caps query")
    await eventually(lambda: caps(host)._tasks == set(), "the lookup to give up")
    assert caps(host).notify_nodes(silent) == frozenset()


async def test_only_the_asked_client_can_answer(host: Host) -> None:
    session, conn = bind(host, "alice", "a")
    other, _ = bind(host, "bob", "b")
    ver = compute_ver(disco_info(NOTIFY))
    await send(host, session, caps_presence(ver))
    await eventually(lambda: bool(queries(conn)), "caps query")
    (query,) = queries(conn)
    forged = Element(NS_CLIENT, "iq", {"type": "result", "id": query.attrs["id"],
                                       "to": DOMAIN})
    inner = disco_info(NOTIFY)
    forged.append(inner)
    await send(host, other, forged)  # bob answers alice's query: not taken
    await settle()
    assert caps(host).notify_nodes(session) == frozenset()


async def test_unavailable_clears_interest_and_presence_restores_it(host: Host) -> None:
    seen: list[frozenset[str]] = []

    async def listener(session: Session, nodes: frozenset[str]) -> None:
        seen.append(nodes)

    caps(host).add_listener(listener)
    session, _ = await online(host, "alice", "a", notify=[OMEMO])
    assert seen == [{OMEMO}]
    await send(host, session, caps_presence(compute_ver(disco_info([f"{OMEMO}+notify"]))))
    await settle()
    assert seen == [{OMEMO}]  # a presence update with the same caps: nothing new
    await send(host, session, Element(NS_CLIENT, "presence", {"type": "unavailable"}))
    assert caps(host).notify_nodes(session) == frozenset()
    await send(host, session, caps_presence(compute_ver(disco_info([f"{OMEMO}+notify"]))))
    await settle()
    assert seen == [{OMEMO}, {OMEMO}]  # available again: the last items are due again
    await send(host, session, Element(NS_CLIENT, "presence"))  # caps dropped
    assert caps(host).notify_nodes(session) == frozenset()


async def test_a_newer_claim_wins_over_a_pending_lookup(host: Host) -> None:
    session, conn = bind(host, "alice", "a")
    first, second = [f"{OMEMO}+notify"], ["urn:xmpp:avatar:metadata+notify"]
    await send(host, session, caps_presence(compute_ver(disco_info(first))))
    await eventually(lambda: bool(queries(conn)), "first query")
    await send(host, session, caps_presence(compute_ver(disco_info(second))))
    await answer_caps_query(host, session, conn, first)
    await answer_caps_query(host, session, conn, second)
    await eventually(lambda: caps(host).notify_nodes(session) == {"urn:xmpp:avatar:metadata"},
                     "the second claim")


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xep0115_caps, "CACHE_MAX_ENTRIES", 3)
    monkeypatch.setattr(xep0115_caps, "CACHE_MAX_CHARS", 1600)
    cache = _Cache()
    for i in range(4):
        cache.put(("sha-1", str(i)), frozenset({f"feature-{i}"}))
    assert cache.get(("sha-1", "0")) is None and cache.get(("sha-1", "3")) is not None
    cache.get(("sha-1", "1"))  # recently used: kept
    cache.put(("sha-1", "4"), frozenset({"x" * 60}))
    assert cache.get(("sha-1", "1")) is not None and cache.get(("sha-1", "2")) is None
    cache.put(("sha-1", "big"), frozenset({"y" * 500}))  # over a sixteenth of the budget
    assert cache.get(("sha-1", "big")) is None
    for i in range(5, 30):
        cache.put(("sha-1", str(i)), frozenset({"z" * 90 + str(i)}))
    assert cache.chars <= 1600 and len(cache.entries) <= 3


async def test_an_answer_after_going_unavailable_grants_no_interest(host: Host) -> None:
    session, conn = bind(host, "alice", "a")
    ver = compute_ver(disco_info(NOTIFY))
    await send(host, session, caps_presence(ver))
    await eventually(lambda: bool(queries(conn)), "caps query")
    await send(host, session, Element(NS_CLIENT, "presence", {"type": "unavailable"}))
    await answer_caps_query(host, session, conn, NOTIFY)
    await settle()
    assert caps(host).notify_nodes(session) == frozenset()
    await send(host, session, caps_presence(ver))  # verified meanwhile: no new query
    assert queries(conn) == []
    assert caps(host).notify_nodes(session) == {OMEMO, "urn:xmpp:avatar:metadata"}
