"""The asyncio shell around a client stream: socket, STARTTLS, timeouts, ordering.

Everything protocol-shaped is in ``core.stream.c2s``; this file moves bytes and awaits the
lookups the core asks for.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from stockade.core.errors import StanzaError, StanzaErrorCondition, StreamErrorCondition
from stockade.core.ratelimit import TokenBucket
from stockade.core.spec import Spec
from stockade.core.stanza import NS_CLIENT, Stanza, error_reply
from stockade.core.stream import events as ev
from stockade.core.stream.c2s import C2SPolicy, C2SServerStream, Phase
from stockade.core.xml import Element
from stockade.io import sasl2
from stockade.io.tlslayer import TLSFailed, TLSLayer

if TYPE_CHECKING:
    from stockade.server.host import Host
    from stockade.server.server import Server
    from stockade.server.session import Session

log = logging.getLogger("stockade.c2s")
SE = StreamErrorCondition
_MAX_QUEUED = 500  # stanzas waiting behind an awaited one before we stop reading
_IDLE_PROBE_GRACE_S = 60  # how long an idle client has to answer the server's ping
NS_PING = "urn:xmpp:ping"


class C2SConnection(asyncio.Protocol):
    """One client TCP connection (STARTTLS or direct TLS)."""

    def __init__(self, server: Server, policy: C2SPolicy, ssl_context: ssl.SSLContext,
                 *, direct_tls: bool, framed: bool = False, trusted_plain: bool = False) -> None:
        """``framed``: RFC 7395 framing (a WebSocket subclass feeds one message at a time).
        ``trusted_plain``: a plaintext transport that counts as secure (loopback only)."""
        self.server = server
        self.ssl_context = ssl_context
        self.stream = C2SServerStream(policy, tls_active=direct_tls or trusted_plain,
                                      framed=framed)
        # SECURITY: the throttle is consulted again when the proof is checked, so guesses
        # sent in parallel cannot all pass the check made at lookup time.
        self.stream.login_refused = lambda username: server.is_login_throttled(
            self.peer, username, time.monotonic())
        self.stream.wall_clock = time.time  # FAST token expiry (XEP-0484)
        self.direct_tls = direct_tls
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.session: Session | None = None
        self._queue: deque[ev.Event] = deque()
        self._busy = False
        self._closing = False  # we decided to stop: nothing more is processed
        self._gone = False  # the transport is closed; what was read is still processed
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.peer_cert: bytes | None = None
        self._tls: TLSLayer | None = None
        self._flush_pending = False
        self._write_paused = False
        self._stall_timer: asyncio.TimerHandle | None = None
        c2s = server.config["c2s"]
        self._send_high = c2s["send_buffer_high_bytes"]
        self._send_max = c2s["send_buffer_max_bytes"]
        limits = server.config["limits"]
        now = time.monotonic()
        self._bucket = TokenBucket(limits["stanzas_per_second"], limits["stanza_burst"], now)
        self._over_rate = 0  # stanzas refused since the bucket last had room
        self.last_received = now  # for the idle timeout (TimeoutSweeper)
        self._idle_probe_at: float | None = None  # when an idle client was pinged
        self._handed_over: asyncio.Future[None] | None = None  # XEP-0198, see hand_over()
        self.stanza_started: float | None = None  # when an unfinished element began

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the authentication timer; for direct TLS, hand over the channel binding."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        if not self.server.admit_connection(self):
            log.info("too many connections", extra={"peer": self.peer})
            self._refuse_connection()
            self._closing = True
            self.transport.close()
            return
        self.transport.set_write_buffer_limits(high=self._send_high, low=self._send_high // 4)
        timeout = self.server.config["c2s"]["auth_timeout_s"]
        self._timer = asyncio.get_running_loop().call_later(timeout, self._auth_timeout)
        if self.direct_tls:
            self._tls = TLSLayer(self.ssl_context)

    def data_received(self, data: bytes) -> None:
        """Decrypt if TLS is on, feed the core and act on what it reports."""
        now = time.monotonic()
        self.last_received = now
        self._idle_probe_at = None
        tls = self._tls
        if tls is not None:
            data = self._tls_receive(tls, data)
        if data:
            self._receive_plaintext(data)
            if not self._is_mid_element():
                self.stanza_started = None
            elif self.stanza_started is None:
                self.stanza_started = now
        if tls is not None and tls.is_closed:
            # close_notify: handled after the bytes that came with it, never instead of them.
            self._peer_finished()

    def _refuse_connection(self) -> None:
        """Over the per-IP limit: say why where the transport still allows it (before TLS
        nothing can be said)."""
        if not self.direct_tls and self.transport is not None:
            self.stream.close(SE.POLICY_VIOLATION, "too many connections from your address")
            self.transport.write(self._take_output())

    def _is_mid_element(self) -> bool:
        """Whether the peer is part-way through sending something (for stanza_timeout_s)."""
        return self.stream.mid_element

    def _receive_plaintext(self, data: bytes) -> None:
        """Decrypted bytes from the peer (a subclass may unframe them first)."""
        self._handle(self.stream.receive_data(data))

    def _take_output(self) -> bytes:
        """Plaintext bytes to write now (a subclass may frame them)."""
        return self.stream.data_to_send()

    def _tls_receive(self, tls: TLSLayer, data: bytes) -> bytes:
        try:
            plaintext, completed, to_send = tls.receive(data)
        except TLSFailed as exc:
            log.info("TLS failed", extra={"peer": self.peer, "reason": exc.reason})
            self._write_raw(exc.alert)  # RFC 8446 §4.1.1: the fatal alert goes out first
            self._closing = True
            if self.transport is not None:
                self.transport.close()
            return b""
        self._write_raw(to_send)
        if completed:
            self._tls_up(tls)
        return plaintext

    def pause_writing(self) -> None:
        """The client is not reading: route new messages to storage; cut it off if it stays
        that way (slow-read attack)."""
        self._write_paused = True
        stall = self.server.config["c2s"]["send_stall_timeout_s"]
        self._stall_timer = asyncio.get_running_loop().call_later(stall, self._stalled)

    def resume_writing(self) -> None:
        """The client caught up: hand over what was stored meanwhile."""
        self._write_paused = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        session = self.session
        if session is not None and session.available and session.priority >= 0:
            self.server.host_for(session.jid.domain).offline.kick(session)

    def _stalled(self) -> None:
        log.info("client stopped reading", extra={"peer": self.peer})
        self._abort()

    def _abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        """The peer half-closed: stanzas already read are still processed, then we close."""
        self._peer_finished()
        return True  # we close the transport ourselves

    def _peer_finished(self) -> None:
        self._close_transport(stop_processing=False)

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel timers; unbind once every stanza already read has been processed."""
        self._gone = True
        self.server.release_connection(self)
        for timer in (self._timer, self._stall_timer):
            if timer is not None:
                timer.cancel()
        if not self._busy:
            self._unbind_if_gone()
        log.debug("connection closed", extra={"peer": self.peer})

    def _unbind_if_gone(self) -> None:
        # After the last queued stanza: an unavailable broadcast must not be overtaken by
        # an available presence the client sent just before it left.
        if self._gone and self.session is not None:
            session, self.session = self.session, None
            if session.conn is not self:
                return  # resumed on another connection (XEP-0198)
            host = self.server.host_for(session.jid.domain)
            if session.sm is not None and session.sm.resumable and not self._closing:
                # Dropped, not closed: the client may come back for it (XEP-0198 §5).
                host.hibernate(session, self.peer)
            else:
                self._spawn(host.unbind(session))

    # ------------------------------------------------------------------ Connection (session side)
    @property
    def is_open(self) -> bool:
        """Whether stanzas handed over now can still be written."""
        return (not self._closing and not self._write_paused and self.transport is not None
                and not self.transport.is_closing())

    def deliver(self, el: Element) -> None:
        """Send a stanza to this client (written at the end of this loop iteration)."""
        self.stream.send_element(el)
        self._flush_soon()
        sm = self.stream.sm
        if sm is not None and sm.overflowing:
            # SECURITY: a client that never acks would make us keep everything forever.
            self.terminate(SE.POLICY_VIOLATION, "acknowledge what you receive (XEP-0198)")

    def deliver_raw(self, text: str) -> None:
        """Send already-serialized stanza XML (stored messages) to this client now, so a
        backed-up connection shows as such (is_open) before the next one is handed over."""
        self.stream.send_raw(text)
        self._flush()

    def _flush_soon(self) -> None:
        # Stanzas routed to us in one loop iteration share one TLS record and one write():
        # per-stanza records and syscalls were a third of the message path (bench/).
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self._flush_pending = False
        self._flush()

    def terminate(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        """Close the stream with an error (e.g. ``conflict`` when replaced)."""
        if self.session is not None:
            session, self.session = self.session, None
            if session.conn is self:  # not when the session was resumed elsewhere
                self._spawn(self.server.host_for(session.jid.domain).unbind(session))
        self.stream.close(condition, text)
        self._flush()
        self._close_transport()

    # ------------------------------------------------------------------ event handling
    def _handle(self, events: list[ev.Event]) -> None:
        """Process events in order; an awaited one holds the rest back (RFC 6120 §10.1)."""
        self._queue.extend(events)
        if not self._busy:
            self._drain()
        if self._busy and len(self._queue) > _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()  # bounded: at most one read more is queued
        self._flush()

    def _drain(self) -> None:
        while self._queue and not self._closing:
            work = self._dispatch(self._queue.popleft())
            if work is not None:
                self._busy = True
                self._spawn(self._await_then_drain(work))
                return
        handed_over = self._handed_over
        if handed_over is not None and not handed_over.done():
            handed_over.set_result(None)
        self._unbind_if_gone()

    async def _await_then_drain(self, work: Awaitable[Any]) -> None:
        try:
            await work
        except Exception:
            log.exception("stanza processing failed", extra={"peer": self.peer})
        self._busy = False
        if self.transport is not None and not self._closing and not self._gone:
            self.transport.resume_reading()
        self._drain()
        self._flush()

    def _dispatch(self, event: ev.Event) -> Awaitable[Any] | None:
        handler = _EVENT_HANDLERS.get(type(event))
        return handler(self, event) if handler is not None else None

    def _on_stanza(self, event: ev.StanzaReceived) -> Awaitable[None] | None:
        if self.session is None:
            return None
        if not self._bucket.take(time.monotonic()):
            self._refuse_over_rate(event.stanza)
            return None
        self._over_rate = 0
        router = self.server.host_for(self.session.jid.domain).router
        try:
            return router.route(event.stanza, self.session)
        except Exception:
            # Routing is synchronous until something must wait: a failing module must not
            # take the connection (and the stanzas behind this one) down with it.
            log.exception("stanza processing failed", extra={"peer": self.peer})
            router.bounce(event.stanza, StanzaError(StanzaErrorCondition.INTERNAL_SERVER_ERROR))
            return None

    def _refuse_over_rate(self, stanza: Stanza) -> None:
        # The sender learns exactly which stanzas were not accepted (nothing is dropped
        # silently); one that keeps going regardless is cut off.
        self._over_rate += 1
        if self._over_rate > self._bucket.burst:
            self.terminate(SE.POLICY_VIOLATION, "stanza rate limit exceeded")
            return
        if stanza.type != "error":
            self.deliver(error_reply(stanza.element, StanzaError(
                StanzaErrorCondition.RESOURCE_CONSTRAINT, "slow down: stanza rate limit")))

    def check_timeouts(self, now: float, idle_s: float, stanza_s: float) -> None:
        """Cut off a client silent for ``idle_s`` (0: never) or stuck ``stanza_s`` inside a
        stanza it started (slowloris: memory and a parser held open for nothing)."""
        if self._closing or self.transport is None:
            return
        if self.stanza_started is not None and now - self.stanza_started > stanza_s:
            self._timed_out("stanza not completed in time")
        elif idle_s and now - self.last_received > idle_s:
            # Silence may just be an idle user: ask first (an XEP-0199 ping every client
            # must answer, RFC 6120 §8.2.3), and cut off only a client that stays silent.
            if self._idle_probe_at is None:
                self._idle_probe_at = now
                self._probe_idle()
            elif now - self._idle_probe_at > min(idle_s, _IDLE_PROBE_GRACE_S):
                self._timed_out("idle for too long")

    def _probe_idle(self) -> None:
        session = self.session
        if session is not None and self.stream.phase is Phase.ESTABLISHED:
            ping = Element(NS_CLIENT, "iq", {"type": "get", "id": "stockade-idle",
                                             "from": session.jid.domain,
                                             "to": str(session.jid)})
            ping.sub(NS_PING, "ping")
            self.deliver(ping)

    def _timed_out(self, reason: str) -> None:
        log.info("timeout", extra={"peer": self.peer, "reason": reason})
        self.terminate(SE.CONNECTION_TIMEOUT, reason)

    def _on_reply(self, event: ev.ReplyReady) -> None:
        self.deliver(event.element)

    def _on_nonza(self, event: ev.NonzaReceived) -> Awaitable[None] | None:
        session = self.session
        if session is None:
            return None
        host = self.server.host_for(session.jid.domain)
        nonza = host.nonzas.get(event.element.tag)
        return nonza.handler(event.element, session) if nonza is not None else None

    def _on_preauth_iq(self, event: ev.PreauthIQReceived) -> Awaitable[None]:
        return self._answer_preauth_iq(event.element)

    async def _answer_preauth_iq(self, iq: Element) -> None:
        domain = self.stream.domain or ""
        payload = next(iq.elements())
        handler = self.server.host_for(domain).preauth_iqs[payload.tag].handler
        try:
            reply = await handler(iq, self.peer, domain)
        except StanzaError as err:
            reply = error_reply(iq, err)
        except Exception:
            log.exception("pre-auth iq failed", extra={"peer": self.peer})
            reply = error_reply(iq, StanzaError(StanzaErrorCondition.INTERNAL_SERVER_ERROR))
        if reply is not None:
            self.deliver(reply)

    def _on_starttls(self, _event: ev.StartTLSRequested) -> None:
        # <proceed/> goes out in plaintext; every byte read from now on is TLS. The core has
        # already dropped, unparsed, whatever followed <starttls/> in the same read
        # (STARTTLS injection, CVE-2011-0411).
        self._flush()
        self._tls = TLSLayer(self.ssl_context)

    def _tls_up(self, tls: TLSLayer) -> None:
        peer_der = tls.ssl_object.getpeercert(binary_form=True)
        self.peer_cert = peer_der
        self.stream.tls_established(self.server.channel_binding, has_client_cert=bool(peer_der))

    def _on_credentials(self, event: ev.CredentialsRequested) -> Awaitable[None]:
        return self._lookup_credential(event)

    async def _lookup_credential(self, event: ev.CredentialsRequested) -> None:
        throttled = self.server.is_login_throttled(self.peer, event.username, time.monotonic())
        credential = None
        try:
            if not event.username.startswith("\x00"):
                credential = await self.server.storage.get_credential(event.username,
                                                                      event.hash_name)
        except Exception:
            log.exception("credential lookup failed", extra={"peer": self.peer})
            self.terminate(SE.INTERNAL_SERVER_ERROR)
            return
        self._handle_now(self.stream.provide_credential(credential, refuse=throttled))

    def _on_external(self, event: ev.ExternalAuthRequested) -> Awaitable[None]:
        return self._lookup_external(event)

    async def _lookup_external(self, event: ev.ExternalAuthRequested) -> None:
        username = await self.server.account_for_certificate(
            self.peer_cert, self.stream.domain or "", event.authzid)
        self._handle_now(self.stream.provide_external(username))

    def _on_auth_ok(self, event: ev.AuthSucceeded) -> None:
        log.info("authenticated", extra={"peer": self.peer, "user": event.username,
                                         "mechanism": event.mechanism})

    def _on_auth_failed(self, event: ev.AuthFailed) -> None:
        if event.credentials_tested:
            self.server.record_login_failure(self.peer, event.username, time.monotonic())
        log.info("authentication failed", extra={"peer": self.peer,
                                                 "mechanism": event.mechanism})

    def _on_bind(self, event: ev.BindRequested) -> None:
        assert self.stream.username is not None and self.stream.domain is not None
        host = self.server.host_for(self.stream.domain)
        result = host.bind(self.stream.username, event.resource, self)
        if isinstance(result, StanzaError):
            self._handle_now(self.stream.provide_bind(result))
            return
        self.session = result
        if self._timer is not None:
            self._timer.cancel()
        log.info("bound", extra={"peer": self.peer, "jid": str(result.jid)})
        if event.client_id is not None:
            sasl2.replace_same_client(host, result, event.client_id)
        self._handle_now(self.stream.provide_bind(result.jid))

    def _on_sm_enabled(self, event: ev.SMEnabled) -> None:
        session = self.session
        if session is None:
            return
        session.sm = event.state
        if event.state.resumable:
            self.server.host_for(session.jid.domain).register_resumable(session)

    def _on_resume(self, event: ev.ResumeRequested) -> Awaitable[None] | None:
        assert self.stream.username is not None and self.stream.domain is not None
        host = self.server.host_for(self.stream.domain)
        session = host.resumable_session(event.previd, self.stream.username)
        if session is None:
            log.info("resumption refused", extra={"peer": self.peer})
            self._handle_now(self.stream.provide_resume(None, None))
            return None
        # The old connection may still be routing stanzas it read (the client's 'h' in
        # <resumed/> counts them): they are routed, and before anything from this stream.
        pending = session.conn.hand_over() if session.conn is not self else None
        if pending is not None:
            return self._resume_after(pending, host, session)
        self._resume_now(host, session)
        return None

    async def _resume_after(self, pending: Awaitable[None], host: Host,
                            session: Session) -> None:
        await pending
        if host.session_for(session.jid) is not session:
            self._handle_now(self.stream.provide_resume(None, None))  # it ended meanwhile
            return
        self._resume_now(host, session)

    def _resume_now(self, host: Host, session: Session) -> None:
        host.take_over(session, self)
        self.session = session
        if self._timer is not None:
            self._timer.cancel()
        log.info("resumed", extra={"peer": self.peer, "jid": str(session.jid)})
        self._handle_now(self.stream.provide_resume(session.jid, session.sm))
        if session.available and session.priority >= 0:
            host.offline.kick(session)  # what was stored while it was away

    def hand_over(self) -> Awaitable[None] | None:
        """The client resumed our session on another connection (XEP-0198): read and write
        nothing more, but route what was already read. Returns what the new connection
        waits for (our queue draining), or None if nothing is in flight."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.abort()  # what it still had to say goes to the new stream
        if not self._busy and not self._queue:
            return None
        self._handed_over = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._handed_over)

    def _on_closed(self, _event: ev.StreamClosed | ev.StreamFailed) -> None:
        if isinstance(_event, ev.StreamFailed):
            log.info("stream error", extra={"peer": self.peer,
                                            "condition": _event.condition.value,
                                            "reason": _event.text})
        self._flush()
        self._close_transport()

    def _handle_now(self, events: list[ev.Event]) -> None:
        # Follow-up events from a provide_*() call jump the queue: they come from the
        # element being processed, before anything queued behind it.
        self._queue.extendleft(reversed(events))

    # ------------------------------------------------------------------ plumbing
    def _flush(self) -> None:
        data = self._take_output()
        if not data or self.transport is None or self.transport.is_closing():
            return
        tls = self._tls
        if tls is None:
            self._write_raw(data)
        elif tls.is_established:
            self._write_raw(tls.send(data))
        # else: mid-handshake there is no channel to write on; nothing is sent in clear

    def _write_raw(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if transport.get_write_buffer_size() > self._send_max:
                # SECURITY: bounded memory per connection whatever the client reads.
                log.info("send buffer limit reached", extra={"peer": self.peer})
                self._abort()

    def _close_transport(self, *, stop_processing: bool = True) -> None:
        """Flush, send close_notify and close. ``stop_processing``: we ended the stream, so
        stanzas still queued are dropped (a peer's close leaves them to be processed)."""
        if stop_processing:
            self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            self._flush()
            if self._tls is not None:
                self._write_raw(self._tls.close())
            self.transport.close()

    def _auth_timeout(self) -> None:
        if self.stream.phase is not Phase.ESTABLISHED:
            self.stream.close(SE.CONNECTION_TIMEOUT, "authenticate sooner")
            self._close_transport()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.server.tasks.add(task)  # so shutdown can let it finish
        task.add_done_callback(self.server.tasks.discard)


_EVENT_HANDLERS: dict[type, Callable[[C2SConnection, Any], Awaitable[Any] | None]] = {
    ev.StanzaReceived: C2SConnection._on_stanza,
    ev.ReplyReady: C2SConnection._on_reply,
    ev.NonzaReceived: C2SConnection._on_nonza,
    ev.PreauthIQReceived: C2SConnection._on_preauth_iq,
    ev.StartTLSRequested: C2SConnection._on_starttls,
    ev.CredentialsRequested: C2SConnection._on_credentials,
    ev.ExternalAuthRequested: C2SConnection._on_external,
    ev.AuthSucceeded: C2SConnection._on_auth_ok,
    ev.AuthFailed: C2SConnection._on_auth_failed,
    ev.BindRequested: C2SConnection._on_bind,
    ev.Bind2FeaturesRequested: sasl2.enable_bind2_features,
    ev.FastAuthRequested: sasl2.check_fast_token,
    ev.FastTokenIssued: sasl2.store_fast_token,
    ev.SMEnabled: C2SConnection._on_sm_enabled,
    ev.ResumeRequested: C2SConnection._on_resume,
    ev.StreamClosed: C2SConnection._on_closed,
    ev.StreamFailed: C2SConnection._on_closed,
}


SPECS = (Spec("XEP-0368", "SRV records for XMPP over TLS (direct TLS port)", "1.1.0"),)


class TimeoutSweeper:
    """One timer for every connection's idle and stalled-stanza timeouts: a per-read timer
    reset would cost a timer handle per packet; this costs one pass per second."""

    def __init__(self, connections: set[C2SConnection], idle_s: float, stanza_s: float,
                 interval_s: float = 1.0) -> None:
        self._connections = connections
        self._idle_s = idle_s
        self._stanza_s = stanza_s
        self._interval_s = interval_s
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin sweeping."""
        self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._sweep)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self._connections):
            try:
                conn.check_timeouts(now, self._idle_s, self._stanza_s)
            except Exception:
                log.exception("timeout check failed", extra={"peer": conn.peer})
        self.start()
