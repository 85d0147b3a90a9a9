"""HTTP listener connections: a few HTTP routes, then XMPP over WebSocket (RFC 7395).

A connection starts as HTTP/1.1 (host-meta and other routes, kept alive for a short idle
time; bodies of streaming routes go to their sink as they arrive, file responses go out as
the client reads them); a valid upgrade on the WebSocket path turns it into a
:class:`C2SConnection` in framed mode: every complete WebSocket text message goes to the
stream core as one element, and every message the core queues goes out as one text frame.
TLS (wss) is the memory-BIO layer of C2SConnection; everything XMPP (SASL rules, limits,
timeouts, routing) is the same code as for TCP clients.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from stockade.core.errors import StreamErrorCondition
from stockade.core.http import (
    HTTPError,
    Request,
    RequestParser,
    Response,
    encode_response,
    error_response,
)
from stockade.core.stream.c2s import C2SPolicy
from stockade.core.websocket import (
    CloseCode,
    ConnectionClosed,
    MessageReceived,
    WebSocket,
    WSState,
    check_handshake,
)
from stockade.io.c2s import C2SConnection
from stockade.io.http import (
    AnyResponse,
    BodySink,
    FileResponse,
    HTTPListener,
    HTTPRoute,
    StreamingHandler,
)

if TYPE_CHECKING:
    from stockade.server.server import Server

log = logging.getLogger("stockade.http")

_MAX_REQUESTS = 100  # per kept-alive connection
_LINGER_S = 2.0  # after our last bytes, how long we read (and drop) before closing
_FRAME_MARGIN = 4096  # WebSocket messages may exceed the stanza limit by the framing only
_FILE_CHUNK = 64 * 1024  # bytes of a file response read and written at a time


class WebSocketConnection(C2SConnection):
    """One connection to an HTTP listener (plain on loopback, or TLS)."""

    def __init__(self, server: Server, policy: C2SPolicy, ssl_context: ssl.SSLContext,
                 listener: HTTPListener) -> None:
        # SECURITY: plain HTTP counts as a secure transport (SASL allowed) only on a
        # loopback listener (config refuses others; checked again here on the real address).
        super().__init__(server, policy, ssl_context, direct_tls=listener.tls, framed=True,
                         trusted_plain=not listener.tls and listener.is_loopback)
        self.listener = listener
        self.ws: WebSocket | None = None
        self._parser = RequestParser()
        self._http_in = bytearray()  # bytes after the last request head (a body, the next)
        self._request: tuple[Request, HTTPRoute] | None = None  # head read, body awaited
        self._sink: BodySink | None = None  # where the awaited body goes, if streamed
        self._body_left = 0  # bytes of the streamed body still to come
        self._writable = asyncio.Event()  # cleared while the transport's buffer is full
        self._writable.set()
        self._http_out: list[bytes] = []
        self._http_busy = False  # a handler is running; later requests wait
        self._requests = 0
        self._http_timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._peer_eof = False
        self._max_message = server.config["c2s"]["max_stanza_bytes"] + _FRAME_MARGIN

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start as HTTP, with the idle timer."""
        super().connection_made(transport)
        if not self._closing:  # not refused (connection limits)
            self._arm_http_timer()

    def data_received(self, data: bytes) -> None:
        """After our last bytes, input is read and dropped (see :meth:`_close_transport`)."""
        if not self._lingering:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        """The peer is done: no lingering needed."""
        self._peer_eof = True
        if self._lingering and self.transport is not None:
            self.transport.close()
            return True
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the HTTP timer too; a body that was arriving will not be complete."""
        if self._http_timer is not None:
            self._http_timer.cancel()
        self._abort_sink()
        self._writable.set()  # a file being sent notices the connection is gone
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """A file response waits too."""
        super().pause_writing()
        self._writable.clear()

    def resume_writing(self) -> None:
        """A file response goes on."""
        super().resume_writing()
        self._writable.set()

    @property
    def is_open(self) -> bool:
        """Nothing more is written once the closing bytes are out."""
        return super().is_open and not self._lingering and self.ws is not None

    def terminate(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        """Before the upgrade only shutdown terminates a connection: close it at once, as
        the event loop may stop before a lingering close would end."""
        super().terminate(condition, text)
        if self.ws is None and self.transport is not None:
            self._abort_sink()
            self.transport.close()

    # ------------------------------------------------------------------ C2SConnection hooks
    def _refuse_connection(self) -> None:
        # No XMPP stream exists yet: over the per-IP limit, a plain HTTP client gets a 503
        # (over TLS nothing can be written before the handshake).
        if not self.listener.tls and self.transport is not None:
            self.transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")

    def _is_mid_element(self) -> bool:
        # A half-received frame stalls a connection just as a half-sent stanza does.
        ws = self.ws
        return self.stream.mid_element or (ws is not None and ws.mid_message)

    def _receive_plaintext(self, data: bytes) -> None:
        if self.ws is not None:
            self._receive_frames(self.ws, data)
        else:
            self._receive_http(data)

    def _take_output(self) -> bytes:
        out = b"".join(self._http_out)
        self._http_out.clear()
        frames = self.stream.take_frames()
        ws = self.ws
        if ws is None:
            # Before the upgrade there is no XMPP stream to write to (a shutdown or timeout
            # closing an HTTP connection makes the core queue a stream error: dropped).
            return out
        for frame in frames:
            ws.send_text(frame)
        return out + ws.data_to_send()

    def _write_raw(self, data: bytes) -> None:
        if not self._lingering:
            super()._write_raw(data)

    def _auth_timeout(self) -> None:
        if self.ws is not None:  # HTTP has its own (shorter) timer; see _upgrade()
            super()._auth_timeout()

    def _close_transport(self, *, stop_processing: bool = True) -> None:
        """Close the WebSocket (a Close frame), then the TCP connection, lingering.

        Closing a socket with unread input makes the kernel send RST, and a client may
        then lose the last bytes we sent it (a stream error, the Close frame, an HTTP error
        response). So we send our last bytes, half-close, and read and drop what still
        comes until the peer closes or ``_LINGER_S`` passes.
        """
        if stop_processing:
            self._closing = True
        transport = self.transport
        if transport is None or transport.is_closing() or self._lingering:
            return
        self._flush()  # what the stream queued (its error, <close/>) goes before our Close
        if self.ws is not None and self.ws.state is WSState.OPEN:
            self.ws.close(CloseCode.NORMAL)
            self._flush()
        if self._tls is not None:
            self._write_raw(self._tls.close())
        if self._peer_eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._lingering = True
        asyncio.get_running_loop().call_later(_LINGER_S, transport.close)

    # ------------------------------------------------------------------ WebSocket
    def _receive_frames(self, ws: WebSocket, data: bytes) -> None:
        for event in ws.receive_data(data):
            if isinstance(event, MessageReceived):
                if not self._closing:
                    self._handle(self.stream.receive_data(event.data))
            elif isinstance(event, ConnectionClosed):
                self._on_ws_closed(event)
        self._flush()  # pongs, the echoed Close

    def _on_ws_closed(self, event: ConnectionClosed) -> None:
        if event.failed:
            log.info("websocket failed", extra={"peer": self.peer, "code": event.code,
                                                "reason": event.reason})
            self._close_transport()
        else:
            # Like a TCP close: what was read is still processed (C2SConnection).
            self._close_transport(stop_processing=False)

    def _upgrade(self, request: Request) -> None:
        response = check_handshake(request, self.listener.origin_allowed)
        self._respond(response, request, close=False)
        self.ws = WebSocket(self._max_message)
        if self._http_timer is not None:
            self._http_timer.cancel()
        # The XMPP authentication timeout starts now, as on a new TCP connection.
        if self._timer is not None:
            self._timer.cancel()
        timeout = self.server.config["c2s"]["auth_timeout_s"]
        self._timer = asyncio.get_running_loop().call_later(timeout, self._auth_timeout)
        log.debug("websocket opened", extra={"peer": self.peer})
        rest = bytes(self._http_in)
        self._http_in.clear()
        if rest:
            self._receive_frames(self.ws, rest)

    # ------------------------------------------------------------------ HTTP
    def _receive_http(self, data: bytes) -> None:
        if self._request is not None:
            self._arm_http_timer()  # a body is arriving: progress keeps it alive
        self._http_in += data
        try:
            self._serve_requests()
        except HTTPError as exc:
            self._abort_sink()
            self._refuse(exc)

    def _serve_requests(self) -> None:
        """Answer every request that is complete, in order, one handler at a time."""
        while self.ws is None and not self._http_busy and not self._closing:
            if self._request is None:
                request = self._parser.feed(bytes(self._http_in))
                self._http_in = bytearray(self._parser.take_rest())
                if request is None:
                    return
                if request.path == self.listener.websocket_path:
                    if request.content_length:
                        raise HTTPError(400, "a handshake has no body")
                    self._upgrade(request)
                    return
                route = self.listener.routes.resolve(request)
                if request.content_length > route.max_body_bytes:
                    raise HTTPError(413, "request body too large")
                if request.content_length and isinstance(route.handler, StreamingHandler):
                    self._sink = self._open_sink(route.handler, request)
                    self._body_left = request.content_length
                self._request = (request, route)
                self._continue(request)
            request, route = self._request
            if self._sink is not None:
                if not self._stream_body(self._sink):
                    return
                sink, self._sink, self._request = self._sink, None, None
                self._serve_one(request, sink.finish)
                continue
            if len(self._http_in) < request.content_length:
                return
            body = bytes(self._http_in[:request.content_length])
            del self._http_in[:request.content_length]
            self._request = None
            self._serve_one(request, functools.partial(route.handler, request, body,
                                                      self.listener))

    def _continue(self, request: Request) -> None:
        """RFC 9110 §10.1.1: a client that sent ``Expect: 100-continue`` waits for this
        interim response (or a final one) before its body; the head passed every check."""
        if request.content_length and request.version == "HTTP/1.1" and \
                "100-continue" in request.tokens("expect") and not self._http_in:
            self._http_out.append(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._flush()

    def _open_sink(self, handler: StreamingHandler, request: Request) -> BodySink:
        try:
            return handler.open_body(request, self.listener)
        except HTTPError:
            raise
        except Exception:
            log.exception("HTTP handler failed", extra={"peer": self.peer})
            raise HTTPError(500, "internal error") from None

    def _stream_body(self, sink: BodySink) -> bool:
        """Hand what has arrived of the body to its sink; True once all of it has."""
        take = min(len(self._http_in), self._body_left)
        if take:
            chunk = bytes(self._http_in[:take])
            del self._http_in[:take]
            self._body_left -= take
            try:
                sink.write(chunk)
            except HTTPError:
                raise
            except Exception:
                log.exception("HTTP body sink failed", extra={"peer": self.peer})
                raise HTTPError(500, "internal error") from None
        return self._body_left == 0

    def _abort_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        self._request = None
        try:
            sink.abort()
        except Exception:
            log.exception("HTTP body sink abort failed", extra={"peer": self.peer})

    def _serve_one(self, request: Request,
                  call: Callable[[], AnyResponse | Awaitable[AnyResponse]]) -> None:
        """Run a handler (or a sink's finish) and answer with what it returns."""
        self._requests += 1
        close = not request.keep_alive or self._requests >= _MAX_REQUESTS
        try:
            result = call()
        except HTTPError as exc:
            self._refuse(exc)
            return
        except Exception:
            log.exception("HTTP handler failed", extra={"peer": self.peer})
            self._refuse(HTTPError(500, "internal error"))
            return
        if isinstance(result, FileResponse):
            result = _ready(result)  # sent chunk by chunk: asynchronous work all the same
        if inspect.isawaitable(result):
            self._http_busy = True
            if self.transport is not None:
                self.transport.pause_reading()  # bounded: pipelined requests wait unread
            self._spawn(self._await_response(result, request, close))
        else:
            self._respond(result, request, close=close)

    async def _await_response(self, result: Awaitable[AnyResponse], request: Request,
                              close: bool) -> None:
        try:
            response = await result
        except HTTPError as exc:
            self._http_busy = False
            self._refuse(exc)
            return
        except Exception:
            self._http_busy = False
            log.exception("HTTP handler failed", extra={"peer": self.peer})
            self._refuse(HTTPError(500, "internal error"))
            return
        if isinstance(response, FileResponse):
            close = not await self._send_file(response, request, close=close)
        else:
            self._respond(response, request, close=close)
        self._http_busy = False
        if not close and self.transport is not None and not self._closing:
            self.transport.resume_reading()
            self._receive_http(b"")  # requests that were pipelined behind it

    async def _send_file(self, response: FileResponse, request: Request, *,
                         close: bool) -> bool:
        """Send a file response as the client reads it; True if the connection stays
        usable (the whole body went out and ``close`` was not asked for)."""
        head_only = request.method == "HEAD"
        try:
            with response.file as file:
                self._http_out.append(encode_response(
                    Response(response.status, response.headers), now=time.time(),
                    close=close, head_only=head_only, content_length=response.length))
                self._flush()
                left = 0 if head_only else response.length
                while left > 0:
                    await self._writable.wait()  # backpressure: the client reads slowly
                    if self._closing or self.transport is None or self.transport.is_closing():
                        return False
                    chunk = await asyncio.to_thread(file.read, min(_FILE_CHUNK, left))
                    if not chunk:
                        raise OSError("file shorter than announced")
                    left -= len(chunk)
                    self._http_out.append(chunk)
                    self._flush()
        except OSError:
            # The head is out, so no error response can follow: closing ends the body.
            log.exception("sending a file failed", extra={"peer": self.peer})
            self._close_transport()
            return False
        log.debug("http", extra={"peer": self.peer, "method": request.method,
                                 "path": request.path, "status": response.status})
        if close:
            self._close_transport()
            return False
        self._arm_http_timer()
        return True

    def _respond(self, response: Response, request: Request, *, close: bool) -> None:
        self._http_out.append(encode_response(response, now=time.time(), close=close,
                                              head_only=request.method == "HEAD"))
        log.debug("http", extra={"peer": self.peer, "method": request.method,
                                 "path": request.path, "status": response.status})
        if close:
            self._close_transport()
        else:
            self._flush()
            self._arm_http_timer()

    def _refuse(self, error: HTTPError) -> None:
        """An error response, then close: after a bad request we cannot know where the next
        one would start."""
        log.info("http refused", extra={"peer": self.peer, "status": error.status,
                                        "reason": error.detail})
        self._http_out.append(encode_response(error_response(error), now=time.time(),
                                              close=True))
        self._close_transport()

    def _arm_http_timer(self) -> None:
        if self._http_timer is not None:
            self._http_timer.cancel()
        timeout = self.server.config["http"]["idle_timeout_s"]
        self._http_timer = asyncio.get_running_loop().call_later(timeout, self._http_idle)

    def _http_idle(self) -> None:
        if self.ws is not None or self._http_busy:
            return
        if self._http_in or self._parser.rest or self._request is not None:
            self._refuse(HTTPError(408, "request not complete in time"))  # slow sender
        else:
            self._close_transport()  # an idle kept-alive connection


async def _ready(response: FileResponse) -> FileResponse:
    return response
