"""XEP-0049 over loopback with slixmpp's xep_0049 plugin: private XML survives a reconnect
and is the account's alone."""

from __future__ import annotations

from typing import ClassVar

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ElementBase
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    connect_and_start,
    disconnect,
    disconnect_all,
    registered_accounts,
)

from stockade.server.server import Server

accounts_template, deployment = registered_accounts()


class Prefs(ElementBase):
    """A client's preferences, as a client would keep them in private storage."""

    name = "prefs"
    namespace = "urn:example:prefs"
    plugin_attrib = "prefs"
    interfaces: ClassVar[set[str]] = {"nick", "theme"}
    sub_interfaces: ClassVar[set[str]] = interfaces


def client(deployment, jid: str) -> Client:
    c = Client(jid, ACCOUNTS[jid.split("/")[0]], deployment.ca_file)
    c.register_plugin("xep_0049")
    c.plugin["xep_0049"].register(Prefs)
    return c


@pytest.mark.timeout(30)
async def test_private_storage_round_trip(deployment, server: Server) -> None:
    port = server.ports["starttls"][0]
    alice, later, bob = (client(deployment, ALICE + "/desk"), client(deployment, ALICE + "/tab"),
                         client(deployment, BOB + "/phone"))
    try:
        await connect_and_start(alice, port)
        prefs = Prefs()
        prefs["nick"], prefs["theme"] = "Alice", "dark"
        await alice.plugin["xep_0049"].store(prefs)
        await disconnect(alice)

        await connect_and_start(later, port)  # another session, later
        got = await later.plugin["xep_0049"].retrieve("prefs")
        assert (got["private"]["prefs"]["nick"], got["private"]["prefs"]["theme"]) == (
            "Alice", "dark")

        await connect_and_start(bob, port)
        nothing = await bob.plugin["xep_0049"].retrieve("prefs")
        assert nothing["private"]["prefs"]["nick"] == ""  # bob's storage is his own
        peek = bob.make_iq_get(ito=ALICE)
        peek["private"].enable("prefs")
        with pytest.raises(IqError) as refused:
            await peek.send()
        assert refused.value.condition == "forbidden"
    finally:
        await disconnect_all((alice, later, bob))
