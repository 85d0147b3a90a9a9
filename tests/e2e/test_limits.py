"""Resource limits over real sockets: connections per IP, resources per account, the stanza
rate (token bucket) and the idle / stalled-stanza timeouts. Each refusal is a clear RFC 6120
condition, and the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
import trustme
from rawxmpp import running_server

_ERROR_IQ = re.compile(rb"<iq\b[^>]*type='error'.*?</iq>", re.S)


@pytest.mark.timeout(30)
async def test_connections_per_ip_are_capped(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"limits": {"max_connections_per_ip": 3}}) as h:
        first = [await h.connect() for _ in range(3)]
        for client in first:
            await client.open_stream()
        extra = await h.connect()
        data = await extra.expect_stream_error("policy-violation")
        assert b"too many connections" in data
        await first[0].close()
        await asyncio.sleep(0.2)
        again = await h.connect()
        assert b"<starttls" in await again.open_stream()  # a freed slot is usable again


@pytest.mark.timeout(30)
async def test_resources_per_account_are_capped(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"limits": {"max_resources_per_account": 2}}) as h:
        await h.login("alice", "one")
        await h.login("alice", "two")
        third = await h.connect()
        await third.authenticate("alice")
        await third.send("<iq type='set' id='bind-3'><bind xmlns='urn:ietf:params:xml:ns:"
                         "xmpp-bind'><resource>three</resource></bind></iq>")
        data = await third.read_until(_ERROR_IQ)
        assert b"<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" in data
        # Replacing an existing resource is still allowed (kick_old is the default policy).
        await h.login("alice", "two")


@pytest.mark.timeout(30)
async def test_stanza_rate_is_limited_with_errors_then_disconnection(
        tmp_path: Path, ca: trustme.CA) -> None:
    limits = {"stanzas_per_second": 1, "stanza_burst": 5}
    async with running_server(tmp_path, ca, {"limits": limits}) as h:
        bob = await h.login("bob", "phone")
        alice = await h.login("alice", "desk")
        burst = "".join(f"<message to='{bob.jid}' id='m{i}' type='chat'><body>{i}</body>"
                        "</message>" for i in range(8))
        await alice.send(burst)
        errors = await alice.read_until(lambda b: b.count(b"type='error'") >= 3)
        assert errors.count(b"<resource-constraint") == 3
        for i in (5, 6, 7):
            assert f"id='m{i}'".encode() in errors  # exactly the stanzas over the burst
        received = await bob.read_until(lambda b: b.count(b"</message>") >= 5)
        assert received.count(b"</message>") == 5
        # One that ignores the errors and keeps flooding is cut off.
        await alice.send(burst * 2)
        await alice.expect_stream_error("policy-violation")
        await h.assert_still_serving(bob)


@pytest.mark.timeout(30)
async def test_half_sent_stanza_that_stalls_is_cut_off(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"limits": {"stanza_timeout_s": 1}}) as h:
        alice = await h.login("alice", "desk")
        started = time.monotonic()
        await alice.send("<message to='bob@localhost'><body>never finish")
        data = await alice.expect_stream_error("connection-timeout", timeout=5)
        assert b"stanza not completed in time" in data
        assert time.monotonic() - started < 4
        await h.assert_still_serving()


@pytest.mark.timeout(30)
async def test_idle_client_is_pinged_then_disconnected_and_answers_count(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"limits": {"idle_timeout_s": 2}}) as h:
        silent = await h.login("alice", "silent")
        lively = await h.login("bob", "lively")
        # Bob answers the server's ping, as every client must; Alice does not.
        probe = await lively.read_until(re.compile(rb"<iq [^>]*id='stockade-idle'.*?</iq>",
                                                   re.S), timeout=6)
        assert b"<ping xmlns='urn:xmpp:ping'/>" in probe
        await lively.send("<iq type='result' id='stockade-idle' to='localhost'/>")
        await silent.read_until(b"id='stockade-idle'", timeout=6)
        await silent.expect_stream_error("connection-timeout", timeout=6)
        await lively.ping("still-here")
