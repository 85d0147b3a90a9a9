"""End-to-end logins with the real slixmpp client: STARTTLS, direct TLS, SASL, bind, and
accounts managed with the real ``stockade`` CLI."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    Client,
    add_users,
    cli,
    connect_and_start,
    disconnect,
    login,
    registered_accounts,
)

from stockade.server.server import Server

ALICE_PW = ACCOUNTS[ALICE]
accounts_template, deployment = registered_accounts()


def server_logins(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(user, mechanism) of each login the server logged as authenticated."""
    return [(r.user, r.mechanism) for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "stockade.c2s" and r.getMessage() == "authenticated"]


def assert_verified_tls(client: Client) -> ssl.SSLObject:
    """The live connection is TLS and the server's certificate was verified for localhost."""
    tls = client.ssl_object
    assert tls is not None, "connection is not on TLS"
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert client.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert client.ssl_context.check_hostname
    # getpeercert() is empty unless the chain was validated against our CA.
    assert ("DNS", "localhost") in tls.getpeercert().get("subjectAltName", ())
    return tls


@pytest.fixture(autouse=True)
def _server_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stockade")


@pytest.mark.timeout(30)
async def test_starttls_scram_login_binds_requested_resource(
        deployment, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    # An account created with the CLI while the server runs can log in at once.
    await add_users(deployment, ("carol@localhost", "carol's passphrase"))
    client = Client("carol@localhost/desk", "carol's passphrase", deployment.ca_file)
    try:
        await connect_and_start(client, server.ports["starttls"][0])
        assert "starttls" in client.features  # upgraded in-band, not direct TLS
        assert_verified_tls(client)
        raw = client.received.decode()
        # Nothing but STARTTLS is offered before the upgrade; SASL comes after it.
        assert raw.index("<proceed") < raw.index("<mechanisms")
        assert "<mechanism>PLAIN</mechanism>" not in raw[:raw.index("<proceed")]
        assert client.mechanism is not None and client.mechanism.startswith("SCRAM-SHA-")
        assert server_logins(caplog) == [("carol", client.mechanism)]
        assert client.boundjid.full == "carol@localhost/desk"
        assert client.boundjid.resource == "desk"
        # The session is usable: the server answers a ping.
        pong = await client.plugin["xep_0199"].send_ping("localhost", timeout=5)
        assert pong["type"] == "result"
    finally:
        await disconnect(client)


@pytest.mark.timeout(30)
async def test_server_generates_distinct_resources_when_none_requested(
        deployment, server: Server) -> None:
    first = Client(ALICE, ALICE_PW, deployment.ca_file)
    second = Client(ALICE, ALICE_PW, deployment.ca_file)
    try:
        await connect_and_start(first, server.ports["starttls"][0])
        await connect_and_start(second, server.ports["starttls"][0])
        for client in (first, second):
            assert client.boundjid.bare == ALICE
            assert client.boundjid.resource, "server-generated resource is empty"
        assert first.boundjid.resource != second.boundjid.resource
        assert first.transport is not None, "first session was kicked by the second"
        pong = await first.plugin["xep_0199"].send_ping("localhost", timeout=5)
        assert pong["type"] == "result"
    finally:
        await disconnect(first)
        await disconnect(second)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_each_scram_mechanism_logs_in(deployment, server: Server,
                                            caplog: pytest.LogCaptureFixture,
                                            mechanism: str) -> None:
    client = Client(ALICE + "/scram", ALICE_PW, deployment.ca_file, sasl_mech=mechanism)
    try:
        await connect_and_start(client, server.ports["starttls"][0])
        assert client.mechanism == mechanism
        assert server_logins(caplog) == [("alice", mechanism)]
    finally:
        await disconnect(client)


@pytest.mark.timeout(30)
async def test_direct_tls_login(deployment, server: Server,
                                caplog: pytest.LogCaptureFixture) -> None:
    client = Client(ALICE + "/direct", ALICE_PW, deployment.ca_file, direct_tls=True)
    try:
        await connect_and_start(client, server.ports["direct_tls"][0])
        assert_verified_tls(client)
        assert "starttls" not in client.features
        raw = client.received.decode()
        assert "<starttls" not in raw  # already on TLS: STARTTLS is not offered (XEP-0368)
        assert "<mechanisms" in raw
        assert client.mechanism is not None and client.mechanism.startswith("SCRAM-SHA-")
        assert server_logins(caplog) == [("alice", client.mechanism)]
        assert client.boundjid.full == "alice@localhost/direct"
    finally:
        await disconnect(client)


@pytest.mark.timeout(30)
async def test_plain_forced_works_over_tls(deployment, server: Server,
                                           caplog: pytest.LogCaptureFixture) -> None:
    client = Client(ALICE + "/plain", ALICE_PW, deployment.ca_file, sasl_mech="PLAIN")
    try:
        await connect_and_start(client, server.ports["starttls"][0])
        assert_verified_tls(client)
        assert client.mechanism == "PLAIN"
        assert server_logins(caplog) == [("alice", "PLAIN")]
        assert client.boundjid.full == "alice@localhost/plain"
    finally:
        await disconnect(client)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", [None, "SCRAM-SHA-1", "PLAIN"])
async def test_wrong_password_fails(deployment, server: Server,
                                    caplog: pytest.LogCaptureFixture,
                                    mechanism: str | None) -> None:
    client = Client(ALICE + "/x", "not the password", deployment.ca_file, sasl_mech=mechanism)
    started: list[object] = []
    client.add_event_handler("session_start", started.append)
    try:
        assert await login(client, server.ports["starttls"][0]) == "failed_auth"
        assert client.auth_failures[0]["condition"] == "not-authorized"
        assert not started
        assert not client.authenticated
        assert server_logins(caplog) == []
        assert "<success" not in client.received.decode()
    finally:
        await disconnect(client)


@pytest.mark.timeout(30)
async def test_deleted_account_can_no_longer_log_in(deployment, server: Server) -> None:
    before = Client(ALICE + "/before", ALICE_PW, deployment.ca_file)
    await connect_and_start(before, server.ports["starttls"][0])
    await disconnect(before)

    await cli(deployment, "user", "delete", ALICE)

    after = Client(ALICE + "/after", ALICE_PW, deployment.ca_file)
    try:
        assert await login(after, server.ports["starttls"][0]) == "failed_auth"
        assert after.auth_failures[0]["condition"] == "not-authorized"
    finally:
        await disconnect(after)


@pytest.mark.timeout(30)
async def test_changed_password_old_fails_new_works(deployment, server: Server) -> None:
    new_pw = "a brand new passphrase"
    await cli(deployment, "user", "passwd", ALICE, stdin=new_pw + "\n")

    old = Client(ALICE + "/old", ALICE_PW, deployment.ca_file)
    try:
        assert await login(old, server.ports["starttls"][0]) == "failed_auth"
    finally:
        await disconnect(old)
    for mechanism in (None, "PLAIN"):  # both the SCRAM keys and the PLAIN check changed
        new = Client(ALICE + "/new", new_pw, deployment.ca_file, sasl_mech=mechanism)
        try:
            await connect_and_start(new, server.ports["starttls"][0])
            assert new.boundjid.full == "alice@localhost/new"
        finally:
            await disconnect(new)


@pytest.mark.timeout(30)
async def test_tls12_client_logs_in(deployment, server: Server,
                                    caplog: pytest.LogCaptureFixture) -> None:
    # SCRAM without -PLUS: on TLS 1.2 slixmpp would pick SCRAM-*-PLUS with tls-unique, which
    # the server does not offer (it advertises only tls-server-end-point, XEP-0440).
    client = Client(ALICE + "/old", ALICE_PW, deployment.ca_file, sasl_mech="SCRAM-SHA-256")
    client.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        await connect_and_start(client, server.ports["starttls"][0])
        assert assert_verified_tls(client).version() == "TLSv1.2"
        assert server_logins(caplog) == [("alice", "SCRAM-SHA-256")]
    finally:
        await disconnect(client)


@pytest.mark.timeout(30)
async def test_same_resource_again_replaces_the_old_session(deployment, server: Server) -> None:
    old = Client(ALICE + "/desk", ALICE_PW, deployment.ca_file)
    new = Client(ALICE + "/desk", ALICE_PW, deployment.ca_file)
    try:
        await connect_and_start(old, server.ports["starttls"][0])
        kicked = asyncio.ensure_future(old.wait_until("disconnected", 5))
        await connect_and_start(new, server.ports["starttls"][0])
        await kicked
        # RFC 6120 §7.7.2.2 (default policy kick_old): the old stream ends with <conflict/>.
        assert [e["condition"] for e in old.stream_errors] == ["conflict"]
        assert new.boundjid.full == "alice@localhost/desk"
        pong = await new.plugin["xep_0199"].send_ping("localhost", timeout=5)
        assert pong["type"] == "result"
    finally:
        await disconnect(old)
        await disconnect(new)
