"""WebSocket, server side, sans-I/O: the opening handshake and the framing of RFC 6455, as
RFC 7395 (XMPP over WebSocket) uses them: text messages only, one XML element each.

Strict by design: every frame a conforming client cannot send fails the connection with the
status code RFC 6455 §7.4.1 names (1002 protocol error, 1003 unacceptable data, 1007 invalid
UTF-8, 1009 too big), and no message is assembled beyond ``max_message_bytes``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import enum
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from stockade.core.http import HTTPError, Request, Response
from stockade.core.spec import Spec
from stockade.core.xml import escape_attr

#: RFC 6455 §1.3: appended to Sec-WebSocket-Key before hashing.
ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "xmpp"  # RFC 7395 §3.1, IANA WebSocket Subprotocol Name Registry
VERSION = "13"


# ---------------------------------------------------------------------- handshake (§4.2)


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 item 5.4)."""
    digest = hashlib.sha1((key + ACCEPT_GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def check_handshake(request: Request, origin_allowed: Callable[[str], bool]) -> Response:
    """Validate an opening handshake (RFC 6455 §4.2.1, RFC 7395 §3.2); return the 101.

    ``origin_allowed`` decides on the Origin header when there is one. A request without
    Origin comes from a non-browser client, which could send any Origin it liked: the check
    exists to stop other web pages from using a visitor's browser (RFC 6455 §10.2).

    Raises:
        HTTPError: 400 malformed, 403 origin refused, 405 not GET, 426 not an upgrade or
            another WebSocket version.
    """
    if request.method != "GET":
        raise HTTPError(405, "WebSocket handshakes are GET", [("Allow", "GET")])
    if request.version != "HTTP/1.1":
        raise HTTPError(400, "WebSocket needs HTTP/1.1")
    if "websocket" not in request.tokens("upgrade"):
        # RFC 9110 §15.5.22: 426 names the protocol the client should upgrade to.
        raise HTTPError(426, "this resource is a WebSocket endpoint",
                        [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    if "upgrade" not in request.tokens("connection"):
        raise HTTPError(400, "Connection must include Upgrade")
    if request.count("sec-websocket-version") != 1 or \
            request.header("sec-websocket-version") != VERSION:
        # RFC 6455 §4.4: answer with the versions we speak.
        raise HTTPError(426, "WebSocket version 13 only", [("Sec-WebSocket-Version", VERSION)])
    key = request.header("sec-websocket-key")
    if key is None or not _is_nonce(key):
        raise HTTPError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    if SUBPROTOCOL not in [t for t in request.tokens("sec-websocket-protocol")]:
        # RFC 7395 §3.2: without "xmpp" no XMPP connection is established; we refuse rather
        # than open a WebSocket the client could not use.
        raise HTTPError(400, "the xmpp subprotocol is required")
    origin = request.header("origin")
    if request.count("origin") > 1 or (origin is not None and not origin_allowed(origin)):
        raise HTTPError(403, "origin not allowed")
    return Response(101, (("Upgrade", "websocket"), ("Connection", "Upgrade"),
                          ("Sec-WebSocket-Accept", accept_key(key)),
                          ("Sec-WebSocket-Protocol", SUBPROTOCOL)))


def _is_nonce(key: str) -> bool:
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


def normalize_origin(origin: str) -> str:
    """An origin as compared: scheme and host lower-case, the scheme's default port left out
    (RFC 6454 §6.2 serialization; browsers already send it so)."""
    scheme, sep, rest = origin.strip().partition("://")
    if not sep:
        return origin.strip().lower()  # "null" and other opaque origins
    scheme, rest = scheme.lower(), rest.lower().rstrip("/")
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and rest.endswith(default):
        rest = rest[: -len(default)]
    return f"{scheme}://{rest}"


def origin_policy(allowed: list[str], *, loopback_listener: bool) -> Callable[[str], bool]:
    """The Origin check for one listener, from ``http.allowed_origins``: ``["*"]`` any;
    empty: any on a loopback listener (local development), none elsewhere; else the list."""
    if "*" in allowed or (not allowed and loopback_listener):
        return lambda _origin: True
    accepted = frozenset(normalize_origin(o) for o in allowed)
    return lambda origin: normalize_origin(origin) in accepted


# ---------------------------------------------------------------------- framing (§5)


class Opcode(enum.IntEnum):
    """RFC 6455 §5.2 opcodes; anything else is reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """RFC 6455 §7.4.1 status codes this server sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class WSState(enum.Enum):
    """Where the connection is in the closing handshake (RFC 6455 §7)."""

    OPEN = "open"
    CLOSE_SENT = "close-sent"  # our Close is out; waiting for the peer's
    CLOSED = "closed"  # both Closes exchanged, or failed: close TCP after writing


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete text message, its UTF-8 already checked, as bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The WebSocket is over: ``code`` is the peer's (close handshake) or ours (failure).
    Write what is queued, then close the TCP connection (RFC 6455 §7.1.1)."""

    code: int
    reason: str
    failed: bool  # we failed the connection (RFC 6455 §7.1.7) rather than the peer closing


Event = MessageReceived | ConnectionClosed

_MAX_CONTROL = 125
_VALID_PEER_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})


class _Fail(Exception):  # internal: fail the connection; never leaves this module
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocket:
    """One server-side WebSocket connection after the handshake: frames in, events out,
    frames to write out (``data_to_send()``)."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.state = WSState.OPEN
        self._buffer = bytearray()
        self._message: bytearray | None = None  # a fragmented text message in progress
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._out: list[bytes] = []

    @property
    def mid_message(self) -> bool:
        """Whether a frame or a fragmented message has started and not finished (the shell
        times how long that lasts, as it does for a half-sent stanza)."""
        return bool(self._buffer) or self._message is not None

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return complete messages and the end, if it came."""
        if self.state is WSState.CLOSED:
            return []
        self._buffer += data
        events: list[Event] = []
        try:
            while not self._is_closed() and self._next_frame(events):
                pass
        except _Fail as exc:
            self._fail(exc.code, exc.reason, events)
        return events

    def _is_closed(self) -> bool:
        # A method, not an inline check: frame handlers change the state behind mypy's back.
        return self.state is WSState.CLOSED

    def _next_frame(self, events: list[Event]) -> bool:
        """Decode one frame if it is all there; False if more bytes are needed."""
        buf = self._buffer
        if len(buf) < 2:
            return False
        first, second = buf[0], buf[1]
        fin, rsv, opcode = first & 0x80, first & 0x70, first & 0x0F
        masked, length = second & 0x80, second & 0x7F
        if rsv:
            raise _Fail(CloseCode.PROTOCOL_ERROR, "reserved bits set")  # no extensions
        if opcode not in Opcode._value2member_map_:
            raise _Fail(CloseCode.PROTOCOL_ERROR, "reserved opcode")
        if not masked:
            # RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame that
            # is not masked" (status 1002, §7.4.1).
            raise _Fail(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
        header = 2
        if opcode >= Opcode.CLOSE and (not fin or length > _MAX_CONTROL):
            # §5.5: control frames are at most 125 bytes and never fragmented.
            raise _Fail(CloseCode.PROTOCOL_ERROR, "malformed control frame")
        if length == 126:
            if len(buf) < 4:
                return False
            length, header = struct.unpack_from("!H", buf, 2)[0], 4
            if length < 126:
                raise _Fail(CloseCode.PROTOCOL_ERROR, "length not minimally encoded")
        elif length == 127:
            if len(buf) < 10:
                return False
            length, header = struct.unpack_from("!Q", buf, 2)[0], 10
            if length >> 63 or length <= 0xFFFF:
                raise _Fail(CloseCode.PROTOCOL_ERROR, "length not minimally encoded")
        self._check_size(opcode, length)
        end = header + 4 + length
        if len(buf) < end:
            return False
        mask = bytes(buf[header:header + 4])
        payload = _unmask(bytes(buf[header + 4:end]), mask)
        del buf[:end]
        self._on_frame(Opcode(opcode), bool(fin), payload, events)
        return True

    def _check_size(self, opcode: int, length: int) -> None:
        """Refuse before buffering: a frame announcing more than the limit never waits."""
        if opcode >= Opcode.CLOSE:
            return
        so_far = len(self._message) if self._message is not None else 0
        if opcode == Opcode.CONTINUATION and self._message is None:
            raise _Fail(CloseCode.PROTOCOL_ERROR, "continuation without a message")
        if opcode in (Opcode.TEXT, Opcode.BINARY) and self._message is not None:
            raise _Fail(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
        if opcode == Opcode.BINARY:
            # RFC 7395 §3.3.3: XMPP travels in text messages only.
            raise _Fail(CloseCode.UNSUPPORTED_DATA, "binary messages are not accepted")
        if so_far + length > self.max_message_bytes:
            raise _Fail(CloseCode.MESSAGE_TOO_BIG, "message too big")

    def _on_frame(self, opcode: Opcode, fin: bool, payload: bytes,
                  events: list[Event]) -> None:
        if opcode == Opcode.PING:
            if self.state is WSState.OPEN:
                self._out.append(_frame(Opcode.PONG, payload))  # §5.5.3: same payload
        elif opcode == Opcode.PONG:
            pass  # §5.5.3: an unsolicited pong is allowed and needs no answer
        elif opcode == Opcode.CLOSE:
            self._on_close(payload, events)
        else:
            self._on_data(fin, payload, events)

    def _on_data(self, fin: bool, payload: bytes, events: list[Event]) -> None:
        if self._message is None:
            self._message = bytearray()
            self._utf8.reset()
        self._message += payload
        try:
            # Checked as fragments arrive, so a bad sequence fails early, not at the end.
            self._utf8.decode(payload, final=fin)
        except UnicodeDecodeError:
            raise _Fail(CloseCode.INVALID_DATA, "text is not UTF-8") from None
        if fin:
            message, self._message = bytes(self._message), None
            if self.state is WSState.OPEN:  # §7.1.2: after our Close, data is discarded
                events.append(MessageReceived(message))

    def _on_close(self, payload: bytes, events: list[Event]) -> None:
        code, reason = _parse_close(payload)
        if self.state is WSState.OPEN:
            # §5.5.1: answer with a Close, echoing the status code.
            self._out.append(_close_frame(code, "") if code else _frame(Opcode.CLOSE, b""))
        self.state = WSState.CLOSED
        events.append(ConnectionClosed(code or CloseCode.NORMAL, reason, failed=False))

    def _fail(self, code: CloseCode, reason: str, events: list[Event]) -> None:
        """§7.1.7 Fail the WebSocket Connection: a Close with the code, then TCP closes."""
        if self.state is WSState.OPEN:
            self._out.append(_close_frame(code, reason))
        self.state = WSState.CLOSED
        self._buffer.clear()
        self._message = None
        events.append(ConnectionClosed(code, reason, failed=True))

    # ------------------------------------------------------------------ output
    def send_text(self, text: str) -> None:
        """Queue one text message (one unfragmented, unmasked frame, §5.1)."""
        if self.state is WSState.OPEN:
            self._out.append(_frame(Opcode.TEXT, text.encode("utf-8")))

    def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (the peer's Close then ends it)."""
        if self.state is WSState.OPEN:
            self._out.append(_close_frame(code, reason))
            self.state = WSState.CLOSE_SENT

    def data_to_send(self) -> bytes:
        """Frames queued for the peer."""
        data = b"".join(self._out)
        self._out.clear()
        return data


def _parse_close(payload: bytes) -> tuple[int | None, str]:
    """The status code and reason of a Close frame (§5.5.1, §7.4)."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise _Fail(CloseCode.PROTOCOL_ERROR, "one-byte close payload")
    code = struct.unpack_from("!H", payload)[0]
    # §7.4.2: 1004-1006 and 1015 must never be sent; below 1000 and 1012-2999 are unassigned
    # here; 3000-4999 belong to libraries and applications.
    if code not in _VALID_PEER_CODES and not 3000 <= code <= 4999:
        raise _Fail(CloseCode.PROTOCOL_ERROR, "invalid close code")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise _Fail(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
    return code, reason


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte key (§5.3), as one big-integer operation rather than per byte."""
    n = len(payload)
    if n == 0:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _frame(opcode: Opcode, payload: bytes) -> bytes:
    """A final, unmasked server frame (§5.1: a server MUST NOT mask)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _close_frame(code: int, reason: str) -> bytes:
    encoded = reason.encode("utf-8")[:_MAX_CONTROL - 2]
    # Never cut a multi-byte character in half (the reason must stay UTF-8, §5.5.1).
    encoded = encoded.decode("utf-8", "ignore").encode("utf-8")
    return _frame(Opcode.CLOSE, struct.pack("!H", code) + encoded)


# ---------------------------------------------------------------------- discovery (XEP-0156)

REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket"
NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def host_meta_xrd(websocket_urls: list[str]) -> bytes:
    """/.well-known/host-meta: an XRD document (RFC 6415) linking the WebSocket endpoints."""
    links = "".join(f"  <Link rel='{REL_WEBSOCKET}' href='{escape_attr(url)}'/>\n"
                    for url in websocket_urls)
    return (f"<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='{NS_XRD}'>\n{links}</XRD>\n"
            ).encode()


def host_meta_json(websocket_urls: list[str]) -> bytes:
    """/.well-known/host-meta.json: the same links in JRD form (RFC 6415 appendix A)."""
    links = [{"rel": REL_WEBSOCKET, "href": url} for url in websocket_urls]
    return json.dumps({"links": links}, indent=2).encode("utf-8") + b"\n"


SPECS = (
    Spec("RFC 6455", "The WebSocket Protocol", "RFC 6455",
         notes="server side; no extensions (permessage-deflate)"),
    Spec("RFC 7395", "XMPP Subprotocol for WebSocket", "RFC 7395"),
    Spec("XEP-0156", "Discovering Alternative XMPP Connection Methods", "1.4.0",
         notes="host-meta XRD and JSON; WebSocket links (no BOSH is offered)"),
)
