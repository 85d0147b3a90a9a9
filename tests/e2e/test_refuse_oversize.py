"""Size and depth limits (RFC 6120 §13.12 resource exhaustion): an oversize stanza, an
oversize element before authentication, a huge stream header and deep nesting end the stream
with policy-violation (§4.9.3.14) as soon as the limit is crossed, not at the end tag."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme
from rawxmpp import NS_SASL, NS_TLS, PROCEED, RawClient, body_of, running_server

MAX_STANZA = 20_000
PREAUTH_MAX = 16 * 1024  # c2s.max_preauth_stanza_bytes default
CHUNK = 4096
LIMITS = {"c2s": {"max_stanza_bytes": MAX_STANZA}}


async def _send_in_chunks(client: RawClient, head: bytes, total: int) -> int:
    """``head``, then filler up to ``total`` bytes in CHUNK-sized writes and never an end
    tag; stops early once the server has closed. Returns the bytes written."""
    await client.send(head)
    sent = len(head)
    while sent < total:
        n = min(CHUNK, total - sent)
        try:
            await client.send(b"A" * n)
        except ConnectionError:
            break  # the server already cut us off
        sent += n
        await asyncio.sleep(0.01)  # separate segments: the limit is crossed mid-stanza
    return sent


def _message(to: str, body_bytes: int) -> bytes:
    head = f"<message to='{to}' type='chat' id='big'><body>".encode()
    tail = b"</body></message>"
    return head + b"x" * (body_bytes - len(head) - len(tail)) + tail


@pytest.mark.timeout(30)
async def test_stanza_over_max_stanza_bytes(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, LIMITS) as h:
        bob = await h.login("bob")
        alice = await h.login("alice")
        assert bob.jid is not None
        # Just under the limit is delivered (so the limit is not simply smaller).
        await alice.send(_message(bob.jid, MAX_STANZA - 500))
        message = await bob.read_message()
        assert len(body_of(message) or "") > MAX_STANZA - 600
        # Over it: cut off while the stanza is still open (no end tag is ever sent).
        head = f"<message to='{bob.jid}' type='chat' id='huge'><body>".encode()
        await _send_in_chunks(alice, head, MAX_STANZA + 2 * CHUNK)
        await alice.expect_stream_error("policy-violation")
        await h.assert_still_serving(observer=bob)


@pytest.mark.timeout(30)
async def test_element_over_preauth_limit_before_tls(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, LIMITS) as h:
        # A 12 KB <starttls/> (whitespace inside) is within the pre-auth limit and works.
        ok = await h.connect()
        await ok.open_stream()
        await ok.send(f"<starttls xmlns='{NS_TLS}'>".encode() + b" " * 12_000
                      + b"</starttls>")
        assert await ok.read_until(PROCEED) == PROCEED
        await ok.start_tls_handshake()
        # Twenty kilobytes of one unfinished element is cut off.
        client = await h.connect()
        await client.open_stream()
        await _send_in_chunks(client, b"<message to='bob@localhost'><body>",
                              PREAUTH_MAX + CHUNK)
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()


@pytest.mark.timeout(30)
async def test_element_over_preauth_limit_after_tls(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, LIMITS) as h:
        client = await h.connect()
        await client.to_sasl()
        head = f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>".encode()
        await _send_in_chunks(client, head, PREAUTH_MAX + CHUNK)
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()


@pytest.mark.timeout(30)
async def test_huge_stream_header(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, LIMITS) as h:
        client = await h.connect()
        head = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
                b"version='1.0' x='")
        await _send_in_chunks(client, head, 12 * 1024)  # max_header_bytes is 8 KiB
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()


def _nested(depth: int) -> bytes:
    return b"<x xmlns='urn:test:nest'>" * depth + b"</x>" * depth


@pytest.mark.timeout(30)
async def test_nesting_deeper_than_max_depth(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, LIMITS) as h:
        bob = await h.login("bob")
        alice = await h.login("alice")
        assert bob.jid is not None
        # 20 levels (under the default max_depth of 32) are delivered intact.
        await alice.send(f"<message to='{bob.jid}' id='deep-ok'>".encode() + _nested(20)
                         + b"</message>")
        message = await bob.read_message()
        depth, el = 0, message
        while len(el):
            el, depth = el[0], depth + 1
        assert depth == 20
        # 40 levels: refused when the limit is reached, before any end tag.
        await alice.send(f"<message to='{bob.jid}' id='deep'>".encode()
                         + b"<x xmlns='urn:test:nest'>" * 40)
        await alice.expect_stream_error("policy-violation")
        await h.assert_still_serving(observer=bob)


@pytest.mark.timeout(30)
async def test_nesting_before_authentication(tmp_path: Path, ca: trustme.CA) -> None:
    """Before authentication the depth limit is 8 (c2s_policy caps it)."""
    async with running_server(tmp_path, ca, LIMITS) as h:
        client = await h.connect()
        await client.open_stream()
        await client.send(f"<starttls xmlns='{NS_TLS}'>".encode() + b"<x>" * 12)
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()
