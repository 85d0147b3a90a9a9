"""HTTP listener configuration and the built-in routes: XEP-0156 host-meta documents.

The protocol that serves them (and upgrades to WebSocket) is ``io.websocket``. A route is a
handler in a ``core.http.Routes`` table; another feature (XEP-0363 uploads) adds its own.
Large bodies need not pass through memory: a :class:`StreamingHandler` takes a request body
chunk by chunk, and a :class:`FileResponse` sends a file as fast as the client reads it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Protocol, runtime_checkable

from stockade.core.http import Request, Response, Routes
from stockade.core.websocket import host_meta_json, host_meta_xrd, origin_policy


@dataclass(frozen=True, slots=True)
class FileResponse:
    """A response whose body is an open file of ``length`` bytes, sent in chunks while the
    client keeps reading (never held in memory whole). The connection closes ``file``."""

    status: int
    headers: tuple[tuple[str, str], ...]
    file: IO[bytes]
    length: int


#: What a handler answers: a response in memory or a file.
AnyResponse = Response | FileResponse

#: A route handler: the request, its body (at most the route's ``max_body_bytes``) and the
#: listener it came in on; it returns a response, or a coroutine that makes one.
Handler = Callable[[Request, bytes, "HTTPListener"], AnyResponse | Awaitable[AnyResponse]]


class BodySink(Protocol):
    """Where a streamed request body goes (see :class:`StreamingHandler`)."""

    def write(self, data: bytes) -> None:
        """The next bytes of the body; never more than its Content-Length in all."""

    def finish(self) -> Awaitable[Response]:
        """The whole body has arrived: make the response."""

    def abort(self) -> None:
        """The body will not arrive whole (the connection went, the server stops): undo."""


@runtime_checkable
class StreamingHandler(Protocol):
    """A handler that takes request bodies as they arrive rather than whole in memory.

    Requests without a body are called like any :data:`Handler`.
    """

    def __call__(self, request: Request, body: bytes,
                 listener: HTTPListener) -> AnyResponse | Awaitable[AnyResponse]:
        """Answer a request that has no body."""

    def open_body(self, request: Request, listener: HTTPListener) -> BodySink:
        """The head of a request with a body was read: where its bytes go.

        Raises:
            HTTPError: refused before a byte of the body is read.
        """


@runtime_checkable
class ListenerObserver(Protocol):
    """A handler that wants to know every listener its routes are served on (to build
    URLs pointing at them)."""

    def listener_bound(self, listener: HTTPListener) -> None:
        """``listener`` is bound (its port is known) and about to serve."""


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    """A handler and the largest request body it accepts (413 beyond)."""

    handler: Handler
    max_body_bytes: int = 0


@dataclass(slots=True)
class HTTPListener:
    """One listening address and what follows from it (filled in once it is bound)."""

    tls: bool
    websocket_path: str
    allowed_origins: list[str]
    public_url: str  # "" = derive from the listener
    domain: str  # the hosted domain: the name the TLS certificate is for
    routes: Routes[HTTPRoute] = field(default_factory=Routes)
    host: str = ""  # the bound address
    port: int = 0
    is_loopback: bool = False

    def bound(self, sockname: tuple[object, ...]) -> None:
        """Record the address the socket really got (port 0 becomes the ephemeral port)."""
        self.host, self.port = str(sockname[0]), int(str(sockname[1]))
        self.is_loopback = self.is_loopback_address(sockname)
        for route in self.routes.values():
            if isinstance(route.handler, ListenerObserver):
                route.handler.listener_bound(self)

    @staticmethod
    def is_loopback_address(sockname: tuple[object, ...]) -> bool:
        """Whether a socket address is on the loopback interface."""
        return ipaddress.ip_address(str(sockname[0])).is_loopback

    def origin_allowed(self, origin: str) -> bool:
        """The WebSocket Origin check for this listener (``http.allowed_origins``)."""
        return origin_policy(self.allowed_origins, loopback_listener=self.is_loopback)(origin)

    @property
    def websocket_url(self) -> str:
        """The URL host-meta advertises for the WebSocket endpoint.

        SECURITY: built from configuration (http.public_url) or from the listener itself,
        never from the request's Host header: anyone can send any Host, and a host-meta
        naming an attacker's server (cached by a proxy, or shown to a victim's browser)
        would send clients and their passwords there.
        """
        if self.public_url:
            scheme, _, rest = self.public_url.partition("://")
            ws_scheme = "wss" if scheme == "https" else "ws"
            return f"{ws_scheme}://{rest.rstrip('/')}{self.websocket_path}"
        if self.tls:
            # The certificate names the domain, not the address: the only name a client can
            # verify.
            return f"wss://{self.domain}:{self.port}{self.websocket_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.websocket_path}"

    @property
    def base_url(self) -> str:
        """``scheme://host:port`` (no trailing slash) of links to this listener's routes
        (XEP-0363 upload URLs): http.public_url, else the listener itself; never the Host
        header, for the reason given at :attr:`websocket_url`."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.tls:
            return f"https://{self.domain}:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


# XEP-0156 §3: host-meta is fetched by web clients on other origins, so it says "*".
_CORS = ("Access-Control-Allow-Origin", "*")


def host_meta(_request: Request, _body: bytes, listener: HTTPListener) -> Response:
    """GET /.well-known/host-meta (XEP-0156 §3, RFC 6415 XRD)."""
    return Response(200, (("Content-Type", "application/xrd+xml; charset=utf-8"), _CORS),
                    host_meta_xrd([listener.websocket_url]))


def host_meta_json_route(_request: Request, _body: bytes, listener: HTTPListener) -> Response:
    """GET /.well-known/host-meta.json (XEP-0156 §3, the JSON form)."""
    return Response(200, (("Content-Type", "application/json"), _CORS),
                    host_meta_json([listener.websocket_url]))


def builtin_routes() -> Routes[HTTPRoute]:
    """The routes every HTTP listener serves (the WebSocket path is handled before them)."""
    routes: Routes[HTTPRoute] = Routes()
    routes.add("GET", "/.well-known/host-meta", HTTPRoute(host_meta))
    routes.add("GET", "/.well-known/host-meta.json", HTTPRoute(host_meta_json_route))
    return routes
