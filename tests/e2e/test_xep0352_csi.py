"""XEP-0352 over loopback with slixmpp's xep_0352 plugin: while alice says she is inactive,
presence for her waits (only the latest per sender), and goes out before the next message or
when she is active again."""

from __future__ import annotations

import pytest
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    assert_empty,
    connect_and_start,
    disconnect_all,
    next_item,
    registered_accounts,
)

from stockade.server.server import Server

accounts_template, deployment = registered_accounts()
DESK = ALICE + "/desk"


@pytest.mark.timeout(30)
async def test_presence_waits_while_inactive(deployment, server: Server) -> None:
    alice = Client(DESK, ACCOUNTS[ALICE], deployment.ca_file)
    bob = Client(BOB + "/phone", ACCOUNTS[BOB], deployment.ca_file)
    alice.register_plugin("xep_0352")
    try:
        for client in (alice, bob):
            await connect_and_start(client, server.ports["starttls"][0], presence=True)
            await next_item(client.presences, "own presence reflected")
        assert alice.plugin["xep_0352"].enabled  # the server offered <csi/>
        alice.plugin["xep_0352"].send_inactive()
        await alice.plugin["xep_0199"].ping("localhost")  # processed after <inactive/>

        for show in ("away", "xa"):
            bob.send_presence(pto=DESK, pshow=show)  # directed presence to her resource
        await bob.plugin["xep_0199"].ping("localhost")  # both routed by now
        await assert_empty(alice.presences, "presence while inactive")

        mark = len(alice.received)
        bob.send_message(mto=DESK, mbody="wake up", mtype="chat")
        assert (await next_item(alice.messages, "bob's message"))["body"] == "wake up"
        held = await next_item(alice.presences, "held presence")
        assert held["show"] == "xa"  # only the latest one per sender
        await assert_empty(alice.presences, "an outdated presence")
        stream = bytes(alice.received[mark:])
        assert stream.index(b"<show>xa</show>") < stream.index(b"wake up")  # in order

        bob.send_presence(pto=DESK, pshow="dnd")
        await bob.plugin["xep_0199"].ping("localhost")
        await assert_empty(alice.presences, "presence while still inactive")
        alice.plugin["xep_0352"].send_active()
        assert (await next_item(alice.presences, "presence after <active/>"))["show"] == "dnd"
    finally:
        await disconnect_all((alice, bob))
