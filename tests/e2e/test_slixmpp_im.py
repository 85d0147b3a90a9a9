"""End-to-end instant messaging with the real slixmpp client: messages, presence
subscriptions and roster pushes (RFC 6121), offline messages, disco, ping and errors."""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import AsyncIterator

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    assert_empty,
    connect_and_start,
    disconnect,
    disconnect_all,
    next_item,
    next_matching,
    registered_accounts,
)

from stockade.server.server import Server

NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"


def client_for(deployment, jid: str, **kwargs: object) -> Client:
    return Client(jid, ACCOUNTS[jid.split("/")[0]], deployment.ca_file, **kwargs)


accounts_template, deployment = registered_accounts()


@pytest.fixture
async def clients(deployment) -> AsyncIterator[list[Client]]:
    """Clients a test creates; all disconnected at the end, whatever happened."""
    made: list[Client] = []
    yield made
    await disconnect_all(made)


@pytest.fixture
async def pair(deployment, server: Server, clients: list[Client]) -> tuple[Client, Client]:
    """alice/desk and bob/phone online: roster requested, initial presence sent (and its
    reflection consumed)."""
    alice, bob = client_for(deployment, ALICE + "/desk"), client_for(deployment, BOB + "/phone")
    clients.extend((alice, bob))
    for client in (alice, bob):
        await connect_and_start(client, server.ports["starttls"][0], roster=True, presence=True)
        # RFC 6121 §4.2.2: initial presence is reflected to the sending resource.
        reflected = await next_item(client.presences, f"{client.boundjid} own presence")
        assert reflected["from"] == client.boundjid
    return alice, bob


def presence_from(jid: str, ptype: str):
    return lambda p: p["from"].full == jid and p["type"] == ptype


def push_item(iq) -> tuple[str, dict]:
    """(ver, the single item) of a roster push, checking its shape (RFC 6121 §2.1.6)."""
    assert iq["type"] == "set"
    assert not iq["from"] or iq["from"].full == iq["to"].bare  # from the account itself
    items = iq["roster"]["items"]
    assert len(items) == 1, items
    ((jid, item),) = items.items()
    return iq["roster"]["ver"], {"jid": jid.full, **item}


async def next_push(client: Client, contact: str) -> dict:
    iq = await next_item(client.roster_pushes, f"roster push to {client.boundjid}")
    _ver, item = push_item(iq)
    assert item["jid"] == contact, item
    return item


# ---------------------------------------------------------------------------- messages


