"""XEP-0191 blocking on a real host with SQLite and in-memory connections: the commands,
pushes, and every enforcement rule (inbound, outbound, presence, offline storage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.sasl import derive_credential
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0191_blocking import NS_BLOCKING, NS_BLOCKING_ERRORS, matches
from stockade.server.session import Session
from stockade.storage import SQLiteStorage
from stockade.storage.base import RosterItem
from tests.conftest import make_config
from tests.server.test_routing import FakeConn, message, online, send

ROMEO, JULIET, NURSE = "romeo@example.com", "juliet@example.com", "nurse@example.com"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    storage = SQLiteStorage(tmp_path / "db.sqlite")
    await storage.open()
    creds = [derive_credential("secret-pass", "SHA-256", 4096)]
    for user in ("juliet", "romeo", "nurse"):
        await storage.create_account(user, creds)
    config = make_config({"server": {"domains": ["example.com"], "data_dir": str(tmp_path)},
                          "blocking": {"max_items": 3}})
    yield Host("example.com", config, storage)
    await storage.close()


async def befriend(host: Host, a: str, b: str) -> None:
    """Mutual presence subscription between two local accounts."""
    await host.storage.put_roster_item(a, RosterItem(f"{b}@example.com", subscription="both"))
    await host.storage.put_roster_item(b, RosterItem(f"{a}@example.com", subscription="both"))


def command(verb: str, *jids: str, id_: str = "b1") -> Element:
    iq = Element(NS_CLIENT, "iq", {"type": "get" if verb == "blocklist" else "set",
                                   "id": id_})
    el = iq.sub(NS_BLOCKING, verb)
    for jid in jids:
        el.sub(NS_BLOCKING, "item", {"jid": jid})
    return iq


def pushes(conn: FakeConn) -> list[tuple[str, list[str | None]]]:
    return [(child.name, [i.get("jid") for i in child.elements()])
            for e in conn.received if e.name == "iq" and e.get("type") == "set"
            for child in e.elements() if child.ns == NS_BLOCKING]


def presences(conn: FakeConn, sender: str) -> list[str | None]:
    return [e.get("type") for e in conn.received
            if e.name == "presence" and (e.get("from") or "").startswith(sender)]


def blocked_error(el: Element) -> bool:
    error = el.find(NS_CLIENT, "error")
    return (el.get("type") == "error" and error is not None
            and error.find("urn:ietf:params:xml:ns:xmpp-stanzas", "not-acceptable") is not None
            and error.find(NS_BLOCKING_ERRORS, "blocked") is not None)


# ---------------------------------------------------------------------------- matching §6


def test_matching_follows_the_four_jid_rules() -> None:
    assert matches({ROMEO}, ROMEO) and matches({ROMEO}, ROMEO + "/orchard")
    assert matches({ROMEO + "/orchard"}, ROMEO + "/orchard")
    assert not matches({ROMEO + "/orchard"}, ROMEO) and not matches({ROMEO + "/a"}, ROMEO + "/b")
    assert matches({"example.com"}, ROMEO + "/x") and matches({"example.com"}, "example.com")
    assert matches({"example.com"}, "rooms.example.com") and matches({"example.com"},
                                                                      "a@rooms.example.com/r")
    assert matches({"example.com/res"}, "example.com/res")
    assert not matches({"example.com/res"}, "example.com")
    assert not matches({"example.com/res"}, ROMEO + "/res")
    assert not matches({"ample.com"}, ROMEO) and not matches({ROMEO}, NURSE)
    assert not matches(frozenset(), ROMEO)


# ---------------------------------------------------------------------------- commands


async def test_block_pushes_to_interested_resources_and_persists(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    other, oconn = await online(host, "juliet", "chamber")
    _, quiet = await online(host, "juliet", "garden")
    for session in (juliet, other):
        await send(host, session, command("blocklist"))
    answers = [e for e in jconn.received if e.name == "iq"]
    assert [e.find(NS_BLOCKING, "blocklist") is not None for e in answers] == [True]
    await send(host, juliet, command("block", ROMEO, "Nurse@Example.com", ROMEO, id_="b2"))
    assert jconn.received[-1].get("id") == "b2" and jconn.kinds()[-1] == ("iq", "result")
    expected = [("block", [ROMEO, NURSE])]  # prepared, deduplicated
    assert pushes(jconn) == expected and pushes(oconn) == expected and pushes(quiet) == []
    assert sorted(k for k, _ in await host.storage.list_data("juliet", NS_BLOCKING)) == [
        NURSE, ROMEO]
    jconn.received.clear()
    await send(host, juliet, command("blocklist", id_="b3"))
    blocklist = jconn.received[-1].find(NS_BLOCKING, "blocklist")
    assert blocklist is not None
    assert [i.get("jid") for i in blocklist.elements()] == [NURSE, ROMEO]


async def test_bad_commands_get_the_xep_errors(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, command("block"))  # §3.3: no item
    await send(host, juliet, command("block", "@@bad"))
    await send(host, juliet, command("block", "a@x", "b@x", "c@x", "d@x"))  # over max_items
    to_other = command("blocklist")
    to_other.attrs["to"] = ROMEO  # only one's own list
    await send(host, juliet, to_other)
    assert jconn.errors() == ["bad-request", "jid-malformed", "resource-constraint",
                              "service-unavailable"]
    assert await host.storage.list_data("juliet", NS_BLOCKING) == []


async def test_unblock_all_empties_the_list(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, command("blocklist"))
    await send(host, juliet, command("block", ROMEO, NURSE))
    await send(host, juliet, command("unblock"))
    assert pushes(jconn)[-1] == ("unblock", [])
    assert await host.storage.list_data("juliet", NS_BLOCKING) == []
    _, rconn = await online(host, "romeo", "orchard")
    await send(host, juliet, message(ROMEO + "/orchard"))
    assert len(rconn.messages()) == 1


# ---------------------------------------------------------------------------- enforcement


async def test_outbound_to_a_blocked_jid_is_not_acceptable_blocked(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    _, rconn = await online(host, "romeo", "orchard")
    await send(host, juliet, command("block", ROMEO))
    jconn.received.clear()
    await send(host, juliet, message(ROMEO + "/orchard"))
    ping = Element(NS_CLIENT, "iq", {"type": "get", "id": "p", "to": ROMEO + "/orchard"})
    ping.sub("urn:xmpp:ping", "ping")
    await send(host, juliet, ping)
    await send(host, juliet, Element(NS_CLIENT, "presence", {"to": ROMEO}))
    assert [blocked_error(e) for e in jconn.received] == [True, True, True]
    assert all((e.get("from") or "").startswith(ROMEO) for e in jconn.received)
    await send(host, juliet, Element(NS_CLIENT, "iq", {"type": "result", "id": "r",
                                                       "to": ROMEO + "/orchard"}))
    assert len(jconn.received) == 3  # a result is dropped, never answered with an error
    assert rconn.received == []


async def test_messages_from_a_blocked_jid_bounce_and_are_not_stored(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    await send(host, juliet, command("block", ROMEO))
    jconn.received.clear()
    await send(host, romeo, message(JULIET + "/balcony"))
    await send(host, romeo, message(JULIET))
    assert jconn.received == []
    assert rconn.errors() == ["service-unavailable", "service-unavailable"]
    await host.unbind(juliet)  # now offline: nothing may reach her storage either
    await send(host, romeo, message(JULIET, body="while you were away"))
    assert rconn.errors()[-1] == "service-unavailable"
    assert await host.storage.count_offline("juliet") == 0
    await send(host, romeo, message(NURSE, body="not blocked"))
    assert await host.storage.count_offline("nurse") == 1


async def test_iq_and_subscriptions_from_a_blocked_jid(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    await send(host, juliet, command("block", ROMEO))
    jconn.received.clear()
    ping = Element(NS_CLIENT, "iq", {"type": "get", "id": "p", "to": JULIET + "/balcony"})
    ping.sub("urn:xmpp:ping", "ping")
    await send(host, romeo, ping)
    disco = Element(NS_CLIENT, "iq", {"type": "get", "id": "d", "to": JULIET})
    disco.sub("http://jabber.org/protocol/disco#info", "query")
    await send(host, romeo, disco)  # answered by the server on Juliet's behalf: refused too
    assert rconn.errors() == ["service-unavailable", "service-unavailable"]
    rconn.received.clear()
    for type_ in ("subscribe", "probe", ""):
        attrs = {"to": JULIET} | ({"type": type_} if type_ else {})
        await send(host, romeo, Element(NS_CLIENT, "presence", attrs))
    assert jconn.received == [] and rconn.received == []  # §3.3: no error for presence
    assert await host.storage.list_pending_subscriptions("juliet") == []


async def test_block_sends_unavailable_then_hides_presence_both_ways(host: Host) -> None:
    await befriend(host, "juliet", "romeo")
    juliet, jconn = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    assert presences(jconn, ROMEO) == [None]  # presence flows between them before the block
    await send(host, juliet, command("block", ROMEO))
    assert presences(rconn, JULIET) == ["unavailable"]  # §3.3
    jconn.received.clear()
    rconn.received.clear()
    status = Element(NS_CLIENT, "presence")
    status.sub(NS_CLIENT, "status", text="busy")
    await send(host, juliet, status)
    await send(host, romeo, Element(NS_CLIENT, "presence"))
    assert presences(rconn, JULIET) == [] and presences(jconn, ROMEO) == []
    # A new session of Romeo's does not learn Juliet's presence from its probe either.
    _, late = await online(host, "romeo", "garden")
    assert presences(late, JULIET) == []


async def test_unblock_sends_presence_and_learns_the_contacts(host: Host) -> None:
    await befriend(host, "juliet", "romeo")
    juliet, jconn = await online(host, "juliet", "balcony")
    await send(host, juliet, command("block", ROMEO))
    romeo, rconn = await online(host, "romeo", "orchard")
    assert presences(rconn, JULIET) == [] and presences(jconn, ROMEO) == []
    await send(host, juliet, command("unblock", ROMEO, id_="u1"))
    assert presences(rconn, JULIET) == [None]  # §3.4: her current presence
    assert presences(jconn, ROMEO) == [None]  # and she learns his, as a probe would
    await send(host, romeo, message(JULIET + "/balcony"))
    assert len(jconn.messages()) == 1


async def test_domain_block_spares_the_server_and_own_account(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    _, oconn = await online(host, "juliet", "chamber")
    romeo, rconn = await online(host, "romeo", "orchard")
    await send(host, juliet, command("block", "example.com"))
    jconn.received.clear()
    ping = Element(NS_CLIENT, "iq", {"type": "get", "id": "p", "to": "example.com"})
    ping.sub("urn:xmpp:ping", "ping")
    await send(host, juliet, ping)
    assert jconn.kinds() == [("iq", "result")]
    await send(host, juliet, message(JULIET + "/chamber"))
    assert len(oconn.messages()) == 1
    await send(host, romeo, message(JULIET))
    assert rconn.errors() == ["service-unavailable"]


async def test_block_list_outlives_the_session(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    await send(host, juliet, command("block", ROMEO))
    await host.unbind(juliet)
    blocking = host.modules["xep0191_blocking"]
    assert "juliet" not in blocking._lists  # type: ignore[attr-defined]  # memory bounded
    juliet, jconn = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    await send(host, romeo, message(JULIET + "/balcony"))
    assert jconn.messages() == [] and rconn.errors() == ["service-unavailable"]


async def test_a_silent_session_is_screened_too(host: Host) -> None:
    """Screening does not wait for the blocking user's session to send something."""
    juliet, _ = await online(host, "juliet", "balcony")
    await send(host, juliet, command("block", ROMEO))
    conn = FakeConn()
    silent = host.bind("juliet", "silent", conn)
    assert isinstance(silent, Session)
    romeo, _ = await online(host, "romeo", "orchard")
    await send(host, romeo, Element(NS_CLIENT, "presence", {"to": JULIET + "/silent"}))
    await send(host, romeo, message(JULIET + "/silent"))
    assert conn.received == []
