"""Delivery rules of RFC 6120 §10 and RFC 6121 §8, on a real host with in-memory connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.errors import StreamErrorCondition
from stockade.core.jid import JID
from stockade.core.sasl import derive_credential
from stockade.core.stanza import NS_CLIENT, parse_stanza
from stockade.core.xml import Element, serialize
from stockade.server.host import Host
from stockade.server.session import Session
from stockade.storage import SQLiteStorage
from tests.conftest import make_config
from tests.server.fakes import FakeConn


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    storage = SQLiteStorage(tmp_path / "db.sqlite")
    await storage.open()
    creds = [derive_credential("secret-pass", "SHA-256", 4096)]
    for user in ("juliet", "romeo"):
        await storage.create_account(user, creds)
    config = make_config({"server": {"domains": ["example.com"],
                                     "data_dir": str(tmp_path)}})
    yield Host("example.com", config, storage)
    await storage.close()


async def online(host: Host, user: str, resource: str, priority: int | None = 0,
                 ) -> tuple[Session, FakeConn]:
    conn = FakeConn()
    session = host.bind(user, resource, conn)
    assert isinstance(session, Session)
    if priority is not None:
        pres = Element(NS_CLIENT, "presence")
        if priority:
            pres.sub(NS_CLIENT, "priority", text=str(priority))
        await send(host, session, pres)
    conn.received.clear()
    return session, conn


async def send(host: Host, session: Session, el: Element) -> None:
    stanza = parse_stanza(el).with_addresses(
        JID.parse(el.attrs["to"]) if "to" in el.attrs else None, session.jid)
    work = host.router.route(stanza, session)
    if work is not None:
        await work


def message(to: str, type_: str = "chat", body: str = "hi") -> Element:
    el = Element(NS_CLIENT, "message", {"to": to, "type": type_, "id": "m1"})
    el.sub(NS_CLIENT, "body", text=body)
    return el


async def test_full_jid_goes_to_that_resource_only(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo1 = await online(host, "romeo", "orchard")
    _, romeo2 = await online(host, "romeo", "garden")
    await send(host, juliet, message("romeo@example.com/garden"))
    assert len(romeo2.messages()) == 1 and romeo1.messages() == []
    assert romeo2.messages()[0].get("from") == "juliet@example.com/balcony"


async def test_bare_jid_goes_to_the_highest_priority(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, low = await online(host, "romeo", "low", priority=1)
    _, high = await online(host, "romeo", "high", priority=5)
    await send(host, juliet, message("romeo@example.com"))
    assert len(high.messages()) == 1 and low.messages() == []


async def test_headline_goes_to_all_non_negative(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, a = await online(host, "romeo", "a", priority=1)
    _, b = await online(host, "romeo", "b", priority=5)
    _, neg = await online(host, "romeo", "neg", priority=-1)
    await send(host, juliet, message("romeo@example.com", "headline"))
    assert len(a.messages()) == len(b.messages()) == 1 and neg.messages() == []


async def test_negative_priority_only_means_offline_storage(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, neg = await online(host, "romeo", "neg", priority=-1)
    await send(host, juliet, message("romeo@example.com", body="later"))
    assert neg.messages() == []
    assert await host.storage.count_offline("romeo") == 1


async def test_offline_full_jid_falls_back_to_bare(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo = await online(host, "romeo", "orchard")
    await send(host, juliet, message("romeo@example.com/gone"))
    assert romeo.kinds() == [("message", "chat")]


async def test_groupchat_to_offline_full_jid_errors(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, message("romeo@example.com/gone", "groupchat"))
    assert jconn.errors() == ["service-unavailable"]


async def test_unknown_account_is_service_unavailable(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, message("nobody@example.com"))
    assert jconn.errors() == ["service-unavailable"]
    assert b"hi" not in serialize(jconn.received[0]).encode()  # payload not echoed


async def test_error_messages_are_never_bounced(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, message("nobody@example.com", "error"))
    assert jconn.received == []


async def test_remote_domain_without_s2s(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, message("someone@elsewhere.example"))
    assert jconn.errors() == ["remote-server-not-found"]


async def test_offline_messages_are_delivered_once_with_delay(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    for i in range(3):
        await send(host, juliet, message("romeo@example.com", body=f"m{i}"))
    _, romeo = await online(host, "romeo", "orchard", priority=None)
    await send(host, host.session_for(JID.parse("romeo@example.com/orchard")),  # type: ignore[arg-type]
               Element(NS_CLIENT, "presence"))
    bodies = [m.find(NS_CLIENT, "body").text for m in romeo.received  # type: ignore[union-attr]
              if m.name == "message"]
    assert bodies == ["m0", "m1", "m2"]
    delays = [m.find("urn:xmpp:delay", "delay") for m in romeo.received if m.name == "message"]
    assert all(d is not None and d.get("stamp", "").endswith("Z") for d in delays)
    assert await host.storage.count_offline("romeo") == 0


async def test_iq_unknown_namespace_is_service_unavailable(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    iq = Element(NS_CLIENT, "iq", {"type": "get", "id": "q1", "to": "example.com"})
    iq.sub("urn:example:unknown", "query")
    await send(host, juliet, iq)
    assert jconn.errors() == ["service-unavailable"]


async def test_iq_to_offline_full_jid(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    iq = Element(NS_CLIENT, "iq", {"type": "get", "id": "q1", "to": "romeo@example.com/x"})
    iq.sub("urn:xmpp:ping", "ping")
    await send(host, juliet, iq)
    assert jconn.errors() == ["service-unavailable"]


async def test_iq_results_to_the_server_are_dropped(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, Element(NS_CLIENT, "iq", {"type": "result", "id": "x",
                                                       "to": "example.com"}))
    assert jconn.received == []


async def test_ping_and_disco(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    ping = Element(NS_CLIENT, "iq", {"type": "get", "id": "p1", "to": "example.com"})
    ping.sub("urn:xmpp:ping", "ping")
    await send(host, juliet, ping)
    assert jconn.kinds() == [("iq", "result")]
    disco = Element(NS_CLIENT, "iq", {"type": "get", "id": "d1", "to": "example.com"})
    disco.sub("http://jabber.org/protocol/disco#info", "query")
    await send(host, juliet, disco)
    query = jconn.received[-1].find("http://jabber.org/protocol/disco#info", "query")
    assert query is not None
    features = {f.get("var") for f in query.elements() if f.name == "feature"}
    assert {"urn:xmpp:ping", "http://jabber.org/protocol/disco#info"} <= features


async def test_disco_on_an_account_needs_a_subscription(host: Host) -> None:
    """An account's disco#info answers strangers like a missing account (no enumeration)."""
    juliet, jconn = await online(host, "juliet", "balcony")
    for target in ("romeo@example.com", "nobody@example.com"):
        disco = Element(NS_CLIENT, "iq", {"type": "get", "id": "d", "to": target})
        disco.sub("http://jabber.org/protocol/disco#info", "query")
        await send(host, juliet, disco)
    assert jconn.errors() == ["service-unavailable", "service-unavailable"]