@pytest.mark.timeout(30)
async def test_chat_messages_both_ways(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    sent: list[str] = []
    alice.add_filter("out", lambda stanza: sent.append(str(stanza)) or stanza)
    alice.send_message(mto=BOB + "/phone", mbody="hi bob", mtype="chat")
    msg = await next_item(bob.messages, "alice's message")
    assert msg["body"] == "hi bob"
    assert msg["type"] == "chat"
    assert "from=" not in sent[0]  # slixmpp leaves 'from' out ...
    assert msg["from"].full == "alice@localhost/desk"  # ... the server stamps it (§8.1.2.1)
    assert msg["to"].full == "bob@localhost/phone"

    msg.reply("hi alice").send()
    answer = await next_item(alice.messages, "bob's reply")
    assert answer["body"] == "hi alice"
    assert answer["type"] == "chat"
    assert answer["from"].full == "bob@localhost/phone"
    assert answer["to"].full == "alice@localhost/desk"


@pytest.mark.timeout(30)
async def test_message_to_bare_jid_reaches_recipient(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    alice.send_message(mto=BOB, mbody="to your bare JID", mtype="chat")
    msg = await next_item(bob.messages, "message to bob's bare JID")
    assert msg["body"] == "to your bare JID"
    assert msg["from"].full == "alice@localhost/desk"
    assert msg["to"].bare == BOB


@pytest.mark.timeout(30)
async def test_fifty_messages_arrive_in_order(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    for i in range(50):
        alice.send_message(mto=BOB + "/phone", mbody=f"message {i}", mtype="chat")
    bodies = [(await next_item(bob.messages, f"message {i}"))["body"] for i in range(50)]
    assert bodies == [f"message {i}" for i in range(50)]
    await assert_empty(bob.messages, "extra message", wait=0.1)


# ---------------------------------------------------------------------------- presence


@pytest.mark.timeout(40)
async def test_subscription_handshake_roster_pushes_and_presence(
        deployment, server: Server, pair: tuple[Client, Client],
        clients: list[Client]) -> None:
    alice, bob = pair

    # RFC 6121 §3.1.2: alice asks; her server pushes 'none' + ask and stamps her bare JID.
    alice.send_presence_subscription(pto=BOB)
    item = await next_push(alice, BOB)
    assert (item["subscription"], item["ask"]) == ("none", "subscribe")
    request = await next_matching(bob.presences, "subscribe from alice",
                                  presence_from(ALICE, "subscribe"))
    assert request["to"].bare == BOB

    # §3.1.5 / §3.1.6: bob approves; both rosters are pushed, alice gets bob's presence.
    bob.send_presence(pto=ALICE, ptype="subscribed")
    assert (await next_push(bob, ALICE))["subscription"] == "from"
    item = await next_push(alice, BOB)
    assert item["subscription"] == "to"
    assert not item["ask"]
    await next_matching(alice.presences, "subscribed from bob",
                        presence_from(BOB, "subscribed"))
    await next_matching(alice.presences, "bob's presence after approval",
                        presence_from(BOB + "/phone", "available"))
    assert alice.client_roster[BOB]["subscription"] == "to"  # slixmpp applied the push

    # The other way round: now both have 'both', and bob sees alice's presence.
    bob.send_presence_subscription(pto=ALICE)
    item = await next_push(bob, ALICE)
    assert (item["subscription"], item["ask"]) == ("from", "subscribe")
    await next_matching(alice.presences, "subscribe from bob",
                        presence_from(BOB, "subscribe"))
    alice.send_presence(pto=BOB, ptype="subscribed")
    assert (await next_push(alice, BOB))["subscription"] == "both"
    item = await next_push(bob, ALICE)
    assert item["subscription"] == "both"
    assert not item["ask"]
    await next_matching(bob.presences, "subscribed from alice",
                        presence_from(ALICE, "subscribed"))
    await next_matching(bob.presences, "alice's presence after approval",
                        presence_from(ALICE + "/desk", "available"))
    assert alice.client_roster[BOB]["subscription"] == "both"
    assert bob.client_roster[ALICE]["subscription"] == "both"
    assert "phone" in alice.client_roster[BOB].resources

    # §4.4: a presence update is broadcast to subscribers.
    alice.send_presence(pshow="away", pstatus="lunch")
    away = await next_matching(bob.presences, "alice away",
                               presence_from(ALICE + "/desk", "away"))
    assert away["status"] == "lunch"

    # §4.3: a new resource of bob probes at initial presence and learns alice's presence.
    tablet = client_for(deployment, BOB + "/tablet")
    clients.append(tablet)
    await connect_and_start(tablet, server.ports["starttls"][0], presence=True)
    probed = await next_matching(tablet.presences, "alice's presence via probe",
                                 presence_from(ALICE + "/desk", "away"))
    assert probed["status"] == "lunch"

    # §4.5.2: alice's session ends; both of bob's resources get her unavailable presence.
    await disconnect(alice)
    for client in (bob, tablet):
        gone = await next_matching(client.presences, "alice unavailable",
                                   lambda p: p["from"].bare == ALICE
                                   and p["type"] == "unavailable")
        assert gone["from"].full == "alice@localhost/desk"


async def make_mutual(alice: Client, bob: Client) -> None:
    """Subscribe both ways (each approving the other's request); wait for the pushes."""
    for asker, approver in ((alice, bob), (bob, alice)):
        asker.send_presence_subscription(pto=approver.boundjid.bare)
        await next_matching(approver.presences, "subscribe",
                            presence_from(asker.boundjid.bare, "subscribe"))
        approver.send_presence(pto=asker.boundjid.bare, ptype="subscribed")
    for client, contact in ((alice, BOB), (bob, ALICE)):
        await next_matching(client.roster_pushes, f"'both' push to {client.boundjid}",
                            lambda iq, c=contact: push_item(iq)[1]["jid"] == c
                            and push_item(iq)[1]["subscription"] == "both")
    assert "desk" in bob.client_roster[ALICE].resources
    assert "phone" in alice.client_roster[BOB].resources


def drain(queue: asyncio.Queue) -> list:
    """Everything queued so far."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def mutual_pair(pair: tuple[Client, Client]) -> tuple[Client, Client]:
    alice, bob = pair
    await make_mutual(alice, bob)
    await asyncio.sleep(0.1)
    for queue in (alice.presences, bob.presences, alice.roster_pushes, bob.roster_pushes):
        drain(queue)
    return alice, bob


@pytest.mark.timeout(30)
async def test_cancelling_a_subscription_sends_unavailable_first(
        pair: tuple[Client, Client]) -> None:
    alice, bob = await mutual_pair(pair)
    # RFC 6121 §3.2: alice cancels bob's subscription to her presence.
    alice.send_presence(pto=BOB, ptype="unsubscribed")
    gone = await next_matching(bob.presences, "alice's unavailable presence",
                               lambda p: p["from"].bare == ALICE
                               and p["type"] in ("unavailable", "unsubscribed"))
    assert (gone["from"].full, gone["type"]) == ("alice@localhost/desk", "unavailable")
    await next_matching(bob.presences, "unsubscribed from alice",
                        presence_from(ALICE, "unsubscribed"))
    assert (await next_push(alice, BOB))["subscription"] == "to"
    assert (await next_push(bob, ALICE))["subscription"] == "from"


@pytest.mark.timeout(30)
async def test_removing_a_contact_cancels_both_subscriptions(
        pair: tuple[Client, Client]) -> None:
    alice, bob = await mutual_pair(pair)
    result = await alice.del_roster_item(BOB)
    assert result["type"] == "result"
    # RFC 6121 §2.5.2: alice's push says 'remove'; bob is told both directions are over.
    await next_matching(alice.roster_pushes, "'remove' push",
                        lambda iq: push_item(iq)[1]["subscription"] == "remove")
    await next_matching(bob.presences, "unsubscribe from alice",
                        presence_from(ALICE, "unsubscribe"))
    await next_matching(bob.presences, "unsubscribed from alice",
                        presence_from(ALICE, "unsubscribed"))
    await next_matching(bob.roster_pushes, "bob's push for alice",
                        lambda iq: push_item(iq)[1]["subscription"] == "none")
    # Presence no longer flows either way.
    alice.send_presence(pstatus="still here")
    bob.send_presence(pstatus="me too")
    await next_matching(alice.presences, "own reflected presence",
                        lambda p: p["from"] == alice.boundjid and p["status"] == "still here")
    await next_matching(bob.presences, "own reflected presence",
                        lambda p: p["from"] == bob.boundjid and p["status"] == "me too")
    await asyncio.sleep(0.2)
    for client, contact in ((alice, BOB), (bob, ALICE)):
        leaked = [p for p in drain(client.presences)
                  if p["from"].bare == contact and p["type"] != "unavailable"]
        assert not leaked, leaked


@pytest.mark.timeout(30)
async def test_removing_a_contact_sends_unavailable_to_the_contact(
        pair: tuple[Client, Client]) -> None:
    """RFC 6121 §2.5.2 + §3.2.2: the contact's client must stop showing the user online."""
    alice, bob = await mutual_pair(pair)
    await alice.del_roster_item(BOB)
    await next_matching(bob.presences, "alice's unavailable presence",
                        presence_from(ALICE + "/desk", "unavailable"))


@pytest.mark.timeout(30)
async def test_directed_presence_is_followed_by_unavailable(
        pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    # RFC 6121 §4.6: no subscription, but alice tells bob/phone she is here ...
    alice.send_presence(pto=BOB + "/phone", pstatus="psst")
    directed = await next_matching(bob.presences, "directed presence",
                                   presence_from(ALICE + "/desk", "available"))
    assert directed["status"] == "psst"
    # ... so when her session ends, bob/phone learns she is gone (§4.6.3).
    await disconnect(alice)
    await next_matching(bob.presences, "unavailable after directed presence",
                        presence_from(ALICE + "/desk", "unavailable"))


@pytest.mark.timeout(30)
async def test_subscription_request_to_offline_contact_waits_for_initial_presence(
        deployment, server: Server, clients: list[Client]) -> None:
    port = server.ports["starttls"][0]
    alice = client_for(deployment, ALICE + "/desk")
    clients.append(alice)
    await connect_and_start(alice, port, roster=True, presence=True)
    alice.send_presence_subscription(pto=BOB)
    assert (await next_push(alice, BOB))["ask"] == "subscribe"

    bob = client_for(deployment, BOB + "/phone")
    clients.append(bob)
    await connect_and_start(bob, port, roster=True)
    # RFC 6121 §3.1.3: kept for bob, delivered when he next becomes available (not before).
    await assert_empty(bob.presences, "subscription request before initial presence")
    bob.send_presence()
    request = await next_matching(bob.presences, "stored subscribe from alice",
                                  presence_from(ALICE, "subscribe"))
    assert request["to"].bare == BOB
    bob.send_presence(pto=ALICE, ptype="subscribed")
    assert (await next_push(alice, BOB))["subscription"] == "to"
    await next_matching(alice.presences, "bob's presence after approval",
                        presence_from(BOB + "/phone", "available"))


@pytest.mark.timeout(30)
async def test_pre_approved_subscription_is_approved_without_asking(
        pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    assert "preapproval" in bob.features  # RFC 6121 §3.4.1 stream feature
    # §3.4: bob pre-approves alice before she asks.
    bob.send_presence(pto=ALICE, ptype="subscribed")
    item = await next_push(bob, ALICE)
    assert item["subscription"] == "none"
    await assert_empty(alice.presences, "presence to alice from a mere pre-approval")

    alice.send_presence_subscription(pto=BOB)
    assert (await next_push(alice, BOB))["ask"] == "subscribe"
    assert (await next_push(alice, BOB))["subscription"] == "to"
    await next_matching(alice.presences, "subscribed from bob",
                        presence_from(BOB, "subscribed"))
    await next_matching(alice.presences, "bob's presence", presence_from(BOB + "/phone",
                                                                         "available"))
    assert (await next_push(bob, ALICE))["subscription"] == "from"
    # bob approved in advance: the request itself is never shown to him.
    await assert_empty(bob.presences, "subscribe request despite pre-approval")


@pytest.mark.timeout(30)
async def test_roster_set_is_pushed_to_interested_resources_only(
        deployment, server: Server, clients: list[Client]) -> None:
    one, two, quiet = (client_for(deployment, f"{ALICE}/{r}") for r in ("one", "two", "quiet"))
    clients.extend((one, two, quiet))
    port = server.ports["starttls"][0]
    await connect_and_start(one, port, roster=True)
    await connect_and_start(two, port, roster=True)
    await connect_and_start(quiet, port)  # never asks for the roster: gets no pushes

    result = await one.update_roster("carol@localhost", name="Carol", groups=["Friends"],
                                     timeout=5)
    assert result["type"] == "result"
    for client in (one, two):  # §2.3.2: every interested resource, the sender included
        iq = await next_item(client.roster_pushes, f"push to {client.boundjid}")
        ver, item = push_item(iq)
        assert ver
        assert item["jid"] == "carol@localhost"
        assert item["name"] == "Carol"
        assert item["groups"] == ["Friends"]
        assert item["subscription"] == "none"
        assert not item["ask"]
    assert two.client_roster["carol@localhost"]["name"] == "Carol"  # applied by slixmpp
    assert two.client_roster["carol@localhost"]["groups"] == ["Friends"]
    await assert_empty(quiet.roster_pushes, "roster push to a resource that never asked")


def raw_reply(client: Client, iq_id: str) -> str:
    """The reply to IQ ``iq_id`` exactly as the server sent it (slixmpp objects grow
    child elements on access, so emptiness is checked on the wire)."""
    match = re.search(rf"<iq\b[^>]*\bid=['\"]{re.escape(iq_id)}['\"][^>]*?(/>|>.*?</iq>)",
                      client.received.decode(), re.DOTALL)
    assert match is not None, f"no reply to {iq_id} on the wire"
    return match.group(0)


async def raw_roster_get(client: Client, ver: str | None):
    iq = client.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    if ver is not None:
        iq["roster"]["ver"] = ver
    return await iq.send(timeout=5)


@pytest.mark.timeout(30)
async def test_roster_versioning_up_to_date_ver_gets_empty_result(
        deployment, server: Server, clients: list[Client]) -> None:
    port = server.ports["starttls"][0]
    first = client_for(deployment, ALICE + "/first")
    clients.append(first)
    await connect_and_start(first, port)
    empty = await raw_roster_get(first, "")
    ver_empty = empty["roster"]["ver"]
    assert ver_empty is not None
    await first.update_roster("carol@localhost", name="Carol", timeout=5)
    pushed_ver, _item = push_item(await next_item(first.roster_pushes, "push"))
    assert pushed_ver and pushed_ver != ver_empty
    await disconnect(first)

    second = client_for(deployment, ALICE + "/second")
    clients.append(second)
    await connect_and_start(second, port)
    # §2.6.3: the client's version is current, so the result is empty (no <query/>).
    current = await raw_roster_get(second, pushed_ver)
    assert current["type"] == "result"
    assert NS_ROSTER not in raw_reply(second, current["id"])
    # A stale version gets the whole roster with the current version.
    stale = await raw_roster_get(second, ver_empty)
    assert stale["roster"]["ver"] == pushed_ver
    assert set(stale["roster"]["items"]) == {"carol@localhost"}


@pytest.mark.timeout(30)
async def test_slixmpp_uses_advertised_roster_versioning(
        deployment, server: Server, clients: list[Client]) -> None:
    port = server.ports["starttls"][0]
    first = client_for(deployment, ALICE + "/first")
    clients.append(first)
    await connect_and_start(first, port, roster=True)
    # RFC 6121 §2.6.1: the server MUST advertise <ver xmlns='urn:xmpp:features:rosterver'/>.
    assert "rosterver" in first.features
    await first.update_roster("carol@localhost", name="Carol", timeout=5)
    ver, _item = push_item(await next_item(first.roster_pushes, "push"))
    await disconnect(first)

    second = client_for(deployment, ALICE + "/second")
    clients.append(second)
    await connect_and_start(second, port)
    sent: list[str] = []
    second.add_filter("out", lambda stanza: sent.append(str(stanza)) or stanza)
    second.client_roster.version = ver  # what a client would have cached
    result = await second.get_roster(timeout=5)
    assert any(f"ver=\"{ver}\"" in s or f"ver='{ver}'" in s for s in sent), sent
    assert NS_ROSTER not in raw_reply(second, result["id"])  # §2.6.3: up to date


# ---------------------------------------------------------------------------- offline


@pytest.mark.timeout(30)
async def test_offline_messages_delivered_at_initial_presence_once(
        deployment, server: Server, clients: list[Client]) -> None:
    port = server.ports["starttls"][0]
    alice = client_for(deployment, ALICE + "/desk")
    clients.append(alice)
    await connect_and_start(alice, port, presence=True)
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    for i in range(3):
        alice.send_message(mto=BOB, mbody=f"while you were out {i}", mtype="chat")
    # The server handles a session's stanzas in order: once the ping is answered, the
    # three messages have been stored.
    await alice.plugin["xep_0199"].send_ping("localhost", timeout=5)

    bob = client_for(deployment, BOB + "/phone")
    clients.append(bob)
    await connect_and_start(bob, port)
    await assert_empty(bob.messages, "offline message before initial presence")
    bob.send_presence()
    stamps = []
    for i in range(3):
        msg = await next_item(bob.messages, f"offline message {i}")
        assert msg["body"] == f"while you were out {i}"
        assert msg["from"].full == "alice@localhost/desk"
        assert msg["type"] == "chat"
        delay = msg.xml.find(f"{{{NS_DELAY}}}delay")
        assert delay is not None, ET.tostring(msg.xml)
        assert msg["delay"]["from"] == "localhost"
        stamp = msg["delay"]["stamp"]
        assert stamp is not None and stamp.tzinfo is not None
        assert before <= stamp <= datetime.datetime.now(datetime.UTC)
        stamps.append(stamp)
    assert stamps == sorted(stamps)
    await assert_empty(bob.messages, "offline message delivered twice")
    await disconnect(bob)

    again = client_for(deployment, BOB + "/phone")
    clients.append(again)
    await connect_and_start(again, port, presence=True)
    await next_matching(again.presences, "own presence", presence_from(BOB + "/phone",
                                                                        "available"))
    await assert_empty(again.messages, "offline message delivered on a second login")


@pytest.mark.timeout(30)
async def test_offline_messages_wait_for_non_negative_priority(
        deployment, server: Server, clients: list[Client]) -> None:
    """XEP-0160 §2: stored messages go out on the next non-negative presence, even when it is
    not the initial one."""
    port = server.ports["starttls"][0]
    alice = client_for(deployment, ALICE + "/desk")
    bob = client_for(deployment, BOB + "/phone")
    clients.extend((alice, bob))
    await connect_and_start(alice, port, presence=True)
    await connect_and_start(bob, port)
    bob.send_presence(ppriority=-1)
    await next_matching(bob.presences, "own presence", presence_from(BOB + "/phone",
                                                                      "available"))
    # RFC 6121 §8.5.2.1.1: a negative-priority resource never gets messages to the bare JID;
    # with no other resource the message is stored (§8.5.2.2).
    alice.send_message(mto=BOB, mbody="for when you are really here", mtype="chat")
    await alice.plugin["xep_0199"].send_ping("localhost", timeout=5)
    await assert_empty(bob.messages, "bare-JID message at negative priority")
    bob.send_presence(ppriority=1)
    msg = await next_item(bob.messages, "stored message after priority became non-negative")
    assert msg["body"] == "for when you are really here"
    assert msg.xml.find(f"{{{NS_DELAY}}}delay") is not None


# ---------------------------------------------------------------------------- disco, ping


@pytest.mark.timeout(30)
async def test_disco_info_of_the_server(pair: tuple[Client, Client]) -> None:
    alice, _bob = pair
    info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
    assert info["type"] == "result"
    assert info["from"].full == "localhost"
    features = info["disco_info"]["features"]
    assert "urn:xmpp:ping" in features
    assert "http://jabber.org/protocol/disco#info" in features
    identities = {(category, kind) for category, kind, _lang, _name
                  in info["disco_info"]["identities"]}
    assert ("server", "im") in identities


@pytest.mark.timeout(30)
@pytest.mark.parametrize("target", ["localhost", ALICE])
async def test_ping(pair: tuple[Client, Client], target: str) -> None:
    alice, _bob = pair
    # send_ping, not ping(): slixmpp's ping() reports success even on an error reply.
    pong = await alice.plugin["xep_0199"].send_ping(target, timeout=5)
    assert pong["type"] == "result"
    assert pong["to"].full == "alice@localhost/desk"
    # RFC 6120 §8.1.2.1: from the server itself, or on behalf of the account (bare JID or
    # no 'from' at all).
    assert pong["from"].full == target or (target == ALICE and not pong["from"])


# ---------------------------------------------------------------------------- errors


async def next_error(client: Client, what: str, msg_id: str):
    err = await next_item(client.message_errors, what)
    assert err["type"] == "error"
    assert err["id"] == msg_id
    return err


@pytest.mark.timeout(30)
@pytest.mark.parametrize("to", ["nobody@localhost", "nobody@localhost/res"])
async def test_message_to_missing_local_user_is_service_unavailable(
        pair: tuple[Client, Client], to: str) -> None:
    alice, _bob = pair
    msg = alice.make_message(mto=to, mbody="anyone there?", mtype="chat")
    msg["id"] = "m-missing"
    msg.send()
    err = await next_error(alice, "error for a missing user", "m-missing")
    assert err["error"]["condition"] == "service-unavailable"
    assert err["error"]["type"] == "cancel"
    assert err["from"].full == to
    assert err["to"].full == "alice@localhost/desk"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("to", "replier"), [("localhost", "localhost"), (ALICE, ALICE),
                                             (None, ALICE)])
async def test_iq_with_unknown_namespace_is_service_unavailable(
        pair: tuple[Client, Client], to: str | None, replier: str) -> None:
    alice, _bob = pair
    iq = alice.make_iq_get(queryxmlns="urn:example:unknown", ito=to)
    with pytest.raises(IqError) as caught:
        await iq.send(timeout=5)
    reply = caught.value.iq
    assert reply["type"] == "error"
    assert reply["id"] == iq["id"]
    assert reply["error"]["condition"] == "service-unavailable"
    assert reply["error"]["type"] == "cancel"
    assert reply["from"].full == replier  # RFC 6120 §10.3: on behalf of the account


@pytest.mark.timeout(30)
async def test_stanzas_to_another_domain_are_remote_server_not_found(
        pair: tuple[Client, Client]) -> None:
    alice, _bob = pair
    msg = alice.make_message(mto="someone@elsewhere.example", mbody="hello", mtype="chat")
    msg["id"] = "m-remote"
    msg.send()
    err = await next_error(alice, "error for a remote domain", "m-remote")
    assert err["error"]["condition"] == "remote-server-not-found"
    assert err["from"].full == "someone@elsewhere.example"

    iq = alice.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info",
                           ito="elsewhere.example")
    with pytest.raises(IqError) as caught:
        await iq.send(timeout=5)
    assert caught.value.iq["error"]["condition"] == "remote-server-not-found"
    assert caught.value.iq["from"].full == "elsewhere.example"


@pytest.mark.timeout(30)
async def test_spoofed_from_closes_stream_with_invalid_from(
        pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    closed = asyncio.ensure_future(alice.wait_until("disconnected", 5))
    alice.send_message(mto=BOB + "/phone", mbody="I am bob", mtype="chat",
                       mfrom=BOB + "/phone")
    await closed
    assert [e["condition"] for e in alice.stream_errors] == ["invalid-from"]
    await assert_empty(bob.messages, "spoofed message")
