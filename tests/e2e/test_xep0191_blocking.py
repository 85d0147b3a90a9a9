"""XEP-0191 over loopback with slixmpp's xep_0191 plugin: a blocked contact's messages bounce,
presence stops both ways, the user's own messages to it are refused, and unblocking restores
all of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slixmpp.jid import JID
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

accounts_template, deployment = registered_accounts()


def presence_from(jid: str, available: bool) -> Any:
    return lambda p: p["from"].full == jid and (p["type"] != "unavailable") == available


async def befriend(alice: Client, bob: Client) -> None:
    """Mutual subscription, then wait until each sees the other online."""
    for asker, approver in ((alice, bob), (bob, alice)):
        asker.send_presence_subscription(pto=approver.boundjid.bare)
        await next_matching(approver.presences, "subscribe",
                            lambda p, a=asker: p["type"] == "subscribe"
                            and p["from"].bare == a.boundjid.bare)
        approver.send_presence(pto=asker.boundjid.bare, ptype="subscribed")
    for client, contact in ((alice, BOB), (bob, ALICE)):
        await next_matching(client.roster_pushes, f"'both' push to {client.boundjid}",
                            lambda iq, c=contact: iq["roster"]["items"].get(JID(c), {}).get(
                                "subscription") == "both")
    await asyncio.sleep(0.1)
    assert "phone" in alice.client_roster[BOB].resources
    assert "desk" in bob.client_roster[ALICE].resources


@pytest.fixture
async def friends(deployment, server: Server) -> AsyncIterator[tuple[Client, Client]]:
    alice = Client(ALICE + "/desk", ACCOUNTS[ALICE], deployment.ca_file)
    bob = Client(BOB + "/phone", ACCOUNTS[BOB], deployment.ca_file)
    alice.register_plugin("xep_0191")
    try:
        for client in (alice, bob):
            await connect_and_start(client, server.ports["starttls"][0], roster=True,
                                    presence=True)
        await befriend(alice, bob)
        for queue in (alice.presences, bob.presences):
            while not queue.empty():
                queue.get_nowait()
        yield alice, bob
    finally:
        await disconnect_all((alice, bob))


@pytest.mark.timeout(30)
async def test_block_then_unblock_a_contact(friends: tuple[Client, Client]) -> None:
    alice, bob = friends
    blocking = alice.plugin["xep_0191"]
    pushes: asyncio.Queue[Any] = asyncio.Queue()
    alice.add_event_handler("blocked", pushes.put_nowait)
    assert await blocking.get_blocked_jids() == set()  # alice now gets pushes (§3.2)
    await blocking.block(JID(BOB))
    push = await next_item(pushes, "block push")
    assert [item["jid"] for item in push["block"]] == [JID(BOB)]
    assert await blocking.get_blocked_jids() == {JID(BOB)}
    # §3.3: bob sees alice go offline, then hears nothing more from her.
    await next_matching(bob.presences, "alice unavailable",
                        presence_from(ALICE + "/desk", False))

    bob.send_message(mto=ALICE, mbody="can you hear me?", mtype="chat")
    bounced = await next_item(bob.message_errors, "bounce of bob's message")
    assert bounced["error"]["condition"] == "service-unavailable"
    alice.send_message(mto=BOB, mbody="hello?", mtype="chat")
    refused = await next_item(alice.message_errors, "refusal of alice's message")
    assert refused["error"]["condition"] == "not-acceptable"
    assert refused.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None
    bob.send_presence(pshow="away")
    alice.send_presence(pshow="dnd")
    await assert_empty(alice.messages, "message from the blocked contact")
    await assert_empty(bob.messages, "message to the blocked contact")
    assert not any(p["from"].bare == BOB for p in drain(alice.presences))
    assert not any(p["from"].bare == ALICE for p in drain(bob.presences))

    await blocking.unblock(JID(BOB))
    # §3.4: presence flows again both ways, and so do messages.
    seen = await next_matching(bob.presences, "alice back", presence_from(ALICE + "/desk", True))
    assert seen["show"] == "dnd"
    seen = await next_matching(alice.presences, "bob back", presence_from(BOB + "/phone", True))
    assert seen["show"] == "away"
    bob.send_message(mto=ALICE, mbody="there you are", mtype="chat")
    assert (await next_item(alice.messages, "bob's message"))["body"] == "there you are"


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
