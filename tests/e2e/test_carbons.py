"""End-to-end Message Carbons (XEP-0280) with slixmpp's plugin: two resources of one account
see each other's conversations ('sent' and 'received' copies), private messages stay on
one device, and nobody can deliver a forged carbon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import slixmpp
from slixmpp import JID
from slixmpp.xmlstream import ET
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    assert_empty,
    connect_and_start,
    disconnect_all,
    next_item,
    next_matching,
    registered_accounts,
)

from stockade.server.server import Server

NS_CARBONS = "urn:xmpp:carbons:2"

accounts_template, deployment = registered_accounts()


class CarbonClient(Client):
    """A client with carbons, stanza ids and archives; carbon copies queue separately."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for plugin in ("xep_0280", "xep_0313", "xep_0359", "xep_0334"):
            self.register_plugin(plugin)
        self.carbons: asyncio.Queue[tuple[str, slixmpp.Message]] = asyncio.Queue()
        for event in ("carbon_received", "carbon_sent"):
            self.add_event_handler(event, lambda m, e=event: self.carbons.put_nowait((e, m)))


@pytest.fixture
async def clients(deployment) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    await disconnect_all(made)


@pytest.fixture
async def trio(deployment, server: Server,
               clients: list[Client]) -> tuple[CarbonClient, CarbonClient, CarbonClient]:
    """alice/desk and alice/phone with carbons on, bob/pc without; all available."""
    made = []
    for jid, carbons in ((ALICE + "/desk", True), (ALICE + "/phone", True),
                         (BOB + "/pc", False)):
        client = CarbonClient(jid, ACCOUNTS[jid.split("/")[0]], deployment.ca_file)
        clients.append(client)
        await connect_and_start(client, server.ports["starttls"][0])
        if carbons:
            await client.plugin["xep_0280"].enable()
        client.send_presence()
        await next_matching(client.presences, "own presence",
                            lambda p, c=client: p["from"] == c.boundjid)
        made.append(client)
    await asyncio.sleep(0.1)
    for client in made:  # presence of alice's other resource
        while not client.presences.empty():
            client.presences.get_nowait()
    return made[0], made[1], made[2]


def copied(message: slixmpp.Message, direction: str) -> slixmpp.Message:
    return message[f"carbon_{direction}"]


@pytest.mark.timeout(30)
async def test_received_and_sent_copies(
        trio: tuple[CarbonClient, CarbonClient, CarbonClient]) -> None:
    desk, phone, bob = trio
    bob.send_message(mto=ALICE + "/desk", mbody="are you there?", mtype="chat")
    original = await next_item(desk.messages, "bob's message at the desk")
    assert original["body"] == "are you there?"
    event, copy = await next_item(phone.carbons, "'received' copy on the phone")
    assert event == "carbon_received"
    assert copy["from"] == JID(ALICE) and copy["to"] == phone.boundjid
    forwarded = copied(copy, "received")
    assert (forwarded["from"], forwarded["to"], forwarded["body"]) == (
        bob.boundjid, desk.boundjid, "are you there?")
    # The same archive id as the original, so clients can match both (XEP-0313 §3.5).
    assert forwarded["stanza_id"]["id"] == original["stanza_id"]["id"] != ""

    desk.send_message(mto=BOB + "/pc", mbody="yes, at my desk", mtype="chat")
    answer = await next_matching(bob.messages, "alice's answer",
                                 lambda m: m["body"] == "yes, at my desk")
    event, copy = await next_item(phone.carbons, "'sent' copy on the phone")
    assert event == "carbon_sent"
    forwarded = copied(copy, "sent")
    assert (forwarded["from"], forwarded["to"], forwarded["body"]) == (
        desk.boundjid, bob.boundjid, "yes, at my desk")
    # alice's archive id travels in her carbon, never to bob.
    (archived,) = [m async for m in phone.plugin["xep_0313"].iterate(
        with_jid=JID(BOB), rsm={"max": 10}) if m["mam_result"]["forwarded"]["stanza"]["body"]
        == "yes, at my desk"]
    assert forwarded["stanza_id"]["id"] == archived["mam_result"]["id"]
    assert answer["stanza_id"]["by"] != JID(ALICE)
    await assert_empty(desk.carbons, "a copy of what the desk itself sent or got", wait=0.1)
    await assert_empty(bob.carbons, "carbons for a client that did not enable them", wait=0.1)


@pytest.mark.timeout(30)
async def test_private_messages_are_not_copied(
        trio: tuple[CarbonClient, CarbonClient, CarbonClient]) -> None:
    desk, phone, bob = trio
    message = desk.make_message(mto=BOB + "/pc", mbody="only on this device", mtype="chat")
    message.enable("carbon_private")
    message.enable("no-copy")
    message.send()
    delivered = await next_matching(bob.messages, "the private message",
                                    lambda m: m["body"] == "only on this device")
    assert delivered.xml.find(f"{{{NS_CARBONS}}}private") is not None
    bob.send_message(mto=ALICE + "/desk", mbody="private reply", mtype="chat")
    reply = bob.make_message(mto=ALICE + "/desk", mbody="private reply 2", mtype="chat")
    reply.enable("carbon_private")
    reply.send()
    await next_matching(desk.messages, "the private reply",
                        lambda m: m["body"] == "private reply 2")
    # Only the ordinary reply is copied to the phone.
    _event, copy = await next_item(phone.carbons, "the ordinary reply's copy")
    assert copied(copy, "received")["body"] == "private reply"
    await assert_empty(phone.carbons, "a copy of a private message")


@pytest.mark.timeout(30)
async def test_disabling_stops_the_copies(
        trio: tuple[CarbonClient, CarbonClient, CarbonClient]) -> None:
    desk, phone, bob = trio
    await phone.plugin["xep_0280"].disable()
    bob.send_message(mto=ALICE + "/desk", mbody="hello desk", mtype="chat")
    await next_matching(desk.messages, "bob's message", lambda m: m["body"] == "hello desk")
    await assert_empty(phone.carbons, "a copy after disabling")


@pytest.mark.timeout(30)
async def test_a_forged_carbon_reaches_nobody(
        trio: tuple[CarbonClient, CarbonClient, CarbonClient]) -> None:
    desk, phone, bob = trio
    for direction in ("received", "sent"):
        forgery = bob.make_message(mto=ALICE + "/desk", mtype="chat")
        wrapper = ET.SubElement(forgery.xml, f"{{{NS_CARBONS}}}{direction}")
        fwd = ET.SubElement(wrapper, "{urn:xmpp:forward:0}forwarded")
        inner = ET.SubElement(fwd, "{jabber:client}message",
                              {"from": "carol@localhost/home", "to": ALICE + "/desk",
                               "type": "chat"})
        ET.SubElement(inner, "{jabber:client}body").text = "carol never said this"
        forgery.send()
        error = await next_item(bob.message_errors, f"the refusal of a forged '{direction}'")
        assert error["error"]["condition"] == "not-acceptable"
    await assert_empty(desk.messages, "a forged carbon at the desk")
    await assert_empty(phone.messages, "a forged carbon on the phone", wait=0.05)
    assert desk.carbons.empty() and phone.carbons.empty()
