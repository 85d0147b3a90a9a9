"""Test support: send a hand-built ClientHello and return the server's first TLS answer.

Uses ``stockade.core.tls.clienthello`` over a real socket, optionally after just enough
XMPP (RFC 6120 §5.4.2) to reach STARTTLS, so tests can check which protocol versions and
cipher suites a server accepts, including ones this machine's OpenSSL cannot offer.

Example::

    hello = build_client_hello(
        version=TLSVersion.TLS1_0, cipher_suites=[0xC013], server_name="example.org"
    )
    answer = probe("127.0.0.1", port, hello, starttls_xmpp_domain="example.org")
    assert isinstance(answer, Alert)
"""

from __future__ import annotations

import re
import socket
import time

from stockade.core.tls.clienthello import ServerResponse, TLSDecodeError, parse_server_response

__all__ = ["XMPPNegotiationError", "probe"]

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
_MAX_XMPP_BYTES = 64 * 1024  # pre-TLS XMPP the helper will buffer before giving up
_RECV_BYTES = 4096
_FEATURES_END = re.compile(rb"</stream:features>|<stream:features\s*/>")
_PROCEED = re.compile(rb"<proceed\b[^>]*>")
_REFUSAL = re.compile(rb"<failure\b|<stream:error\b|</stream:stream>")


class XMPPNegotiationError(Exception):
    """The server did not lead to ``<proceed/>`` (RFC 6120 §5.4.2.3)."""


def probe(
    host: str,
    port: int,
    hello: bytes,
    *,
    starttls_xmpp_domain: str | None = None,
    timeout: float = 5.0,
) -> ServerResponse | None:
    """Connect, optionally negotiate XMPP STARTTLS, send ``hello``, return the first answer.

    Args:
        host: address to connect to.
        port: TCP port.
        hello: bytes from ``build_client_hello``.
        starttls_xmpp_domain: if set, open a c2s stream to this domain and send
            ``<starttls/>`` first (RFC 6120 §5.4.2); None for direct TLS.
        timeout: overall deadline in seconds for the whole exchange.

    Returns:
        The ServerHello or Alert, or None if the server closed (or reset) the connection
        without sending a byte.

    Raises:
        XMPPNegotiationError: the XMPP server refused or skipped STARTTLS.
        TLSDecodeError: the answer is not TLS, or the server closed mid-record.
        TimeoutError: the deadline passed.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        early = b""
        if starttls_xmpp_domain is not None:
            early = _negotiate_starttls(sock, starttls_xmpp_domain, deadline)
        sock.sendall(hello)
        return _read_server_response(sock, early, deadline)


def _stream_header(domain: str) -> bytes:
    """The initial stream header of RFC 6120 §4.7 (c2s, version 1.0)."""
    return (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' "
        f"to='{domain}' version='1.0'>"
    ).encode()


def _negotiate_starttls(sock: socket.socket, domain: str, deadline: float) -> bytes:
    """Run RFC 6120 §5.4.2 up to ``<proceed/>``; return any bytes read past it."""
    sock.sendall(_stream_header(domain))
    features, buffer = _recv_until(sock, b"", _FEATURES_END, deadline)
    if b"<starttls" not in features:
        raise XMPPNegotiationError(f"STARTTLS not offered: {features[-512:]!r}")
    sock.sendall(f"<starttls xmlns='{NS_TLS}'/>".encode())
    _, buffer = _recv_until(sock, buffer, _PROCEED, deadline)
    return buffer


def _recv_until(
    sock: socket.socket, buffer: bytes, marker: re.Pattern[bytes], deadline: float
) -> tuple[bytes, bytes]:
    """Read until ``marker`` matches; return (bytes up to its end, bytes after it)."""
    while True:
        match = marker.search(buffer)
        if match is not None:
            return buffer[: match.end()], buffer[match.end() :]
        if _REFUSAL.search(buffer):
            raise XMPPNegotiationError(f"server refused: {buffer[-512:]!r}")
        buffer = _recv_more(sock, buffer, deadline)


def _recv_more(sock: socket.socket, buffer: bytes, deadline: float) -> bytes:
    if len(buffer) > _MAX_XMPP_BYTES:
        raise XMPPNegotiationError("no STARTTLS answer within 64 KiB")
    chunk = _recv(sock, deadline)
    if not chunk:
        raise XMPPNegotiationError(f"server closed during XMPP negotiation: {buffer[-512:]!r}")
    return buffer + chunk


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("probe deadline passed")
    sock.settimeout(remaining)
    try:
        return sock.recv(_RECV_BYTES)
    except ConnectionResetError:
        return b""  # servers that refuse often reset instead of closing cleanly


def _read_server_response(
    sock: socket.socket, buffer: bytes, deadline: float
) -> ServerResponse | None:
    """Read until the first flight parses; parse_server_response bounds what is kept."""
    while True:
        if buffer:
            answer = parse_server_response(buffer)
            if answer is not None:
                return answer
        chunk = _recv(sock, deadline)
        if not chunk:
            if buffer:
                raise TLSDecodeError(f"connection closed inside a record: {buffer[:64]!r}")
            return None
        buffer += chunk
