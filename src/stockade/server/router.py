"""Stanza routing and delivery: RFC 6120 §10 and RFC 6121 §8.

Decides on the envelope alone (kind, type, addressee), so unknown payloads pass untouched.
Without module hooks, message delivery to online resources is synchronous and only storage
work is awaited; hooks (archive, carbons, blocking) run at the stages of ``module.Stage``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import Stanza, error_reply
from stockade.core.xml import Element
from stockade.server.module import IQHandler, Stage, StanzaEvent, Target

if TYPE_CHECKING:
    from stockade.server.host import Host
    from stockade.server.session import Session

log = logging.getLogger("stockade.router")
SEC = StanzaErrorCondition


class Router:
    """Routes stanzas sent by local sessions."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def route(self, stanza: Stanza, origin: Session) -> Awaitable[None] | None:
        """Route one stanza from ``origin``; returns work to await to keep stanzas in order."""
        if not self.host.has_hooks(Stage.SENT, stanza.kind):
            return self._route(stanza, origin)
        event = StanzaEvent(stanza, origin)
        return self._hooked(Stage.SENT, event, lambda: self._route(event.stanza, origin))

    def _hooked(self, stage: Stage, event: StanzaEvent,
                then: Callable[[], Awaitable[None] | None]) -> Awaitable[None] | None:
        """Run ``stage``'s hooks, then ``then()`` unless one stopped the stanza; a
        StanzaError from a hook is bounced to the sender. Synchronous until a hook must wait
        (then the rest is the returned awaitable, awaited to keep stanzas in order)."""
        try:
            pending = self.host.run_hooks_now(stage, event)
        except StanzaError as err:
            self.bounce(event.stanza, err)
            return None
        if pending is not None:
            return self._hooked_after(pending, event, then)
        return None if event.stop else then()

    async def _hooked_after(self, pending: Awaitable[None], event: StanzaEvent,
                            then: Callable[[], Awaitable[None] | None]) -> None:
        try:
            await pending
        except StanzaError as err:
            self.bounce(event.stanza, err)
            return
        if not event.stop:
            work = then()
            if work is not None:
                await work

    def _route(self, stanza: Stanza, origin: Session) -> Awaitable[None] | None:
        to = stanza.to
        if to is not None and to.domain in self.host.components:
            return self.host.components[to.domain].handler(stanza, origin)
        if stanza.kind == "message":
            return self.route_message(stanza, origin)
        if stanza.kind == "presence":
            return self.host.presence.outbound(stanza, origin)
        return self.route_iq(stanza, origin)

    # ------------------------------------------------------------------ errors
    def bounce(self, stanza: Stanza, error: StanzaError) -> None:
        """Answer ``stanza`` with an error to its sender (never an error to an error)."""
        if stanza.type == "error" or stanza.from_ is None:
            return
        reply = error_reply(stanza.element, error)
        if stanza.to is None:  # answered on behalf of the sender's account (RFC 6120 §10.3)
            reply.attrs["from"] = str(stanza.from_.bare)
        self.deliver_local(stanza.from_, reply)

    # ------------------------------------------------------------------ message §8.5
    def route_message(self, stanza: Stanza, origin: Session | None) -> Awaitable[None] | None:
        """RFC 6121 §8.5 message delivery rules."""
        to = stanza.to if stanza.to is not None else (
            origin.jid.bare if origin is not None else None)
        if to is None:
            return None
        if to.domain != self.host.domain:
            if to.domain in self.host.components:
                return self.host.components[to.domain].handler(stanza, origin)
            self.bounce(stanza, StanzaError(SEC.REMOTE_SERVER_NOT_FOUND))
            return None
        if to.local is None:
            # Messages to the server itself: nothing here consumes them (RFC 6120 §10.3.1).
            if stanza.type != "error":
                self.bounce(stanza, StanzaError(SEC.SERVICE_UNAVAILABLE))
            return None
        host = self.host
        if host.has_hooks(Stage.MESSAGE_INBOUND, "message") or host.has_hooks(
                Stage.MESSAGE_DELIVERED, "message"):
            return self._deliver_hooked(StanzaEvent(stanza, origin, account=to.local), to)
        return self._deliver_message(stanza, to, None)

    def _deliver_hooked(self, event: StanzaEvent, to: JID) -> Awaitable[None] | None:
        """Inbound hooks, delivery, delivered hooks."""
        return self._hooked(Stage.MESSAGE_INBOUND, event,
                            lambda: self._deliver_then_hooks(event, to))

    def _deliver_then_hooks(self, event: StanzaEvent, to: JID) -> Awaitable[None] | None:
        work = self._deliver_message(event.stanza, to, event.delivered)
        if work is not None:
            event.stored = True
            return self._delivered_after(work, event)
        return self.host.run_hooks_now(Stage.MESSAGE_DELIVERED, event)

    async def _delivered_after(self, work: Awaitable[None], event: StanzaEvent) -> None:
        await work
        await self.host.run_hooks(Stage.MESSAGE_DELIVERED, event)

    def redeliver(self, stanza: Stanza) -> Awaitable[None] | None:
        """Deliver again a message already accepted (archived, stamped) whose first delivery
        was never acknowledged (XEP-0198): no hooks run a second time."""
        to = stanza.to
        if to is None or to.domain != self.host.domain or to.local is None:
            return None
        return self._deliver_message(stanza, to, None)

    def _deliver_message(self, stanza: Stanza, to: JID,
                         delivered: list[Session] | None) -> Awaitable[None] | None:
        """RFC 6121 §8.5.3 (full JID) and §8.5.2 (bare JID) for a local account; the sessions
        written to are appended to ``delivered``."""
        if to.resource is not None:
            target = self.host.session_for(to)
            # Groupchat is never stored offline, so it need not queue behind a hand-over of
            # stored messages either: it goes straight to an open connection.
            if target is not None and (target.is_reachable or (
                    stanza.type == "groupchat" and target.conn.is_open)):
                target.deliver(stanza.element)
                if delivered is not None:
                    delivered.append(target)
                return None
            if stanza.type == "groupchat":  # §8.5.3.2.1
                self.bounce(stanza, StanzaError(SEC.SERVICE_UNAVAILABLE))
                return None
        return self._message_to_bare(stanza, to.bare, delivered)

    def _message_to_bare(self, stanza: Stanza, bare: JID,
                         delivered: list[Session] | None) -> Awaitable[None] | None:
        assert bare.local is not None
        if stanza.type == "error":
            return None  # §8.5.2.1.1: an error message to a bare JID is silently ignored
        if stanza.type == "groupchat":
            self.bounce(stanza, StanzaError(SEC.SERVICE_UNAVAILABLE))
            return None
        # A connection that is closing cannot take the message: it goes to storage instead.
        sessions = [s for s in self.host.resources(bare.local) if s.available
                    and s.priority >= 0 and s.is_reachable]
        if sessions and stanza.type != "headline":
            # §8.5.2.1.1: deliver to the highest-priority resource(s) — we use all of them.
            top = max(s.priority for s in sessions)
            sessions = [s for s in sessions if s.priority == top]
        for s in sessions:
            s.deliver(stanza.element)
        if delivered is not None:
            delivered.extend(sessions)
        if sessions or stanza.type == "headline":
            return None
        return self.host.offline.store(stanza, bare)

    # ------------------------------------------------------------------ iq §8.5, §10
    def route_iq(self, stanza: Stanza, origin: Session) -> Awaitable[None] | None:
        """Dispatch an IQ to a handler, or forward it to a full JID."""
        to = stanza.to
        if to is not None and to.domain != self.host.domain:
            self.bounce(stanza, StanzaError(SEC.REMOTE_SERVER_NOT_FOUND))
            return None
        if to is not None and to.resource is not None:
            if stanza.type in ("get", "set") and self.host.has_hooks(Stage.IQ_INBOUND, "iq"):
                event = StanzaEvent(stanza, origin, to.local)
                return self._hooked(Stage.IQ_INBOUND, event,
                                    lambda: self._iq_to_full(event.stanza, to))
            self._iq_to_full(stanza, to)
            return None
        if stanza.type in ("result", "error"):
            if to is None or to.local is None:
                self.host.answer_received(stanza)  # an answer to Host.query_client
            return None  # RFC 6120 §8.2.3: unsolicited results are dropped
        target = self._target(to, origin)
        payload = next(stanza.element.elements(), None)
        handler = self.host.iq_handler(stanza.type, payload.tag if payload else None, target)
        if handler is None:
            self.bounce(stanza, StanzaError(SEC.SERVICE_UNAVAILABLE))
            return None
        return self._run_iq(handler, stanza, origin)

    def _iq_to_full(self, stanza: Stanza, to: JID) -> None:
        target = self.host.session_for(to)
        if target is None or not target.conn.is_open:
            if stanza.type in ("get", "set"):
                # A backed-up client takes nothing more (its buffer stays bounded).
                condition = SEC.SERVICE_UNAVAILABLE if target is None else \
                    SEC.RESOURCE_CONSTRAINT
                self.bounce(stanza, StanzaError(condition))
            return
        target.deliver(stanza.element)

    @staticmethod
    def _target(to: JID | None, origin: Session) -> Target:
        if to is None or to == origin.jid.bare:
            return Target.SELF
        if to.local is None:
            return Target.HOST
        return Target.ACCOUNT

    async def _run_iq(self, handler: IQHandler, stanza: Stanza, origin: Session) -> None:
        try:
            reply = await handler.handler(stanza, origin)
        except StanzaError as err:
            self.bounce(stanza, err)
            return
        except Exception:
            log.exception("iq handler failed", extra={"payload": handler.payload[0]})
            self.bounce(stanza, StanzaError(SEC.INTERNAL_SERVER_ERROR))
            return
        if reply is not None:
            origin.deliver(reply)

    # ------------------------------------------------------------------ delivery
    def deliver_local(self, to: JID, el: Element) -> None:
        """Deliver a server-generated stanza to a local full JID, or every resource of a bare
        one, if online."""
        if to.domain != self.host.domain or to.local is None:
            return
        if to.resource is not None:
            target = self.host.session_for(to)
            if target is not None and target.conn.is_open:
                target.deliver(el)
            return
        for s in self.host.resources(to.local):
            if s.conn.is_open:
                s.deliver(el)
