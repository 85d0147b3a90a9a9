"""End-to-end Multi-User Chat (XEP-0045) with the real slixmpp client and its xep_0045 and
xep_0313 plugins, against a real server on loopback: rooms on rooms.localhost."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, eventually, template_data_dir
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError
from slixmpp_helpers import (
    STEP_TIMEOUT,
    Client,
    connect_and_start,
    disconnect_all,
    next_matching,
)
from tests.conftest import Deployment, deployment_config

from stockade.server.config import load_config
from stockade.server.server import Server

SERVICE = "rooms.localhost"
ROOM = JID(f"coven@{SERVICE}")
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
pytestmark = pytest.mark.timeout(30)


@dataclass
class Site:
    """A deployment whose server can be stopped and started again on the same data."""

    deployment: Deployment
    server: Server | None = None
    clients: list[Client] = field(default_factory=list)

    async def start(self) -> Server:
        self.server = Server(load_config(self.deployment.config_path))
        await self.server.start()
        return self.server

    async def stop(self) -> None:
        await disconnect_all(self.clients)
        self.clients.clear()
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def everyone(self, *names: str) -> list[Client]:
        """Several users logged in at once."""
        return list(await asyncio.gather(*(self.online(name) for name in names)))

    async def online(self, name: str, resource: str = "desk") -> Client:
        """``name``@localhost logged in (no initial presence: rooms do not need it)."""
        assert self.server is not None
        client = Client(f"{name}@localhost/{resource}", ACCOUNTS[name],
                        self.deployment.ca_file)
        for plugin in ("xep_0004", "xep_0045", "xep_0059", "xep_0313"):
            client.register_plugin(plugin)
        # slixmpp stops raising 'presence' for a room after its first presence (the
        # room's roster entry ignores updates); the MUC plugin raises this one for each.
        client.room_presences = asyncio.Queue()
        client.add_event_handler("groupchat_presence", client.room_presences.put_nowait)
        self.clients.append(client)
        await connect_and_start(client, self.server.ports["starttls"][0])
        return client


@pytest.fixture
async def site(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[Site]:
    """A running server whose database holds alice, bob and carol."""
    template = await asyncio.to_thread(template_data_dir)
    deployment, _ = deployment_config(tmp_path, ca)
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    for db_file in template.glob("stockade.db*"):
        shutil.copy2(db_file, data / db_file.name)
    running = Site(deployment)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def muc(client: Client):
    return client.plugin["xep_0045"]


async def join(client: Client, nick: str, room: JID = ROOM, **history: int):
    """join_muc_wait: (self-presence, subject, occupants, history)."""
    return await muc(client).join_muc_wait(room, nick, timeout=STEP_TIMEOUT, **history)


def codes(presence) -> set[int]:
    return set(presence["muc"]["status_codes"])


def condition(error: PresenceError | IqError) -> str:
    stanza = error.presence if isinstance(error, PresenceError) else error.iq
    return stanza["error"]["condition"]


async def create(owner: Client, nick: str, room: JID = ROOM, **values: object) -> None:
    """Create a room by entering it, then submit the server's configuration form with
    ``values`` changed (muc#roomconfig_<key>), as a client would."""
    presence, *_ = await join(owner, nick, room)
    assert {110, 201} <= codes(presence)  # §10.1.1: created, awaiting configuration
    assert presence["muc"]["affiliation"] == "owner"
    form = await muc(owner).get_room_config(room, timeout=STEP_TIMEOUT)
    for key, value in values.items():
        form.get_fields(use_dict=True)[f"muc#roomconfig_{key}"]["value"] = value
    await muc(owner).set_room_config(room, form, timeout=STEP_TIMEOUT)


async def unavailable_from(client: Client, occupant: str):
    return await next_matching(client.room_presences, f"unavailable from {occupant}",
                               lambda p: p["from"] == JID(occupant)
                               and p["type"] == "unavailable")


# ---------------------------------------------------------------------------- rooms


async def test_members_only_non_anonymous_room(site: Site) -> None:
    alice, bob, carol = await site.everyone("alice", "bob", "carol")
    await create(alice, "alice", membersonly=True, whois="anyone", persistentroom=True)
    await muc(alice).set_affiliation(ROOM, "member", jid=JID("bob@localhost"),
                                     timeout=STEP_TIMEOUT)

    presence, _subject, occupants, _history = await join(bob, "bob")
    # §7.2.3: non-anonymous rooms warn with 100; §7.2.2: self-presence carries 110.
    assert {100, 110} <= codes(presence)
    assert presence["muc"]["affiliation"] == "member"
    (owner,) = [p for p in occupants if 110 not in codes(p)]  # slixmpp lists itself too
    assert owner["muc"]["jid"] == JID("alice@localhost/desk")  # real JIDs for everyone

    with pytest.raises(PresenceError) as refused:
        await join(carol, "carol")
    assert condition(refused.value) == "registration-required"  # §7.2.6

    # §9.5: in a non-anonymous room a member may read the member list.
    members = await muc(bob).get_affiliation_list(ROOM, "member", timeout=STEP_TIMEOUT)
    assert members == [JID("bob@localhost")]
    info = await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=STEP_TIMEOUT)
    features = set(info["disco_info"]["features"])
    assert {"muc_membersonly", "muc_nonanonymous", "muc_persistent"} <= features


