"""XEP-0077 over loopback with slixmpp's xep_0077 plugin: off by default; when enabled in the
deployment config, a new account is registered before login (over TLS), a weak password is
refused with a reason, the password is changed in-band, and the account removes itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import trustme
from rawxmpp import RawClient
from slixmpp.exceptions import IqError
from slixmpp_helpers import Client, connect_and_start, disconnect, disconnect_all, login
from tests.conftest import Deployment, deployment_config

from stockade.server.config import load_config
from stockade.server.server import Server

FEATURE = b"<register xmlns='http://jabber.org/features/iq-register'/>"
CAROL = "carol@localhost"


@pytest.fixture
def deployment(tmp_path: Path, ca: trustme.CA) -> Deployment:
    """A deployment whose configuration switches in-band registration on."""
    return deployment_config(tmp_path, ca, {"register": {"enabled": True}})[0]


def registering(deployment: Deployment, jid: str, password: str,
                outcome: list[Any]) -> Client:
    """A slixmpp client that registers ``jid`` when the server offers registration."""
    client = Client(jid, password, deployment.ca_file)
    client.register_plugin("xep_0077")

    async def on_register(_form: Any) -> None:
        iq = client.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = client.boundjid.user
        iq["register"]["password"] = password
        try:
            await iq.send()
            outcome.append("registered")
        except IqError as err:
            outcome.append((err.condition, err.text))

    client.add_event_handler("register", on_register)
    return client


@pytest.mark.timeout(30)
async def test_registration_is_off_by_default(tmp_path: Path, ca: trustme.CA) -> None:
    default, _ = deployment_config(tmp_path, ca)
    server = Server(load_config(default.config_path))
    await server.start()
    try:
        async with await RawClient.connect(server.ports["starttls"][0], default.ca_file) as raw:
            features = await raw.to_sasl()
    finally:
        await server.stop()
    assert b"<mechanisms" in features and FEATURE not in features


@pytest.mark.timeout(30)
async def test_register_change_password_and_remove(deployment: Deployment,
                                                   server: Server) -> None:
    port = server.ports["starttls"][0]
    async with await RawClient.connect(port, deployment.ca_file) as raw:
        assert FEATURE in await raw.to_sasl()  # offered over TLS, beside the mechanisms

    outcomes: list[Any] = []
    weak = registering(deployment, "dave@localhost", "passwordpassword", outcomes)
    carol = registering(deployment, CAROL, "Tulips in May, 1st", outcomes)
    clients = [weak, carol]
    try:
        assert await login(weak, port) == "failed_auth"  # no account was made for it
        assert outcomes[0][0] == "not-acceptable" and "mix" in outcomes[0][1]
        await connect_and_start(carol, port)
        assert outcomes[1:] == ["registered"]

        await carol.plugin["xep_0077"].change_password("Tulips in June, 2nd")
        await disconnect(carol)
        old = Client(CAROL, "Tulips in May, 1st", deployment.ca_file)
        new = Client(CAROL + "/again", "Tulips in June, 2nd", deployment.ca_file)
        clients += [old, new]
        assert await login(old, port) == "failed_auth"
        await connect_and_start(new, port)

        new.register_plugin("xep_0077")
        gone = asyncio.ensure_future(new.wait_until("disconnected", 10))
        await new.plugin["xep_0077"].cancel_registration()  # the result comes first
        await gone
        assert [str(e["condition"]) for e in new.stream_errors] == ["not-authorized"]
        assert not await server.storage.account_exists("carol")
        after = Client(CAROL, "Tulips in June, 2nd", deployment.ca_file)
        clients.append(after)
        assert await login(after, port) == "failed_auth"
    finally:
        await disconnect_all(clients)
