"""One virtual host: its sessions, enabled modules and their registrations."""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, TypeVar

from stockade.core.errors import ConfigError, StanzaError, StanzaErrorCondition, StockadeError
from stockade.core.errors import StreamErrorCondition as SE
from stockade.core.jid import JID
from stockade.core.stanza import Stanza, parse_stanza
from stockade.core.xml import Element, parse_fragment
from stockade.server.config import Config
from stockade.server.module import (
    AccountFeature,
    Bind2Inline,
    Component,
    Feature,
    Hook,
    HTTPEndpoint,
    Identity,
    IQHandler,
    Module,
    Nonza,
    PreauthIQ,
    Stage,
    StanzaEvent,
    StreamFeature,
    Target,
)
from stockade.server.modules import default_modules
from stockade.server.modules.rfc6121_presence import Presence
from stockade.server.modules.rfc6121_roster import Roster
from stockade.server.modules.xep0160_offline import Offline
from stockade.server.router import Router
from stockade.server.session import Connection, Detached, Session
from stockade.storage.base import Storage

log = logging.getLogger("stockade.host")
_NOT_REROUTED = ("urn:xmpp:carbons:2", "urn:xmpp:mam:2")  # copies and query results
M = TypeVar("M", bound=Module)


class Host:
    """A hosted domain."""

    def __init__(self, domain: str, config: Config, storage: Storage) -> None:
        self.domain = domain
        self.config = config
        self.storage = storage
        self.router = Router(self)
        self._sessions: dict[str, dict[str, Session]] = {}
        self._iq: dict[tuple[str, tuple[str, str]], list[IQHandler]] = {}
        self.features: list[str] = []
        self.account_features: list[str] = []
        self.identities: list[Identity] = []
        self.http_endpoints: list[HTTPEndpoint] = []
        self.modules: dict[str, Module] = {}
        self.tasks: set[asyncio.Future[None]] = set()
        self._hooks: dict[tuple[Stage, str], list[Hook]] = {}
        self.components: dict[str, Component] = {}  # by full domain
        self.stream_features: dict[str, list[str]] = {"bind": [], "sasl": []}
        self.nonzas: dict[tuple[str, str], Nonza] = {}
        self.preauth_iqs: dict[tuple[str, str], PreauthIQ] = {}
        self.bind2_inline: dict[tuple[str, str], Bind2Inline] = {}  # XEP-0386
        self._requests: dict[tuple[str, JID], asyncio.Future[Element]] = {}
        self._resumable: dict[str, Session] = {}  # XEP-0198 resumption id -> session
        for cls in default_modules(config):
            self._install(cls(self))
        self.presence = self._module(Presence)
        self.roster = self._module(Roster)
        self.offline = self._module(Offline)

    # ------------------------------------------------------------------ modules
    def _install(self, module: Module) -> None:
        missing = [d for d in module.depends if d not in self.modules]
        if missing:
            raise ConfigError(f"module {module.name} needs {', '.join(missing)}")
        self.modules[module.name] = module
        for reg in module.registrations():
            if isinstance(reg, IQHandler):
                self._add_iq(reg)
            elif isinstance(reg, Feature):
                self.features.append(reg.var)
            elif isinstance(reg, AccountFeature):
                self.account_features.append(reg.var)
            elif isinstance(reg, Identity):
                self.identities.append(reg)
            elif isinstance(reg, HTTPEndpoint):
                self.http_endpoints.append(reg)
            elif isinstance(reg, Hook):
                self._add_hook(reg)
            elif isinstance(reg, Component):
                self.components[f"{reg.subdomain}.{self.domain}"] = reg
            elif isinstance(reg, StreamFeature):
                self.stream_features[reg.stage].append(reg.xml)
            elif isinstance(reg, Nonza):
                self.nonzas[(reg.ns, reg.name)] = reg
            elif isinstance(reg, PreauthIQ):
                self.preauth_iqs[reg.payload] = reg
            elif isinstance(reg, Bind2Inline):
                self.bind2_inline[(reg.ns, reg.name)] = reg

    def _add_hook(self, hook: Hook) -> None:
        for kind in hook.kinds:
            hooks = self._hooks.setdefault((hook.stage, kind), [])
            hooks.append(hook)
            hooks.sort(key=lambda h: h.order)

    def has_hooks(self, stage: Stage, kind: str) -> bool:
        """Whether any module acts at ``stage`` on ``kind`` stanzas (skip the work if not)."""
        return (stage, kind) in self._hooks

    async def run_hooks(self, stage: Stage, event: StanzaEvent) -> None:
        """Run the hooks for ``stage`` in order until one sets ``stop``; a StanzaError
        raised by a hook propagates to the caller (who bounces it)."""
        pending = self.run_hooks_now(stage, event)
        if pending is not None:
            await pending

    def run_hooks_now(self, stage: Stage, event: StanzaEvent) -> Awaitable[None] | None:
        """:meth:`run_hooks` without a coroutine while every hook answers at once (the
        common case: a task per stanza was most of the message path's cost); from the
        first hook that must wait, the rest run in the returned awaitable."""
        hooks = self._hooks.get((stage, event.stanza.kind), ())
        for index, hook in enumerate(hooks):
            result = hook.fn(event)
            if inspect.isawaitable(result):
                return self._finish_hooks(result, hooks[index + 1:], event)
            if event.stop:
                return None
        return None

    @staticmethod
    async def _finish_hooks(first: Awaitable[None], rest: Sequence[Hook],
                            event: StanzaEvent) -> None:
        await first
        for hook in rest:
            if event.stop:
                return
            result = hook.fn(event)
            if inspect.isawaitable(result):
                await result

    # ------------------------------------------------------------------ server-sent IQs
    async def query_client(self, to: JID, iq: Element, timeout_s: float = 10.0) -> Element:
        """Send an IQ get/set from the server to a local full JID and await its answer (the
        result or error element). Only that JID can answer it (the key includes it).

        Raises:
            TimeoutError: no answer in time, or the session is gone.
        """
        request_id = "stockade-" + secrets.token_urlsafe(12)
        iq.attrs.update({"id": request_id, "from": self.domain, "to": str(to)})
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        key = (request_id, to)
        self._requests[key] = future
        try:
            self.router.deliver_local(to, iq)
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._requests.pop(key, None)

    def answer_received(self, stanza: Stanza) -> bool:
        """Route an IQ result/error addressed to the server to the request awaiting it."""
        if stanza.from_ is None or stanza.id is None:
            return False
        future = self._requests.get((stanza.id, stanza.from_))
        if future is None or future.done():
            return False
        future.set_result(stanza.element)
        return True

    async def start(self) -> None:
        """Start every module (storage is open)."""
        for module in self.modules.values():
            await module.start()

    async def stop(self) -> None:
        """Stop every module, last installed first."""
        for module in reversed(list(self.modules.values())):
            try:
                await module.stop()
            except Exception:
                log.exception("module stop failed", extra={"feature": module.name})

    def _add_iq(self, reg: IQHandler) -> None:
        handlers = self._iq.setdefault((reg.type, reg.payload), [])
        if any(h.targets & reg.targets for h in handlers):
            raise ConfigError(f"two modules handle {reg.type} {reg.payload}")
        handlers.append(reg)

    def _module(self, cls: type[M]) -> M:
        for module in self.modules.values():
            if isinstance(module, cls):
                return module
        raise ConfigError(f"required module {cls.__name__} is not enabled")

    def iq_handler(self, type_: str, payload: tuple[str, str] | None,
                   target: Target) -> IQHandler | None:
        """The handler for an IQ, or None (the router answers service-unavailable)."""
        if payload is None:
            return None
        for handler in self._iq.get((type_, payload), ()):
            if handler.targets & target:
                return handler
        return None

    # ------------------------------------------------------------------ sessions
    def resources(self, username: str) -> list[Session]:
        """The bound sessions of an account."""
        return list(self._sessions.get(username, {}).values())

    def session_for(self, jid: JID) -> Session | None:
        """The session bound to a full JID of this host."""
        if jid.local is None or jid.resource is None:
            return None
        return self._sessions.get(jid.local, {}).get(jid.resource)

    def bind(self, username: str, wish: str | None, conn: Connection) -> Session | StanzaError:
        """Resource binding with conflict handling (RFC 6120 §7.6, §7.7.2.2)."""
        mine = self._sessions.setdefault(username, {})
        try:
            resource = JID.make(username, self.domain, wish).resource if wish else None
        except ValueError:
            return StanzaError(StanzaErrorCondition.BAD_REQUEST, "invalid resource")
        if (resource not in mine or self.config["c2s"]["resource_conflict"] != "kick_old") \
                and len(mine) >= self.config["limits"]["max_resources_per_account"]:
            # RFC 6120 §7.6.2.1: the account has reached its limit of connected resources.
            return StanzaError(StanzaErrorCondition.RESOURCE_CONSTRAINT,
                               "too many resources online")
        if resource is None:
            resource = self._fresh_resource(mine)
        elif resource in mine:
            policy = self.config["c2s"]["resource_conflict"]
            if policy == "refuse":
                return StanzaError(StanzaErrorCondition.CONFLICT)
            if policy == "random":
                resource = f"{resource}.{secrets.token_hex(4)}"
            else:
                old = mine.pop(resource)
                old.conn.terminate(SE.CONFLICT, "replaced by a new connection")
                # The replaced session still leaves properly (unavailable to its contacts
                # and directed-presence recipients) before the new one is announced.
                self._spawn(self._session_ended(old))
        session = Session(JID(username, self.domain, resource), conn)
        mine[resource] = session
        return session

    @staticmethod
    def _fresh_resource(taken: dict[str, Session]) -> str:
        while True:
            resource = "stockade-" + secrets.token_urlsafe(9)
            if resource not in taken:
                return resource

    def unbind(self, session: Session) -> Coroutine[Any, Any, None]:
        """Forget a session that ended; modules get to clean up (unavailable presence).

        What must not wait happens before this returns: the session leaves the table and its
        unacknowledged messages are handed to the router, so a message routed afterwards
        cannot overtake them (RFC 6120 §10.1). The returned coroutine does the rest.
        """
        mine = self._sessions.get(session.username)
        if mine is None or mine.get(session.jid.resource or "") is not session:
            return _nothing()
        del mine[session.jid.resource or ""]
        if not mine:
            del self._sessions[session.username]
        return self._session_ended(session)

    def _session_ended(self, session: Session) -> Coroutine[Any, Any, None]:
        self._forget_resumable(session)
        return self._after_session_end(session, self._reroute_unacked(session))

    async def _after_session_end(self, session: Session,
                                 rerouted: list[Awaitable[None]]) -> None:
        for work in rerouted:
            await work
        for module in self.modules.values():
            try:
                await module.on_session_end(session)
            except Exception:
                log.exception("session-end hook failed", extra={"feature": module.name})

    # ------------------------------------------------------------------ XEP-0198
    def register_resumable(self, session: Session) -> None:
        """The session enabled resumption: a new stream of its account may take it over."""
        assert session.sm is not None
        self._resumable[session.sm.id] = session

    def _forget_resumable(self, session: Session) -> None:
        _cancel_hibernation(session)
        if session.sm is not None:
            self._resumable.pop(session.sm.id, None)

    def hibernate(self, session: Session, peer: str) -> None:
        """The client dropped without closing: keep the session bound (its contacts see no
        change) until it resumes or ``c2s.sm_resume_timeout_s`` passes."""
        assert session.sm is not None
        session.conn = Detached(peer, session.sm, lambda: self._expire(session))
        timeout = self.config["c2s"]["sm_resume_timeout_s"]
        session.hibernation = asyncio.get_running_loop().call_later(
            timeout, self._expire, session)
        log.info("session hibernated", extra={"jid": str(session.jid)})

    def _expire(self, session: Session) -> None:
        self._spawn(self.unbind(session))

    def resumable_session(self, resumption_id: str, username: str) -> Session | None:
        """The session a new stream of ``username`` may resume (XEP-0198 §5), or None.

        SECURITY: the id alone is not enough; the new stream must have authenticated as the
        same account, so a leaked id cannot hijack someone else's session.
        """
        session = self._resumable.get(resumption_id)
        if session is None or session.username != username or self.session_for(
                session.jid) is not session:
            return None
        return session

    def take_over(self, session: Session, conn: Connection) -> None:
        """Give a resumable session to the connection that resumed it."""
        _cancel_hibernation(session)
        session.conn = conn

    def _reroute_unacked(self, session: Session) -> list[Awaitable[None]]:
        """A stream-managed session ended for good: messages the client never acknowledged
        go to another resource or offline storage (queued now, in order), as if they had
        just arrived. Returns the storage work to await."""
        work: list[Awaitable[None]] = []
        if session.sm is None:
            return work
        for text in session.sm.take_unacked():
            stanza = _reroutable(text)
            if stanza is not None:
                pending = self.router.redeliver(stanza)
                if pending is not None:
                    work.append(pending)
        return work

    async def end_hibernated(self) -> None:
        """Shutdown: hibernated sessions end now, their unacked messages stored."""
        for session in list(self._resumable.values()):
            if isinstance(session.conn, Detached):
                await self.unbind(session)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _reroutable(text: str) -> Stanza | None:
    """The unacked stanza as a message to deliver again, or None (not a message, an error or
    groupchat, a carbon copy or an archive result: those have their own recovery)."""
    try:
        el = parse_fragment(text)
        stanza = parse_stanza(el)
    except (StockadeError, ValueError):
        return None
    if stanza.kind != "message" or stanza.type in ("error", "groupchat") or stanza.to is None:
        return None
    if any(child.ns in _NOT_REROUTED for child in el.elements()):
        return None
    return stanza


async def _nothing() -> None:
    """unbind() of a session that is no longer bound."""


def _cancel_hibernation(session: Session) -> None:
    if session.hibernation is not None:
        session.hibernation.cancel()
        session.hibernation = None
