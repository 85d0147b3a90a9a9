"""XMPP over WebSocket (RFC 7395) end to end: a raw WebSocket client against a real server on
loopback, chatting with a TCP slixmpp client; every malformed frame or handshake refused
with the RFC 6455 code or HTTP status, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, DOMAIN, Harness, running_server
from slixmpp_helpers import Client, connect_and_start, disconnect, next_item
from wsclient import (
    CLOSE_XMPP,
    NS_FRAMING,
    NS_SASL,
    WSClient,
    handshake_request,
    http_exchange,
    tls_context,
)

from stockade.core.http import Request, Response
from stockade.io.http import HTTPListener, HTTPRoute
from wsframes import BINARY, CONTINUATION, PING, PONG, TEXT, client_frame, text

pytestmark = pytest.mark.timeout(30)
WS = "/xmpp-websocket"


def http_port(h: Harness) -> int:
    return h.server.ports["http"][0]


def https_port(h: Harness) -> int:
    return h.server.ports["https"][0]


async def ws_connect(h: Harness, *, secure: bool = False, origin: str | None = None,
                     ) -> WSClient:
    """A WebSocket client (plain or TLS listener), closed when the harness ends."""
    if secure:
        ws = await WSClient.connect(https_port(h), tls=tls_context(h.deployment.ca_file),
                                    origin=origin)
    else:
        ws = await WSClient.connect(http_port(h), origin=origin)
    h.clients.append(ws)  # type: ignore[arg-type]  # closed like the RawClients
    return ws


async def ws_login(h: Harness, user: str, *, secure: bool = False,
                   mechanism: str = "SCRAM-SHA-256", resource: str = "ws") -> WSClient:
    ws = await ws_connect(h, secure=secure)
    await ws.login(user, mechanism=mechanism, resource=resource)
    return ws


async def assert_ws_still_serving(h: Harness) -> None:
    """A fresh WebSocket client logs in and pings the server."""
    ws = await ws_login(h, "carol")
    await ws.send_text("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>")
    reply = await ws.next_element()
    assert (reply.get("type"), reply.get("id")) == ("result", "p"), ET.tostring(reply)
    await ws.close()


# ---------------------------------------------------------------------- logins and chat


async def test_wss_login_with_channel_binding_chats_with_a_tcp_client(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_connect(h, secure=True)
        features = await ws.open_stream()
        offered = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert "SCRAM-SHA-256-PLUS" in offered, offered
        await ws.close()
        alice = await ws_login(h, "alice", secure=True, mechanism="SCRAM-SHA-256-PLUS")
        bob = Client(f"bob@{DOMAIN}", ACCOUNTS["bob"], h.deployment.ca_file)
        await connect_and_start(bob, h.starttls_port)
        try:
            await alice.send_text(f"<message xmlns='jabber:client' to='{bob.boundjid}' "
                                  "type='chat'><body>hello over wss</body></message>")
            msg = await next_item(bob.messages, "alice's WebSocket message")
            assert msg["body"] == "hello over wss"
            assert msg["from"].full == alice.jid  # stamped by the server
            msg.reply("hello over tcp").send()
            reply = await alice.next_element()
            assert reply.tag == "{jabber:client}message", ET.tostring(reply)
            assert reply.findtext("{jabber:client}body") == "hello over tcp"
            assert reply.get("from") == str(bob.boundjid)
        finally:
            await disconnect(bob)


async def test_plain_loopback_login_without_starttls(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_connect(h)
        features = await ws.open_stream()
        offered = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        # Loopback plaintext counts as secure: SASL without STARTTLS, but no channel to
        # bind to, so no -PLUS.
        assert "SCRAM-SHA-256" in offered and "PLAIN" in offered, offered
        assert not [m for m in offered if m.endswith("-PLUS")], offered
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
        await ws.close()
        bob = await ws_login(h, "bob")
        alice = await ws_login(h, "alice")
        await alice.send_text(f"<message xmlns='jabber:client' to='{bob.jid}'>"
                              "<body>ws to ws</body></message>")
        msg = await bob.next_element()
        assert msg.findtext("{jabber:client}body") == "ws to ws"


async def test_close_element_is_answered_then_the_websocket_closes(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_login(h, "alice")
        await ws.send_text(CLOSE_XMPP)
        texts = await ws.expect_close(1000)  # RFC 7395 §3.6: <close/>, then the server
        assert [ET.fromstring(t).tag for t in texts] == [f"{{{NS_FRAMING}}}close"]


async def test_ping_frame_gets_pong_and_fragmented_stanza_is_reassembled(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_login(h, "alice")
        await ws.send_raw(client_frame(PING, b"are you there"))
        pong = await ws.next_frame()
        assert (pong.opcode, pong.payload) == (PONG, b"are you there")
        stanza = (b"<iq xmlns='jabber:client' type='get' id='frag' to='localhost'>"
                  b"<ping xmlns='urn:xmpp:ping'/></iq>")
        await ws.send_raw(client_frame(TEXT, stanza[:10], fin=False)
                          + client_frame(PING, b"between")
                          + client_frame(CONTINUATION, stanza[10:30], fin=False)
                          + client_frame(CONTINUATION, stanza[30:]))
        frames = [await ws.next_frame(), await ws.next_frame()]
        assert frames[0].opcode == PONG
        reply = ET.fromstring(frames[1].payload)
        assert (reply.get("id"), reply.get("type")) == ("frag", "result")


async def test_peer_close_frame_is_echoed(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_login(h, "alice")
        await ws.send_raw(client_frame(0x8, struct.pack(">H", 1001)))
        assert await ws.expect_close(1001) == []


# ---------------------------------------------------------------------- refused frames


BAD_FRAMES = {
    "unmasked": (text("<presence xmlns='jabber:client'/>", masked=False), 1002),
    "orphan-continuation": (client_frame(CONTINUATION, b"<presence/>"), 1002),
    "data-inside-fragmented": (client_frame(TEXT, b"<pres", fin=False) + text("<a/>"), 1002),
    "rsv-bit": (text("<presence xmlns='jabber:client'/>", rsv=2), 1002),
    "oversize": (bytes([0x81, 0xFF]) + struct.pack(">Q", 10**9) + b"mask" + b"x" * 1000, 1009),
    "binary": (client_frame(BINARY, b"<presence xmlns='jabber:client'/>"), 1003),
    "invalid-utf8": (text(b"<message xmlns='jabber:client'><body>\xc3\x28</body></message>"),
                     1007),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
async def test_bad_frames_close_the_websocket(tmp_path: Path, ca: trustme.CA,
                                              case: str) -> None:
    frames, code = BAD_FRAMES[case]
    async with running_server(tmp_path, ca) as h:
        attacker = await ws_login(h, "alice")
        await attacker.send_raw(frames)
        await attacker.expect_close(code)
        await assert_ws_still_serving(h)
        await h.assert_still_serving()


async def test_message_over_the_stanza_limit_is_1009(tmp_path: Path, ca: trustme.CA) -> None:
    overrides: dict[str, dict[str, object]] = {"c2s": {"max_stanza_bytes": 10_000}}
    async with running_server(tmp_path, ca, overrides) as h:
        ws = await ws_login(h, "alice")
        body = "x" * 20_000
        await ws.send_text(f"<message xmlns='jabber:client' to='bob@localhost'>"
                           f"<body>{body}</body></message>")
        await ws.expect_close(1009)


# ---------------------------------------------------------------------- refused XMPP


async def test_doctype_in_a_message_is_restricted_xml(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_connect(h)
        await ws.open_stream()
        await ws.send_text('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
        await ws.expect_stream_error("restricted-xml")
        await assert_ws_still_serving(h)


async def test_stanza_before_auth_is_not_authorized(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await ws_login(h, "bob")
        ws = await ws_connect(h)
        await ws.open_stream()
        await ws.send_text(f"<message xmlns='jabber:client' to='{bob.jid}'>"
                           "<body>spoof</body></message>")
        await ws.expect_stream_error("not-authorized")
        # bob received nothing: the next thing he gets is the answer to his own ping.
        await bob.send_text("<iq xmlns='jabber:client' type='get' id='after' to='localhost'>"
                            "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert (await bob.next_element()).get("id") == "after"


async def test_two_elements_in_one_message_are_refused(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_login(h, "alice")
        await ws.send_text("<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>")
        await ws.expect_stream_error("not-well-formed")


# ---------------------------------------------------------------------- handshake and HTTP


async def status_of(port: int, request: bytes) -> int:
    return (await http_exchange(port, request))[0]


async def test_handshake_refusals(tmp_path: Path, ca: trustme.CA) -> None:
    overrides: dict[str, dict[str, object]] = {
        "http": {"allowed_origins": ["https://chat.example"]}}
    async with running_server(tmp_path, ca, overrides) as h:
        port = http_port(h)
        assert await status_of(port, handshake_request(origin="https://evil.example")) == 403
        assert await status_of(port, handshake_request(protocol=None)) == 400
        assert await status_of(port, handshake_request(protocol="chat")) == 400
        status, headers, _ = await http_exchange(
            port, handshake_request().replace(b"Version: 13", b"Version: 12"))
        assert (status, headers["sec-websocket-version"]) == (426, "13")
        plain_get = f"GET {WS} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        assert await status_of(port, plain_get) == 426
        ws = await ws_connect(h, origin="https://chat.example")
        await ws.open_stream()


async def test_any_origin_on_loopback_by_default(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ws = await ws_connect(h, origin="http://localhost:8080")
        await ws.open_stream()


@pytest.mark.parametrize("secure", [False, True])
async def test_host_meta_xml_and_json(tmp_path: Path, ca: trustme.CA, secure: bool) -> None:
    async with running_server(tmp_path, ca) as h:
        port = https_port(h) if secure else http_port(h)
        tls = tls_context(h.deployment.ca_file) if secure else None
        expected = (f"wss://{DOMAIN}:{port}{WS}" if secure else f"ws://127.0.0.1:{port}{WS}")
        # A forged Host header changes nothing (the URL comes from the listener).
        request = b"GET /.well-known/host-meta HTTP/1.1\r\nHost: evil.example\r\n\r\n"
        status, headers, body = await http_exchange(port, request, tls=tls)
        assert status == 200
        assert headers["access-control-allow-origin"] == "*"
        assert headers["content-type"].startswith("application/xrd+xml")
        xrd = ET.fromstring(body)
        links = [(link.get("rel"), link.get("href")) for link in xrd]
        assert xrd.tag == "{http://docs.oasis-open.org/ns/xri/xrd-1.0}XRD"
        assert links == [("urn:xmpp:alt-connections:websocket", expected)]
        status, headers, body = await http_exchange(
            port, b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: x\r\n\r\n", tls=tls)
        assert (status, headers["content-type"]) == (200, "application/json")
        assert headers["access-control-allow-origin"] == "*"
        assert json.loads(body) == {"links": [{"rel": "urn:xmpp:alt-connections:websocket",
                                               "href": expected}]}


async def test_host_meta_uses_public_url(tmp_path: Path, ca: trustme.CA) -> None:
    overrides: dict[str, dict[str, object]] = {"http": {"public_url": "https://xmpp.example/"}}
    async with running_server(tmp_path, ca, overrides) as h:
        _, _, body = await http_exchange(
            http_port(h), b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert json.loads(body)["links"][0]["href"] == f"wss://xmpp.example{WS}"


async def test_http_errors_keep_alive_and_head(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        port = http_port(h)
        assert await status_of(port, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n") == 404
        status, headers, _ = await http_exchange(
            port, b"POST /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (status, headers["allow"]) == (405, "GET, HEAD")
        big = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
        assert await status_of(port, big) == 431
        assert await status_of(port, b"GET / HTTP/1.1\r\n\r\n") == 400
        # Two requests on one connection, the second a HEAD: same head, no body.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"HEAD /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # the server closes after the HEAD
        writer.close()
        assert data.count(b"HTTP/1.1 200 OK") == 2
        assert data.count(b"<XRD") == 1 and data.rstrip().endswith(b"Connection: close")


async def test_idle_http_connection_is_closed(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"http": {"idle_timeout_s": 1}}) as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port(h))
        writer.write(b"GET /.well-known/host-meta HTTP/1.1\r\n")  # and then nothing
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert data.startswith(b"HTTP/1.1 408 ")


async def test_unauthenticated_websocket_times_out(tmp_path: Path, ca: trustme.CA) -> None:
    # The c2s auth timeout counts from the upgrade, as from a TCP connect (5 s: the minimum).
    async with running_server(tmp_path, ca, {"c2s": {"auth_timeout_s": 5}}) as h:
        ws = await ws_connect(h)
        await ws.open_stream()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ws.expect_stream_error("connection-timeout", timeout=10)
        assert 3 < loop.time() - started < 7


async def test_routes_added_by_features_get_bodies_and_may_be_async(
        tmp_path: Path, ca: trustme.CA) -> None:
    # The extension point uploads (XEP-0363) use: an async handler with a bounded body.
    async def echo(request: Request, body: bytes, _listener: HTTPListener) -> Response:
        await asyncio.sleep(0.05)  # requests pipelined behind it wait their turn
        return Response(201, (("Content-Type", "text/plain"),), body[::-1])

    async with running_server(tmp_path, ca) as h:
        h.server.http_routes.add("PUT", "/echo", HTTPRoute(echo, max_body_bytes=10))
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port(h))
        writer.write(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc")
        await asyncio.sleep(0.05)
        writer.write(b"de" + b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        first, _, second = data.partition(b"HTTP/1.1 200 OK")
        assert first.startswith(b"HTTP/1.1 201 Created") and first.endswith(b"\r\n\r\nedcba")
        assert b"alt-connections:websocket" in second
        too_big = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n" + b"x" * 11
        assert await status_of(http_port(h), too_big) == 413
