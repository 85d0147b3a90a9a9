"""RFC 6120 §11.1 restricted XML: DTDs, entity declarations, processing instructions and
comments end the stream with restricted-xml (§4.9.3.18); entities are never expanded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trustme
from rawxmpp import attack_in_phase, running_server, stream_header

HEADER = stream_header(declaration=False)
DECL = b"<?xml version='1.0'?>"

#: Sent as the very first bytes of a connection, before (or instead of) the stream header.
BEFORE_HEADER = {
    "doctype-with-entity": b'<!DOCTYPE stream [<!ENTITY x "y">]>' + HEADER,
    "doctype-after-xml-declaration": DECL + b"<!DOCTYPE stream:stream>" + HEADER,
    "external-entity-declaration": (
        DECL + b'<!DOCTYPE stream [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + HEADER
        + b"<message><body>&xxe;</body></message>"),
    "parameter-entity-declaration": (
        DECL + b'<!DOCTYPE stream [<!ENTITY % p SYSTEM "http://127.0.0.1:9/dtd"> %p;]>'
        + HEADER),
}

#: Sent inside an open stream; ``{to}`` is an online recipient that must receive nothing.
IN_STREAM = {
    "processing-instruction-between-stanzas": b"<?php system('id'); ?>",
    "processing-instruction-inside-stanza": (
        b"<message to='{to}'><?target data?><body>pi</body></message>"),
    "comment-inside-stanza": b"<message to='{to}'><!-- hidden --><body>c</body></message>",
    "comment-between-stanzas": b"<!-- hidden -->",
}


def _billion_laughs() -> bytes:
    entities = [b'<!ENTITY lol "lol">']
    for i in range(1, 10):
        ref = b"&lol;" if i == 1 else b"&lol%d;" % (i - 1)
        entities.append(b'<!ENTITY lol%d "%s">' % (i, ref * 10))
    return (DECL + b"<!DOCTYPE stream [" + b"".join(entities) + b"]>" + HEADER
            + b"<message><body>&lol9;</body></message>")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(BEFORE_HEADER))
async def test_dtd_before_stream_header(tmp_path: Path, ca: trustme.CA, case: str) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.send(BEFORE_HEADER[case])
        error = await client.expect_stream_error("restricted-xml")
        assert b"root:" not in error  # nothing of /etc/passwd came back
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("phase", ["before-tls", "established"])
@pytest.mark.parametrize("case", list(IN_STREAM))
async def test_restricted_markup_in_stream(tmp_path: Path, ca: trustme.CA, case: str,
                                           phase: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await attack_in_phase(h, phase, IN_STREAM[case], "restricted-xml")
        await h.assert_still_serving(observer=bob)


@pytest.mark.timeout(30)
async def test_billion_laughs_is_refused_at_once(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        started = time.monotonic()
        await client.send(_billion_laughs())
        error = await client.expect_stream_error("restricted-xml", timeout=2.0)
        assert time.monotonic() - started < 1.0
        assert b"lol" not in error
        await h.assert_still_serving()
