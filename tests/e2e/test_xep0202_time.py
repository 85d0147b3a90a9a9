"""XEP-0202 over loopback with slixmpp's xep_0202 plugin: the server's clock, in UTC."""

from __future__ import annotations

import datetime

import pytest
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    Client,
    connect_and_start,
    disconnect_all,
    registered_accounts,
)

from stockade.server.server import Server

accounts_template, deployment = registered_accounts()


@pytest.mark.timeout(30)
async def test_entity_time_of_the_server(deployment, server: Server) -> None:
    alice = Client(ALICE + "/desk", ACCOUNTS[ALICE], deployment.ca_file)
    alice.register_plugin("xep_0202")
    try:
        await connect_and_start(alice, server.ports["starttls"][0])
        before = datetime.datetime.now(datetime.UTC)
        reply = await alice.plugin["xep_0202"].get_entity_time("localhost")
        after = datetime.datetime.now(datetime.UTC)
        # COMPAT: slixmpp's stanza appends its own "Z" to <utc/> (XEP-0082 requires the
        # zone designator there), so its parsed value fails; read the text itself.
        utc = reply.xml.find("{urn:xmpp:time}time/{urn:xmpp:time}utc").text
        tzo = reply.xml.find("{urn:xmpp:time}time/{urn:xmpp:time}tzo").text
        when = datetime.datetime.fromisoformat(utc.replace("Z", "+00:00"))
        assert utc.endswith("Z") and tzo == "+00:00"
        assert before - datetime.timedelta(seconds=1) <= when <= after
    finally:
        await disconnect_all((alice,))
