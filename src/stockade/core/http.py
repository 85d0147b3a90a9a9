"""HTTP/1.1 request heads and responses, sans-I/O (RFC 9110, RFC 9112), for the small set of
routes this server has: WebSocket upgrades (RFC 7395), host-meta (XEP-0156), uploads later.

Deliberately strict: a request head is at most ``max_head_bytes`` with at most ``max_headers``
fields; obsolete line folding, bare LF, whitespace before a colon, control characters, more
than one Host or Content-Length, and Transfer-Encoding (alone or beside Content-Length) are
refused rather than interpreted, because every lenient reading is a way for a proxy in front
of us and this parser to disagree about where a request ends (request smuggling).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-value = *( VCHAR / obs-text / SP / HTAB ); no CR, LF or NUL.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# RFC 9112 §3.2.1 origin-form: absolute-path [ "?" query ]; only what a URI may contain.
_ORIGIN_FORM = re.compile(rb"/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*")
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")

REASONS = {
    101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 411: "Length Required",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    426: "Upgrade Required", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HTTPError(Exception):
    """A request this server refuses: answer ``status`` (with ``headers``) and close."""

    def __init__(self, status: int, detail: str,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """Bounds on one request head."""

    max_head_bytes: int = 8192  # request line + header fields + the empty line
    max_target_bytes: int = 2048  # the request-target alone (414 beyond)
    max_headers: int = 64  # header field lines (431 beyond)


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request head. Header names are lower-case; values are as sent, trimmed."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    content_length: int = 0

    @property
    def path(self) -> str:
        """The target without its query (never percent-decoded: routes match raw paths)."""
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """The value of a header that may appear at most once, or None."""
        values = [v for k, v in self.headers if k == name]
        return values[0] if len(values) == 1 else None

    def count(self, name: str) -> int:
        """How many field lines carry ``name``."""
        return sum(1 for k, _ in self.headers if k == name)

    def tokens(self, name: str) -> list[str]:
        """A comma-separated list header, every line of it, as lower-case elements
        (RFC 9110 §5.6.1), empty elements dropped."""
        out: list[str] = []
        for k, v in self.headers:
            if k == name:
                out.extend(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection carry another request (RFC 9112 §9.3)."""
        return self.version == "HTTP/1.1" and "close" not in self.tokens("connection")


class RequestParser:
    """Collects bytes until a request head is complete.

    ``feed()`` returns the :class:`Request` once its head has arrived; the bytes after the
    head (a body, or WebSocket frames) stay in :attr:`rest` for the caller.
    """

    def __init__(self, limits: HTTPLimits | None = None) -> None:
        self.limits = limits or HTTPLimits()
        self.rest = b""

    def feed(self, data: bytes) -> Request | None:
        """Add bytes; return a request once its head is complete.

        Raises:
            HTTPError: the head breaks a rule or a limit (400, 414, 431, 505).
        """
        self.rest += data
        end = self.rest.find(b"\r\n\r\n")
        if end < 0:
            self._check_incomplete()
            return None
        head, self.rest = self.rest[:end + 2], self.rest[end + 4:]
        if len(head) + 2 > self.limits.max_head_bytes:
            self._check_incomplete(head)
            raise HTTPError(431, "request head too large")
        return self._parse(head)

    def take_rest(self) -> bytes:
        """The bytes received after the last head, handed over (and forgotten here)."""
        rest, self.rest = self.rest, b""
        return rest

    def _check_incomplete(self, buffer: bytes | None = None) -> None:
        buffer = self.rest if buffer is None else buffer
        line_end = buffer.find(b"\r\n")
        line = buffer if line_end < 0 else buffer[:line_end]
        # A request line longer than any allowed target plus method and version: 414, so a
        # client learns that its URI is the problem (RFC 9112 §3).
        if len(line) > self.limits.max_target_bytes + 32:
            raise HTTPError(414, "request target too long")
        if len(buffer) > self.limits.max_head_bytes:
            raise HTTPError(431, "request head too large")

    def _parse(self, head: bytes) -> Request:
        lines = head.split(b"\r\n")[:-1]  # head ends with CRLF
        if any(b"\n" in line or b"\r" in line for line in lines):
            raise HTTPError(400, "bare CR or LF")  # RFC 9112 §2.2: no lone line breaks
        method, target, version = _request_line(lines[0], self.limits)
        fields = lines[1:]
        if len(fields) > self.limits.max_headers:
            raise HTTPError(431, "too many header fields")
        headers = tuple(_field(line) for line in fields)
        request = Request(method, target, version, headers)
        return Request(method, target, version, headers, _body_length(request))


def _request_line(line: bytes, limits: HTTPLimits) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HTTPError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HTTPError(400, "malformed method")
    if len(target) > limits.max_target_bytes:
        raise HTTPError(414, "request target too long")
    if version not in _VERSIONS:
        if re.fullmatch(rb"HTTP/\d\.\d", version):
            raise HTTPError(505, "HTTP/1.1 or HTTP/1.0 only")
        raise HTTPError(400, "malformed HTTP version")
    # Only origin-form ("/path?query"): absolute-form is for proxies, which we are not, and
    # asterisk-form (OPTIONS *) has no route here.
    if not _ORIGIN_FORM.fullmatch(target):
        raise HTTPError(400, "request target must be an absolute path")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


