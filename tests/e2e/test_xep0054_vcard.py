"""XEP-0054 over loopback with slixmpp's xep_0054 plugin: alice publishes her vCard, bob reads
it from her bare JID (answered by the server), and nobody may overwrite someone else's."""

from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    connect_and_start,
    disconnect_all,
    registered_accounts,
)

from stockade.server.server import Server

accounts_template, deployment = registered_accounts()


@pytest.mark.timeout(30)
async def test_vcard_set_by_alice_read_by_bob(deployment, server: Server) -> None:
    alice = Client(ALICE + "/desk", ACCOUNTS[ALICE], deployment.ca_file)
    bob = Client(BOB + "/phone", ACCOUNTS[BOB], deployment.ca_file)
    for client in (alice, bob):
        client.register_plugin("xep_0054")
    try:
        for client in (alice, bob):
            await connect_and_start(client, server.ports["starttls"][0])
        empty = await bob.plugin["xep_0054"].get_vcard(ALICE, local=False)
        assert empty["vcard_temp"]["FN"] == ""  # nothing published yet: an empty vCard

        card = alice.plugin["xep_0054"].make_vcard()
        card["FN"] = "Alice Liddell"
        card["NICKNAME"] = "alice"
        await alice.plugin["xep_0054"].publish_vcard(card)

        got = await bob.plugin["xep_0054"].get_vcard(ALICE, local=False)
        assert got["from"].full == ALICE
        assert (got["vcard_temp"]["FN"], got["vcard_temp"]["NICKNAME"]) == (
            "Alice Liddell", ["alice"])
        own = await alice.plugin["xep_0054"].get_vcard(ALICE, local=False)
        assert own["vcard_temp"]["FN"] == "Alice Liddell"

        forged = bob.plugin["xep_0054"].make_vcard()
        forged["FN"] = "Not Alice"
        with pytest.raises(IqError) as refused:
            await bob.plugin["xep_0054"].publish_vcard(forged, jid=ALICE)
        assert refused.value.condition == "forbidden"
        again = await bob.plugin["xep_0054"].get_vcard(ALICE, local=False)
        assert again["vcard_temp"]["FN"] == "Alice Liddell"
    finally:
        await disconnect_all((alice, bob))
