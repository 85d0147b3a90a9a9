"""STARTTLS command injection (CVE-2011-0411 class): plaintext pipelined behind
``<starttls/>`` must be discarded, never parsed as part of the TLS-protected stream
(RFC 6120 §5.4.3.3: the new stream starts from nothing once TLS is up)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from rawxmpp import (
    ACCOUNTS,
    NS_BIND,
    NS_TLS,
    PROCEED,
    TIMEOUT,
    client_tls_context,
    plain_auth,
    running_server,
    stream_header,
)

STARTTLS = f"<starttls xmlns='{NS_TLS}'/>".encode()
LOGIN = plain_auth("alice", ACCOUNTS["alice"])  # the real password: it must still not work


def _injections(target: str) -> dict[str, bytes]:
    message = f"<message to='{target}' type='chat'><body>injected</body></message>".encode()
    return {
        "header-auth-message": stream_header() + LOGIN + message,
        "header-without-xml-declaration": stream_header(declaration=False) + LOGIN + message,
        "elements-only": LOGIN + message,
    }


@pytest.mark.timeout(30)
@pytest.mark.parametrize("injection", list(_injections("x")))
async def test_pipelined_plaintext_after_starttls_is_discarded(
        tmp_path: Path, ca: trustme.CA, injection: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        assert bob.jid is not None
        client = await h.connect()
        await client.open_stream()
        await client.send(STARTTLS + _injections(bob.jid)[injection])  # one write
        assert await client.read_until(PROCEED) == PROCEED
        # Watch the target for a second while the rest of the test runs.
        target_saw = asyncio.ensure_future(bob.collect(1.0))
        await client.start_tls_handshake()
        # The injected header must not have opened the new stream: the server says nothing
        # until we send a header of our own.
        assert await client.collect(0.3) == b""
        features = await client.open_stream()
        assert features.count(b"<stream:stream") == 1, features
        assert b"<mechanisms" in features and b"<success" not in features, features
        assert b"<failure" not in features and b"<stream:error" not in features, features
        assert await client.collect(0.3) == b""  # no late answer to the injected <auth/>
        # The stream is a fresh, working one: log in properly on it.
        outcome = await client.scram("alice", ACCOUNTS["alice"])
        assert outcome.startswith(b"<success"), outcome
        assert f"<bind xmlns='{NS_BIND}'/>".encode() in await client.open_stream()
        await client.bind("after-injection")
        await client.ping()
        assert await target_saw == b""  # the injected message was never routed
        await h.assert_still_serving(observer=bob)


@pytest.mark.timeout(30)
async def test_plaintext_sent_after_starttls_breaks_the_handshake(
        tmp_path: Path, ca: trustme.CA) -> None:
    """Injected bytes in a later TCP segment reach the TLS layer as garbage, not the parser."""
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        assert bob.jid is not None
        client = await h.connect()
        await client.open_stream()
        await client.send(STARTTLS)
        assert await client.read_until(PROCEED) == PROCEED
        await client.send(_injections(bob.jid)["header-auth-message"])
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(client.writer.start_tls(client_tls_context(
                h.deployment.ca_file), server_hostname="localhost"), TIMEOUT)
        assert await bob.collect(1.0) == b""
        await h.assert_still_serving(observer=bob)