async def test_roster_iq_from_someone_else_is_refused(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    iq = Element(NS_CLIENT, "iq", {"type": "get", "id": "r", "to": "romeo@example.com"})
    iq.sub("jabber:iq:roster", "query")
    await send(host, juliet, iq)
    assert jconn.errors() == ["service-unavailable"]


async def test_resource_conflict_kicks_the_old_session(host: Host) -> None:
    _, old = await online(host, "juliet", "balcony")
    _, new = await online(host, "juliet", "balcony")
    assert old.terminated is StreamErrorCondition.CONFLICT and new.terminated is None


async def test_subscription_round_trip_and_pushes(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    for s in (juliet, romeo):
        s.interested = True
    sub = Element(NS_CLIENT, "presence", {"to": "romeo@example.com", "type": "subscribe"})
    await send(host, juliet, sub)
    assert ("presence", "subscribe") in rconn.kinds()
    assert rconn.received[-1].get("from") == "juliet@example.com"  # bare JID stamped
    ok = Element(NS_CLIENT, "presence", {"to": "juliet@example.com", "type": "subscribed"})
    await send(host, romeo, ok)
    item = await host.storage.get_roster_item("juliet", "romeo@example.com")
    assert item is not None and item.subscription == "to" and not item.ask
    pushes = [e for e in jconn.received if e.name == "iq" and e.get("type") == "set"]
    subs = [i.get("subscription") for p in pushes for q in p.elements() for i in q.elements()]
    assert subs[-1] == "to"
    # Romeo's available presence reaches Juliet right after the approval (§3.1.5).
    assert any(e.name == "presence" and e.get("from") == "romeo@example.com/orchard"
               and e.get("type") is None for e in jconn.received)


async def test_a_closing_connection_does_not_swallow_messages(host: Host) -> None:
    """No accepted message is lost: a resource whose connection is closing is skipped."""
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo = await online(host, "romeo", "orchard")
    romeo.is_open = False  # type: ignore[misc]
    await send(host, juliet, message("romeo@example.com/orchard", body="keep me"))
    await send(host, juliet, message("romeo@example.com", body="and me"))
    assert romeo.messages() == []
    stored = await host.storage.fetch_offline("romeo")
    assert [("keep me" in m.stanza, "and me" in m.stanza) for m in stored] == [
        (True, False), (False, True)]


async def test_roster_is_bounded(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.server.modules import rfc6121_roster
    monkeypatch.setattr(rfc6121_roster, "MAX_ITEMS", 2)
    juliet, jconn = await online(host, "juliet", "balcony")
    for n in range(3):
        iq = Element(NS_CLIENT, "iq", {"type": "set", "id": f"s{n}"})
        iq.sub("jabber:iq:roster", "query").sub("jabber:iq:roster", "item",
                                                 {"jid": f"c{n}@example.com"})
        await send(host, juliet, iq)
    assert jconn.errors() == ["resource-constraint"]
    # Presence cannot add a third contact either.
    await send(host, juliet, Element(NS_CLIENT, "presence", {"to": "c9@example.com",
                                                            "type": "subscribe"}))
    _, items = await host.storage.get_roster("juliet")
    assert sorted(i.jid for i in items) == ["c0@example.com", "c1@example.com"]
