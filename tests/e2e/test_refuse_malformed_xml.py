"""Malformed XML (RFC 6120 §4.9.3.13 not-well-formed, §4.9.3.22 unsupported-encoding) and
bad stream headers (§4.9.3.10 invalid-namespace, §4.9.3.2 bad-namespace-prefix, §4.9.3.6
host-unknown, §4.9.3.25 unsupported-version)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, NS_STREAMS, attack_in_phase, running_server, stream_header

#: ``{to}`` is an online recipient that must receive nothing.
NOT_WELL_FORMED = {
    "mismatched-end-tag": b"<message to='{to}'><body>x</message>",
    "control-character": b"<message to='{to}'><body>bell \x07</body></message>",
    "nul-byte": b"<message to='{to}'><body>nul \x00</body></message>",
    "undefined-entity": b"<message to='{to}'><body>&foo;</body></message>",
    "unquoted-attribute": b"<message to={to}><body>x</body></message>",
    "second-xml-declaration": b"<?xml version='1.0'?>",
}

#: Bytes that are not UTF-8 at all: RFC 6120 §4.9.3.22 names this case ("has otherwise
#: improperly encoded the stream (e.g., by violating the rules of the [UTF-8] encoding)").
BAD_UTF8 = {
    "invalid-continuation": b"<message to='{to}'><body>\xc3\x28</body></message>",
    "byte-0xff": b"<message to='{to}'><body>\xff</body></message>",
    "overlong-encoding": b"<message to='{to}'><body>\xc0\xaf</body></message>",
}

HEADERS = {
    "wrong-stream-namespace": (stream_header(stream_ns="urn:wrong"), "invalid-namespace"),
    "content-namespace-jabber-server": (stream_header(xmlns="jabber:server"),
                                        "invalid-namespace"),
    "no-content-namespace": (stream_header(xmlns=None), "invalid-namespace"),
    "stream-prefix-not-stream": (
        b"<?xml version='1.0'?><s:stream xmlns='jabber:client' "
        b"xmlns:s='" + NS_STREAMS.encode() + b"' to='localhost' version='1.0'>",
        "bad-namespace-prefix"),
    "unknown-host": (stream_header(to="example.net"), "host-unknown"),
    "missing-version": (stream_header(version=None), "unsupported-version"),
    "version-2": (stream_header(version="2.0"), "unsupported-version"),
    "latin-1-declaration": (
        b"<?xml version='1.0' encoding='ISO-8859-1'?>" + stream_header(declaration=False),
        "unsupported-encoding"),
}


async def _attack(tmp_path: Path, ca: trustme.CA, phase: str, payload: bytes,
                  condition: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await attack_in_phase(h, phase, payload, condition)
        await h.assert_still_serving(observer=bob)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("phase", ["before-tls", "established"])
@pytest.mark.parametrize("case", list(NOT_WELL_FORMED))
async def test_not_well_formed(tmp_path: Path, ca: trustme.CA, case: str, phase: str) -> None:
    await _attack(tmp_path, ca, phase, NOT_WELL_FORMED[case], "not-well-formed")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("phase", ["before-tls", "established"])
@pytest.mark.parametrize("case", list(BAD_UTF8))
async def test_invalid_utf8_is_unsupported_encoding(tmp_path: Path, ca: trustme.CA,
                                                    case: str, phase: str) -> None:
    await _attack(tmp_path, ca, phase, BAD_UTF8[case], "unsupported-encoding")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(HEADERS))
async def test_bad_stream_header(tmp_path: Path, ca: trustme.CA, case: str) -> None:
    header, condition = HEADERS[case]
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.send(header)
        await client.expect_stream_error(condition)
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["unknown-host", "content-namespace-jabber-server",
                                  "missing-version"])
async def test_bad_stream_header_after_starttls(tmp_path: Path, ca: trustme.CA,
                                                case: str) -> None:
    """The restarted stream's header is checked as strictly as the first one."""
    header, condition = HEADERS[case]
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.open_stream()
        await client.starttls()
        await client.send(header)
        await client.expect_stream_error(condition)
        await h.assert_still_serving()


@pytest.mark.timeout(30)
async def test_bad_stream_header_after_sasl(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.to_sasl()
        assert (await client.scram("alice", ACCOUNTS["alice"])).startswith(b"<success")
        await client.send(stream_header(to="example.net"))
        await client.expect_stream_error("host-unknown")
        await h.assert_still_serving()