def _field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        # RFC 9112 §5.2: obs-fold; we answer 400 (the RFC's first option) instead of unfolding.
        raise HTTPError(400, "obsolete line folding")
    name, colon, value = line.partition(b":")
    # RFC 9112 §5.1: no whitespace between name and colon; such a request MUST get a 400.
    if not colon or not _TOKEN.fullmatch(name):
        raise HTTPError(400, "malformed header field")
    value = value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise HTTPError(400, "invalid character in a header field")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _body_length(request: Request) -> int:
    """RFC 9112 §6.3, the strict subset: Content-Length or no body at all."""
    if request.version == "HTTP/1.1" and request.count("host") != 1:
        # RFC 9112 §3.2: a request without Host, or with several, MUST get a 400.
        raise HTTPError(400, "exactly one Host header is required")
    if request.count("host") > 1:
        raise HTTPError(400, "more than one Host header")
    lengths = [v for k, v in request.headers if k == "content-length"]
    if request.count("transfer-encoding"):
        if lengths:
            # SECURITY: both framings in one request is the classic smuggling vector
            # (RFC 9112 §6.1 allows treating it as an error; we do).
            raise HTTPError(400, "both Transfer-Encoding and Content-Length")
        codings = request.tokens("transfer-encoding")
        if not codings or codings[-1] != "chunked":
            raise HTTPError(400, "chunked must be the final transfer coding")  # §6.3 item 4
        # Deliberate deviation: chunked uploads are not needed by any route yet; 411 asks
        # the client to send Content-Length instead.
        raise HTTPError(411, "send Content-Length instead of chunked")
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise HTTPError(400, "more than one Content-Length")  # even if they agree
    value = lengths[0]
    if not value.isdigit() or not value.isascii() or len(value) > 15:
        raise HTTPError(400, "invalid Content-Length")
    return int(value)


# ---------------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class Response:
    """A response a route handler returns; :func:`encode_response` turns it into bytes."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def http_date(now: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7) for the Date header; ``now`` is POSIX seconds."""
    return email.utils.formatdate(now, usegmt=True)


def encode_response(response: Response, *, now: float, close: bool,
                    head_only: bool = False, content_length: int | None = None) -> bytes:
    """The bytes of ``response``: status line, Date, the handler's headers, Content-Length
    (except on 101 and 204), ``Connection: close`` if ``close``, then the body.

    ``content_length``: the length of a body the caller sends itself after this head (a
    file sent in chunks); the response's own body is then not included.
    """
    status = response.status
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
             f"Date: {http_date(now)}", "Server: Stockade"]
    for name, value in response.headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError("header injection")  # a bug in a handler, never peer data
        lines.append(f"{name}: {value}")
    if status not in (101, 204):
        length = len(response.body) if content_length is None else content_length
        lines.append(f"Content-Length: {length}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_only or content_length is not None or status in (101, 204):
        return head
    return head + response.body


def error_response(error: HTTPError) -> Response:
    """A short plain-text response for a refused request (no peer bytes echoed back)."""
    body = f"{error.status} {REASONS.get(error.status, 'Error')}\n".encode()
    return Response(error.status, (("Content-Type", "text/plain; charset=utf-8"),
                                   ("Cache-Control", "no-store"), *error.headers), body)


# ---------------------------------------------------------------------- routing

H = TypeVar("H")


@dataclass(slots=True)
class Routes(Generic[H]):
    """A table (method, path) -> handler; what a handler is belongs to the caller (the
    shell keeps coroutines here, tests keep plain values).

    A path ending in ``/*`` is a prefix route: ``/upload/*`` takes every path that starts
    with ``/upload/`` (the handler reads the rest itself). Exact paths win over prefixes,
    and a longer prefix over a shorter one.
    """

    table: dict[tuple[str, str], H] = field(default_factory=dict)
    prefixes: dict[tuple[str, str], H] = field(default_factory=dict)

    def add(self, method: str, path: str, handler: H) -> None:
        """Register a handler.

        Raises:
            ValueError: the (method, path) pair is already taken (two modules cannot share).
        """
        table, key = self.table, path
        if path.endswith("/*"):
            table, key = self.prefixes, path[:-1]
        if (method, key) in table:
            raise ValueError(f"route {method} {path} registered twice")
        table[(method, key)] = handler

    def values(self) -> list[H]:
        """Every handler, exact routes first."""
        return [*self.table.values(), *self.prefixes.values()]

    def resolve(self, request: Request) -> H:
        """The handler for ``request``.

        Raises:
            HTTPError: 404 for an unknown path, 405 (with Allow) for a known path and
                another method.
        """
        handler = self._lookup(request.method, request.path)
        if handler is None and request.method == "HEAD":
            # RFC 9110 §9.3.2: HEAD is GET without the body (encode_response(head_only)).
            handler = self._lookup("GET", request.path)
        if handler is not None:
            return handler
        allowed = {m for m, p in self.table if p == request.path}
        if not allowed:
            allowed = {m for m, p in self.prefixes if request.path.startswith(p)}
        if "GET" in allowed:
            allowed.add("HEAD")
        if allowed:
            raise HTTPError(405, "method not allowed", [("Allow", ", ".join(sorted(allowed)))])
        raise HTTPError(404, "no such resource")

    def _lookup(self, method: str, path: str) -> H | None:
        if (method, path) in self.table:
            return self.table[(method, path)]
        matches = [p for m, p in self.prefixes if m == method and path.startswith(p)]
        if not matches:
            return None
        return self.prefixes[(method, max(matches, key=len))]