async def test_history_then_subject_on_join(site: Site) -> None:
    alice, bob = await site.everyone("alice", "bob")
    await create(alice, "alice")
    muc(alice).set_subject(ROOM, "Spells")
    await next_matching(alice.messages, "subject reflected", lambda m: m["subject"] == "Spells")
    for text in ("one", "two", "three"):
        alice.send_message(mto=ROOM, mbody=text, mtype="groupchat")
        reflected = await next_matching(alice.messages, text, lambda m, t=text: m["body"] == t)
        # XEP-0359: the room stamps its own stanza-id on each message.
        sid = reflected.xml.find(f"{{{NS_SID}}}stanza-id")
        assert sid is not None and sid.get("by") == str(ROOM)

    _presence, subject, _occupants, history = await join(bob, "bob", maxstanzas=2)
    # §7.2.14: the last two messages only; §7.2.13: each delayed "from" the room; the
    # subject comes after them (§7.1 order of events).
    assert [m["body"] for m in history] == ["two", "three"]
    assert all(m.xml.find(f"{{{NS_DELAY}}}delay").get("from") == str(ROOM) for m in history)
    assert subject["subject"] == "Spells"
    assert subject["from"] == JID(f"{ROOM}/alice")


async def test_subject_needs_permission_and_outsiders_cannot_speak(site: Site) -> None:
    alice, bob, carol = await site.everyone("alice", "bob", "carol")
    await create(alice, "alice")
    await join(bob, "bob")
    muc(bob).set_subject(ROOM, "mine now")  # changesubject is off: moderators only (§8.1)
    error = await next_matching(bob.message_errors, "subject refused", lambda m: True)
    assert error["error"]["condition"] == "forbidden"
    carol.send_message(mto=ROOM, mbody="let me in", mtype="groupchat")
    error = await next_matching(carol.message_errors, "outsider refused", lambda m: True)
    assert error["error"]["condition"] == "not-acceptable"  # §7.4


async def test_private_message_between_occupants(site: Site) -> None:
    alice, bob = await site.everyone("alice", "bob")
    await create(alice, "alice")
    await join(bob, "bob")
    bob.send_message(mto=JID(f"{ROOM}/alice"), mbody="just for you", mtype="chat")
    message = await next_matching(alice.messages, "private message",
                                  lambda m: m["body"] == "just for you")
    # §7.5: from bob's occupant JID (his real JID is not shown), with the muc#user <x/>.
    assert message["from"] == JID(f"{ROOM}/bob")
    assert message["type"] == "chat"
    assert message.xml.find(f"{{{NS_MUC_USER}}}x") is not None


async def test_kick_and_ban_with_status_codes(site: Site) -> None:
    alice, bob, carol = await site.everyone("alice", "bob", "carol")
    await create(alice, "alice")
    await join(bob, "bob")
    await join(carol, "carol")

    await muc(alice).set_role(ROOM, "carol", "none", reason="out", timeout=STEP_TIMEOUT)
    kicked = await unavailable_from(carol, f"{ROOM}/carol")
    assert {110, 307} <= codes(kicked)  # §8.2
    assert kicked["muc"]["role"] == "none"
    seen = await unavailable_from(bob, f"{ROOM}/carol")
    assert 307 in codes(seen) and 110 not in codes(seen)

    with pytest.raises(IqError) as refused:  # a participant is no moderator
        await muc(bob).set_role(ROOM, "alice", "none", timeout=STEP_TIMEOUT)
    assert condition(refused.value) == "forbidden"

    await muc(alice).set_affiliation(ROOM, "outcast", jid=JID("bob@localhost"),
                                     timeout=STEP_TIMEOUT)
    banned = await unavailable_from(bob, f"{ROOM}/bob")
    assert {110, 301} <= codes(banned)  # §9.1
    assert banned["muc"]["affiliation"] == "outcast"
    with pytest.raises(PresenceError) as again:
        await join(bob, "bob")
    assert condition(again.value) == "forbidden"  # §7.2.7


