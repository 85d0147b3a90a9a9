"""Regressions from the issue-2 review: presence (RFC 6121 §4).

A session replaced by kick_old goes unavailable for its contacts; probes answer with the
contact's presence only when the prober is subscribed to it; the directed-presence set of a
session is bounded; and a flood of large presences from a stranger does not get a user
disconnected.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trustme
from rawxmpp import Harness, RawClient, parse_stanza, running_server

from stockade.storage.base import RosterItem

NS_CLIENT = "jabber:client"
ANY_PRESENCE = re.compile(rb"<presence\b(?:[^>]*/>|[^>]*>.*?</presence>)", re.S)


async def _available(h: Harness, username: str, resource: str, status: str = "") -> RawClient:
    client = await h.login(username, resource)
    body = f"<status>{status}</status>" if status else ""
    await client.send(f"<presence>{body}</presence>")
    await client.read_until(b"<presence")  # the reflection (RFC 6121 §4.2.2)
    return client


async def _next_presence_from(client: RawClient, jid: str) -> ET.Element:
    """The next presence from ``jid``; other presences before it (probe answers) are skipped."""
    while True:
        data = await client.read_until(ANY_PRESENCE)
        presence = parse_stanza(ANY_PRESENCE.search(data).group(0))
        if presence.get("from") == jid:
            return presence


async def _until_pong(client: RawClient, ping_id: str) -> bytes:
    """Send a ping; return everything received before its result (processed in order)."""
    await client.send(f"<iq type='get' id='{ping_id}' to='localhost'>"
                      f"<ping xmlns='urn:xmpp:ping'/></iq>")
    data = await client.read_until(
        re.compile(rb"<iq\b[^>]*\bid='" + ping_id.encode() + rb"'[^>]*(?:/>|>.*?</iq>)", re.S))
    return data[:data.rindex(b"<iq")]


@pytest.mark.timeout(30)
async def test_kick_old_sends_unavailable_for_the_replaced_session(tmp_path: Path,
                                                                   ca: trustme.CA) -> None:
    """Defect r4: with ``resource_conflict = kick_old`` the replaced session was dropped
    without leaving: its contacts never got ``unavailable`` for the replaced full JID (and
    kept showing it online). The contact must receive it."""
    async with running_server(tmp_path, ca, {"c2s": {"resource_conflict": "kick_old"}}) as h:
        storage = h.server.storage
        await storage.put_roster_item("alice", RosterItem("bob@localhost", subscription="from"))
        await storage.put_roster_item("bob", RosterItem("alice@localhost", subscription="to"))
        bob = await _available(h, "bob", "phone")
        old = await _available(h, "alice", "laptop", "here")
        online = await _next_presence_from(bob, "alice@localhost/laptop")
        assert online.get("type") is None, ET.tostring(online)

        new = await h.login("alice", "laptop")  # the same resource: the old one is kicked
        assert new.jid == "alice@localhost/laptop"
        await old.expect_stream_error("conflict")
        gone = await _next_presence_from(bob, "alice@localhost/laptop")
        assert gone.get("type") == "unavailable", ET.tostring(gone)
        assert gone.get("to") in (None, "bob@localhost", "bob@localhost/phone"), \
            ET.tostring(gone)
        await new.ping("new-session")


@pytest.mark.timeout(30)
async def test_probe_answers_only_a_subscribed_prober(tmp_path: Path,
                                                      ca: trustme.CA) -> None:
    """Defect r7: a client's presence probe checked the subscription the wrong way round: a
    user subscribed to a contact got nothing, and one not subscribed (whose contact was
    subscribed to it instead) got presence back. A subscribed prober must get the contact's
    current presence, an unsubscribed one nothing."""
    async with running_server(tmp_path, ca) as h:
        storage = h.server.storage
        # alice is subscribed to bob (she sees him).
        await storage.put_roster_item("alice", RosterItem("bob@localhost", subscription="to"))
        await storage.put_roster_item("bob", RosterItem("alice@localhost", subscription="from"))
        # bob is subscribed to carol, not carol to bob (the reverse relation).
        await storage.put_roster_item("carol", RosterItem("bob@localhost", subscription="from"))
        await storage.put_roster_item("bob", RosterItem("carol@localhost", subscription="to"))
        await _available(h, "bob", "phone", "bob-status")
        await _available(h, "carol", "second", "carol-status")

        alice = await h.login("alice", "desk")  # no initial presence: no automatic probes
        await alice.send("<presence type='probe' to='bob@localhost' id='p1'/>")
        before = await _until_pong(alice, "after-probe")
        answers = [parse_stanza(m.group(0)) for m in ANY_PRESENCE.finditer(before)]
        assert len(answers) == 1, before
        assert answers[0].get("from") == "bob@localhost/phone", before
        assert answers[0].get("to") == "alice@localhost/desk", before
        assert answers[0].get("type") is None, before
        assert answers[0].findtext(f"{{{NS_CLIENT}}}status") == "bob-status", before

        carol = await h.login("carol", "desk")  # not subscribed to bob
        await carol.send("<presence type='probe' to='bob@localhost' id='p2'/>")
        before = await _until_pong(carol, "after-probe")
        assert b"<presence" not in before, before


@pytest.mark.timeout(30)
async def test_directed_presence_set_is_bounded(tmp_path: Path, ca: trustme.CA) -> None:
    """Defect r15: every directed-presence recipient was remembered for the session's
    unavailable broadcast, without limit (memory grew per distinct JID). After directed
    presence to 5000 distinct remote JIDs, and to 5000 distinct local ones, the session's
    directed set holds at most 1000."""
    unlimited = {"limits": {"stanzas_per_second": 1_000_000, "stanza_burst": 1_000_000}}
    async with running_server(tmp_path, ca, unlimited) as h:
        alice = await h.login("alice", "desk")
        session = h.server.hosts["localhost"].resources("alice")[0]
        await alice.send("".join(f"<presence to='u{i}@nowhere.example'/>" for i in range(5000)))
        await _until_pong(alice, "remote-done")
        assert len(session.directed) <= 1000, len(session.directed)
        await alice.send("".join(f"<presence to='u{i}@localhost'/>" for i in range(5000)))
        await _until_pong(alice, "local-done")
        assert len(session.directed) <= 1000, len(session.directed)
        assert h.server.hosts["localhost"].resources("alice") == [session]


@pytest.mark.timeout(30)
async def test_presence_flood_from_a_stranger_does_not_disconnect(tmp_path: Path,
                                                                  ca: trustme.CA) -> None:
    """Defect r18: directed presences were written to a user's connection even while it
    was backed up, so a non-contact flooding large presences pushed it past
    ``send_buffer_max_bytes`` and the server disconnected the *victim*. The user must stay
    connected and bound, and can still ping afterwards."""
    overrides = {"c2s": {"send_buffer_high_bytes": 65536, "send_buffer_max_bytes": 1 << 20}}
    async with running_server(tmp_path, ca, overrides) as h:
        bob = await _available(h, "bob", "phone")  # and, for now, not reading
        alice = await h.login("alice", "desk")  # not in bob's roster
        pad = "s" * 200_000
        for _ in range(60):  # 12 MB: more than both kernels buffer plus the 1 MiB cap
            await alice.send(f"<presence to='bob@localhost'><status>{pad}</status></presence>")
        await alice.ping("flood-routed")
        assert [str(s.jid) for s in h.server.hosts["localhost"].resources("bob")] == \
            ["bob@localhost/phone"]
        await bob.ping("still-here")  # reads what was delivered, then the pong
        assert not bob.eof
