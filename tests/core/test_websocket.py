"""RFC 6455 server side (core.websocket): handshake checks, the strict frame decoder, closing,
and XEP-0156 host-meta documents. Client frames come from tests/wsframes.py, built apart."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET

import pytest

from stockade.core.http import HTTPError, Request, RequestParser
from stockade.core.websocket import (
    ConnectionClosed,
    MessageReceived,
    WebSocket,
    WSState,
    accept_key,
    check_handshake,
    host_meta_json,
    host_meta_xrd,
    normalize_origin,
    origin_policy,
)
from wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    client_frame,
    close,
    read_server_frames,
    text,
)

LIMIT = 1000
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3


def handshake(*extra: str, drop: tuple[str, ...] = ()) -> Request:
    lines = {"host": "Host: localhost", "upgrade": "Upgrade: websocket",
             "connection": "Connection: keep-alive, Upgrade",
             "key": f"Sec-WebSocket-Key: {KEY}", "version": "Sec-WebSocket-Version: 13",
             "protocol": "Sec-WebSocket-Protocol: xmpp"}
    head = "GET /xmpp-websocket HTTP/1.1\r\n" + "".join(
        f"{v}\r\n" for k, v in lines.items() if k not in drop) + "".join(
        f"{e}\r\n" for e in extra) + "\r\n"
    request = RequestParser().feed(head.encode())
    assert request is not None
    return request


def refusal(request: Request, allow: bool = True) -> HTTPError:
    with pytest.raises(HTTPError) as info:
        check_handshake(request, lambda _origin: allow)
    return info.value


# ---------------------------------------------------------------------- handshake


def test_accept_key_matches_the_rfc_6455_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_handshake_gets_101_with_accept_and_xmpp() -> None:
    response = check_handshake(handshake("Origin: http://example.com"), lambda _o: True)
    headers = dict(response.headers)
    assert response.status == 101
    assert headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["Sec-WebSocket-Protocol"] == "xmpp"
    assert headers["Upgrade"] == "websocket"


def test_xmpp_may_be_one_of_several_offered_subprotocols() -> None:
    request = handshake("Sec-WebSocket-Protocol: chat, XMPP", drop=("protocol",))
    assert check_handshake(request, lambda _o: True).status == 101


@pytest.mark.parametrize(("drop", "extra", "status"), [
    (("upgrade",), (), 426),
    (("connection",), (), 400),
    (("key",), (), 400),
    (("key",), ("Sec-WebSocket-Key: c2hvcnQ=",), 400),  # 5 bytes
    (("key",), ("Sec-WebSocket-Key: !!!notbase64!!!!!!!!==",), 400),
    (("protocol",), (), 400),  # RFC 7395 §3.2
    (("protocol",), ("Sec-WebSocket-Protocol: chat",), 400),
    (("version",), (), 426),
    (("version",), ("Sec-WebSocket-Version: 8",), 426),
    ((), ("Origin: http://a", "Origin: http://b"), 403),
])
def test_handshake_refusals(drop: tuple[str, ...], extra: tuple[str, ...],
                            status: int) -> None:
    assert refusal(handshake(*extra, drop=drop)).status == status


def test_wrong_version_names_13() -> None:
    error = refusal(handshake("Sec-WebSocket-Version: 8", drop=("version",)))
    assert ("Sec-WebSocket-Version", "13") in error.headers


def test_origin_refused_is_403_and_missing_origin_is_accepted() -> None:
    assert refusal(handshake("Origin: https://evil.example"), allow=False).status == 403
    # No Origin: not a browser; the check protects browsers' users only.
    assert check_handshake(handshake(), lambda _o: False).status == 101


def test_post_and_http_1_0_are_refused() -> None:
    request = handshake()
    post = Request("POST", request.target, request.version, request.headers)
    assert refusal(post).status == 405
    old = Request("GET", request.target, "HTTP/1.0", request.headers)
    assert refusal(old).status == 400


def test_origin_policy() -> None:
    listed = origin_policy(["https://Chat.Example:443", "http://localhost:8080"],
                           loopback_listener=False)
    assert listed("https://chat.example")
    assert listed("http://localhost:8080")
    assert not listed("http://localhost:8081")
    assert not listed("null")
    assert origin_policy([], loopback_listener=True)("https://anything.example")
    assert not origin_policy([], loopback_listener=False)("https://anything.example")
    assert origin_policy(["*"], loopback_listener=False)("null")
    assert normalize_origin("HTTP://Example.ORG:80/") == "http://example.org"


# ---------------------------------------------------------------------- frames


def feed(ws: WebSocket, *frames: bytes) -> list[object]:
    return list(ws.receive_data(b"".join(frames)))


def sent(ws: WebSocket) -> list[tuple[int, bytes]]:
    frames, rest = read_server_frames(ws.data_to_send())
    assert rest == b""
    return [(f.opcode, f.payload) for f in frames]


def assert_failed(ws: WebSocket, events: list[object], code: int) -> None:
    assert events[-1] == ConnectionClosed(code, events[-1].reason, failed=True)  # type: ignore[attr-defined]
    frames = sent(ws)
    assert frames[-1][0] == CLOSE
    assert struct.unpack(">H", frames[-1][1][:2])[0] == code
    assert ws.state is WSState.CLOSED
    assert ws.receive_data(text("<more/>")) == []  # nothing after a failure


def test_text_message() -> None:
    ws = WebSocket(LIMIT)
    assert feed(ws, text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")) == [
        MessageReceived(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")]


def test_frames_split_anywhere_and_several_in_one_read() -> None:
    data = text("<a/>") + text("é" * 100) + text("x" * 300)  # 7-bit and 16-bit lengths
    for cut in range(len(data)):
        ws = WebSocket(LIMIT)
        events = ws.receive_data(data[:cut]) + ws.receive_data(data[cut:])
        assert events == [MessageReceived(b"<a/>"), MessageReceived("é".encode() * 100),
                          MessageReceived(b"x" * 300)], cut


def test_64_bit_length() -> None:
    ws = WebSocket(200_000)
    assert feed(ws, text(b"y" * 70_000)) == [MessageReceived(b"y" * 70_000)]


def test_fragmented_message_is_reassembled_with_control_frames_between() -> None:
    ws = WebSocket(LIMIT)
    events = feed(ws, client_frame(TEXT, b"<message><bo", fin=False),
                  client_frame(PING, b"p1"),
                  client_frame(CONTINUATION, "dy>\xc3".encode("latin-1"), fin=False),
                  client_frame(CONTINUATION, b"\xa9</body></message>"))
    assert events == [MessageReceived("<message><body>é</body></message>".encode())]
    assert sent(ws) == [(PONG, b"p1")]


def test_ping_gets_pong_with_the_same_payload_and_pong_is_ignored() -> None:
    ws = WebSocket(LIMIT)
    assert feed(ws, client_frame(PING, b"hello"), client_frame(PONG, b"x")) == []
    assert sent(ws) == [(PONG, b"hello")]


@pytest.mark.parametrize(("frame", "code"), [
    (text("<a/>", masked=False), 1002),  # RFC 6455 §5.1
    (text("<a/>", rsv=4), 1002),
    (text("<a/>", rsv=1), 1002),
    (client_frame(0x3, b"x"), 1002),  # reserved data opcode
    (client_frame(0xB, b"x"), 1002),  # reserved control opcode
    (client_frame(CONTINUATION, b"orphan"), 1002),
    (client_frame(PING, b"x" * 126), 1002),  # control frame > 125
    (client_frame(PING, b"x", fin=False), 1002),  # fragmented control frame
    (text("<a/>", length_bytes=2), 1002),  # non-minimal length
    (text("x" * 200, length_bytes=8), 1002),
    (client_frame(BINARY, b"<a/>"), 1003),  # RFC 7395: text only
    (text(b"\xff\xfe"), 1007),
    (text(b"<a>\xed\xa0\x80</a>"), 1007),  # an encoded surrogate
    (text(b"x" * (LIMIT + 1)), 1009),
    (client_frame(CLOSE, b"\x03"), 1002),  # one-byte close payload
    (close(1005), 1002),  # must never be sent
    (close(999), 1002),
    (close(1000, b"\xff"), 1007),
])
def test_bad_frames_fail_the_connection(frame: bytes, code: int) -> None:
    ws = WebSocket(LIMIT)
    assert_failed(ws, feed(ws, frame), code)


def test_oversize_is_refused_from_the_header_alone() -> None:
    ws = WebSocket(LIMIT)
    header_only = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 2**40) + b"mask"
    assert_failed(ws, feed(ws, header_only), 1009)


def test_length_with_top_bit_set_is_a_protocol_error() -> None:
    ws = WebSocket(LIMIT)
    assert_failed(ws, feed(ws, bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 2**63)), 1002)


def test_fragments_adding_up_beyond_the_limit_are_1009() -> None:
    ws = WebSocket(LIMIT)
    events = feed(ws, client_frame(TEXT, b"x" * 600, fin=False),
                  client_frame(CONTINUATION, b"x" * 600))
    assert_failed(ws, events, 1009)


def test_new_data_frame_inside_a_fragmented_message_is_1002() -> None:
    ws = WebSocket(LIMIT)
    assert_failed(ws, feed(ws, client_frame(TEXT, b"<a", fin=False), text("<b/>")), 1002)


def test_invalid_utf8_is_found_before_the_message_ends() -> None:
    ws = WebSocket(LIMIT)
    assert_failed(ws, feed(ws, client_frame(TEXT, b"ok \xc0\xaf", fin=False)), 1007)


def test_utf8_sequence_cut_at_the_end_of_the_message_is_1007() -> None:
    ws = WebSocket(LIMIT)
    assert_failed(ws, feed(ws, text(b"<a>\xc3</a>"[:4])), 1007)


def test_messages_before_a_failure_are_still_delivered() -> None:
    ws = WebSocket(LIMIT)
    events = feed(ws, text("<a/>"), text("<b/>", masked=False))
    assert events[0] == MessageReceived(b"<a/>")
    assert_failed(ws, events, 1002)


# ---------------------------------------------------------------------- closing


def test_peer_close_is_echoed_and_ends_the_connection() -> None:
    ws = WebSocket(LIMIT)
    assert feed(ws, close(1001, b"bye")) == [ConnectionClosed(1001, "bye", failed=False)]
    assert sent(ws) == [(CLOSE, struct.pack(">H", 1001))]
    assert ws.state is WSState.CLOSED


def test_empty_close_is_answered_with_an_empty_close() -> None:
    ws = WebSocket(LIMIT)
    assert feed(ws, close(None)) == [ConnectionClosed(1000, "", failed=False)]
    assert sent(ws) == [(CLOSE, b"")]


def test_our_close_then_theirs() -> None:
    ws = WebSocket(LIMIT)
    ws.send_text("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    ws.close()
    assert ws.state is WSState.CLOSE_SENT
    ws.send_text("<late/>")  # nothing after our Close
    assert sent(ws) == [(TEXT, b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
                        (CLOSE, struct.pack(">H", 1000))]
    # Data after our Close is discarded; their Close finishes, without a second Close.
    assert feed(ws, text("<ignored/>"), client_frame(PING, b"p"), close(1000)) == [
        ConnectionClosed(1000, "", failed=False)]
    assert sent(ws) == []


def test_close_reason_is_cut_to_fit_a_control_frame_on_a_character_boundary() -> None:
    ws = WebSocket(LIMIT)
    ws.close(1008, "é" * 100)
    ((opcode, payload),) = sent(ws)
    assert opcode == CLOSE and len(payload) <= 125
    payload[2:].decode("utf-8")


def test_server_frames_use_every_length_form() -> None:
    ws = WebSocket(LIMIT)
    for n in (0, 125, 126, 65535, 65536):
        ws.send_text("z" * n)
    assert [len(p) for _, p in sent(ws)] == [0, 125, 126, 65535, 65536]


# ---------------------------------------------------------------------- XEP-0156


def test_host_meta_xrd() -> None:
    root = ET.fromstring(host_meta_xrd(["wss://example.org/xmpp-websocket?a=1&b=2"]))
    assert root.tag == "{http://docs.oasis-open.org/ns/xri/xrd-1.0}XRD"
    (link,) = root
    assert link.get("rel") == "urn:xmpp:alt-connections:websocket"
    assert link.get("href") == "wss://example.org/xmpp-websocket?a=1&b=2"


def test_host_meta_json() -> None:
    assert json.loads(host_meta_json(["ws://127.0.0.1:5280/xmpp-websocket"])) == {
        "links": [{"rel": "urn:xmpp:alt-connections:websocket",
                   "href": "ws://127.0.0.1:5280/xmpp-websocket"}]}