async def test_nick_conflict_and_nick_change(site: Site) -> None:
    alice, bob = await site.everyone("alice", "bob")
    await create(alice, "Witch")
    with pytest.raises(PresenceError) as refused:
        await join(bob, "witch")  # nicks compare case-insensitively here
    assert condition(refused.value) == "conflict"  # §7.2.8
    await join(bob, "bob")
    assert await muc(bob).set_self_nick(ROOM, "robert", timeout=STEP_TIMEOUT) == "robert"
    gone = await unavailable_from(alice, f"{ROOM}/bob")
    assert 303 in codes(gone) and gone["muc"]["item_nick"] == "robert"  # §7.6


async def test_invitation_makes_a_member(site: Site) -> None:
    alice, bob, carol = await site.everyone("alice", "bob", "carol")
    await create(alice, "alice", membersonly=True, allowinvites=True)
    await muc(alice).set_affiliation(ROOM, "member", jid=JID("bob@localhost"),
                                     timeout=STEP_TIMEOUT)
    await join(bob, "bob")
    carol.send_presence()  # available: a message to her bare JID reaches this session
    await next_matching(carol.presences, "own presence", lambda p: p["from"] == carol.boundjid)
    muc(bob).invite(ROOM, JID("carol@localhost"), reason="come")
    invite = await next_matching(carol.messages, "invitation",
                                 lambda m: m["muc"]["invite"]["from"] != "")
    assert invite["from"] == ROOM
    assert invite["muc"]["invite"]["from"] == JID("bob@localhost")
    presence, *_ = await join(carol, "carol")  # §7.8.2 + allowinvites: now a member
    assert presence["muc"]["affiliation"] == "member"


async def test_occupant_leaves_when_the_connection_drops(site: Site) -> None:
    alice, bob = await site.everyone("alice", "bob")
    await create(alice, "alice")
    await join(bob, "bob")
    assert bob.transport is not None
    bob.transport.abort()  # TCP gone, no </stream:stream>, no unavailable presence
    gone = await unavailable_from(alice, f"{ROOM}/bob")
    assert gone["muc"]["role"] == "none"


async def test_room_survives_a_restart_with_its_archive(site: Site) -> None:
    alice, bob = await site.everyone("alice", "bob")
    await create(alice, "alice", membersonly=True, whois="anyone", persistentroom=True,
                 enablearchiving=True, roomname="The Coven")
    await muc(alice).set_affiliation(ROOM, "member", jid=JID("bob@localhost"),
                                     timeout=STEP_TIMEOUT)
    muc(alice).set_subject(ROOM, "Before the restart")
    alice.send_message(mto=ROOM, mbody="remember me", mtype="groupchat")
    await next_matching(alice.messages, "own message", lambda m: m["body"] == "remember me")

    await site.stop()
    await site.start()
    alice, bob, carol = await site.everyone("alice", "bob", "carol")
    _presence, subject, _occupants, history = await join(bob, "bob")
    assert [m["body"] for m in history] == ["remember me"]
    assert subject["subject"] == "Before the restart"
    owners = await muc(bob).get_affiliation_list(ROOM, "owner", timeout=STEP_TIMEOUT)
    assert owners == [JID("alice@localhost")]
    with pytest.raises(PresenceError) as refused:
        await join(carol, "carol")
    assert condition(refused.value) == "registration-required"

    # XEP-0313 on the room JID: members may read the archive, others may not.
    result = await bob.plugin["xep_0313"].retrieve(jid=ROOM, rsm={"max": 10},
                                                   timeout=STEP_TIMEOUT)
    forwarded = [m["mam_result"]["forwarded"]["stanza"] for m in result["mam"]["results"]]
    assert [(m["body"], m["from"]) for m in forwarded] == [
        ("remember me", JID(f"{ROOM}/alice"))]
    with pytest.raises(IqError) as forbidden:
        await carol.plugin["xep_0313"].retrieve(jid=ROOM, timeout=STEP_TIMEOUT)
    assert condition(forbidden.value) == "forbidden"


async def test_temporary_room_goes_with_its_last_occupant(site: Site) -> None:
    alice, bob = await site.everyone("alice", "bob")
    await create(alice, "alice", publicroom=True, roomname="Fleeting")
    items = await bob.plugin["xep_0030"].get_items(jid=JID(SERVICE), timeout=STEP_TIMEOUT)
    assert [(i[0], i[2]) for i in items["disco_items"]["items"]] == [(ROOM, "Fleeting")]
    muc(alice).leave_muc(ROOM, "alice")
    await unavailable_from(alice, f"{ROOM}/alice")
    assert site.server is not None
    host = site.server.hosts["localhost"]
    await eventually(lambda: ROOM.bare not in {str(j) for j in
                                               host.modules["xep0045_muc"].service.rooms},
                     "the temporary room to go")
    with pytest.raises(IqError) as gone:
        await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=STEP_TIMEOUT)
    assert condition(gone.value) == "item-not-found"
