"""Entity Capabilities, XEP-0115: learn what each local client supports from its presence.

A client's available presence carries ``<c hash node ver/>``. A 'ver' already verified is
looked up in a bounded in-memory cache; an unknown one is asked of that client (a disco#info
get to ``node#ver``, §6.2) and trusted only if the answer hashes to it (§5.4): a client
lying about its 'ver' gets nothing from the lie, and never poisons the cache for others.
Each session's verified features live in ``Session.data``; other modules (PEP) ask
``notify_nodes(session)`` and are told when a session gains interest in nodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stockade.core.pubsub.caps import (
    CapsClaim,
    CapsMismatch,
    disco_query,
    notify_nodes,
    parse_caps,
    verified_features,
)
from stockade.server.module import Hook, Module, Registration, Spec, Stage, StanzaEvent
from stockade.server.session import Session

if TYPE_CHECKING:
    from stockade.server.host import Host

log = logging.getLogger("stockade.caps")
STATE_KEY = "xep0115_caps"
CACHE_MAX_ENTRIES = 4096
CACHE_MAX_CHARS = 4 * 1024 * 1024  # feature text held by the cache, all entries together
QUERY_TIMEOUT_S = 10.0

#: Called with a session and the nodes it newly wants notifications for (XEP-0163 §4.3.3:
#: an initial presence, or caps that add ``+notify`` features).
InterestListener = Callable[[Session, frozenset[str]], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class SessionCaps:
    """What one session claimed and what was verified of it."""

    claim: CapsClaim | None = None  # the latest claim (None: no caps)
    verified: CapsClaim | None = None  # the claim ``features`` belong to
    features: frozenset[str] = frozenset()
    notify: frozenset[str] = frozenset()  # nodes of interest while available
    available: bool = False  # as of the last broadcast presence (set before it is routed)
    failed: CapsClaim | None = None  # a claim whose answer did not verify: not asked again
    lookup: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Cache:
    """LRU of verified (hash, ver) -> features, bounded in entries and in characters."""

    entries: OrderedDict[tuple[str, str], frozenset[str]] = field(default_factory=OrderedDict)
    chars: int = 0

    def get(self, key: tuple[str, str]) -> frozenset[str] | None:
        features = self.entries.get(key)
        if features is not None:
            self.entries.move_to_end(key)
        return features

    def put(self, key: tuple[str, str], features: frozenset[str]) -> None:
        size = sum(len(f) for f in features)
        if key in self.entries or size > CACHE_MAX_CHARS // 16:
            return  # one oversized answer may not flush everyone else's
        self.entries[key] = features
        self.chars += size
        while len(self.entries) > CACHE_MAX_ENTRIES or self.chars > CACHE_MAX_CHARS:
            _, old = self.entries.popitem(last=False)
            self.chars -= sum(len(f) for f in old)


def session_caps(session: Session) -> SessionCaps:
    """The session's caps state (created empty on first use)."""
    state = session.data.get(STATE_KEY)
    if not isinstance(state, SessionCaps):
        state = session.data[STATE_KEY] = SessionCaps()
    return state


class Caps(Module):
    """Verified entity capabilities of local sessions."""

    name = "xep0115_caps"
    specs = (Spec("XEP-0115", "Entity Capabilities", "1.6.0",
                  notes="server side: verified ver (sha-1, sha-2) per client session; legacy "
                        "caps without 'hash' are ignored"),)

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._cache = _Cache()
        self._listeners: list[InterestListener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def registrations(self) -> Iterable[Registration]:
        """Watch the presence local clients send."""
        yield Hook(Stage.SENT, frozenset({"presence"}), self.on_presence)

    async def stop(self) -> None:
        """Cancel lookups still waiting for clients."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ API
    def add_listener(self, listener: InterestListener) -> None:
        """Be told when a session starts wanting notifications for nodes."""
        self._listeners.append(listener)

    def features(self, session: Session) -> frozenset[str]:
        """The session's verified disco features (empty if unknown or unverified)."""
        state = session.data.get(STATE_KEY)
        return state.features if isinstance(state, SessionCaps) else frozenset()

    def notify_nodes(self, session: Session) -> frozenset[str]:
        """The nodes the session asked notifications for (``<node>+notify``), while it is
        available; empty when unavailable, without caps, or with unverified caps."""
        state = session.data.get(STATE_KEY)
        return state.notify if isinstance(state, SessionCaps) else frozenset()

    # ------------------------------------------------------------------ presence
    def on_presence(self, event: StanzaEvent) -> None:
        """A local session's broadcast presence: note its caps (directed presence is not
        about the user's own capabilities and is left alone)."""
        session, stanza = event.origin, event.stanza
        if session is None or stanza.to is not None:
            return
        if stanza.type == "unavailable":
            state = session_caps(session)
            state.available, state.notify = False, frozenset()
            return
        if stanza.type != "":
            return
        state = session_caps(session)
        state.available = True
        state.claim = parse_caps(stanza.element)
        self._resolve(session, state)

    def _resolve(self, session: Session, state: SessionCaps) -> None:
        claim = state.claim
        if claim is None:
            self._apply(session, state, None, frozenset())
            return
        if claim == state.verified:
            self._apply(session, state, claim, state.features)
            return
        cached = self._cache.get(claim.key)
        if cached is not None:
            self._apply(session, state, claim, cached)
        elif claim == state.failed:
            self._apply(session, state, None, frozenset())
        elif state.lookup is None:
            state.lookup = self._spawn(self._lookup(session, state))
        # else: the running lookup checks state.claim again when its answer arrives.

    def _apply(self, session: Session, state: SessionCaps, claim: CapsClaim | None,
               features: frozenset[str]) -> None:
        state.verified, state.features = claim, features
        # An answer may arrive after the client went unavailable: no interest until it
        # is available again.
        wanted = notify_nodes(features) if state.available else frozenset()
        added = wanted - state.notify
        state.notify = wanted
        if added:
            for listener in self._listeners:
                self._spawn(listener(session, added))

    async def _lookup(self, session: Session, state: SessionCaps) -> None:
        try:
            while state.claim is not None and self._cache.get(state.claim.key) is None:
                claim = state.claim
                features = await self._ask(session, claim)
                if features is None:
                    state.failed = claim
                else:
                    self._cache.put(claim.key, features)
                if state.claim == claim:
                    self._apply(session, state, claim if features is not None else None,
                                features or frozenset())
                    return
            # A newer claim arrived meanwhile (and may be cached by now): settle that one.
        finally:
            state.lookup = None
        if state.claim is not None and state.available:
            self._resolve(session, state)

    async def _ask(self, session: Session, claim: CapsClaim) -> frozenset[str] | None:
        """The verified features for ``claim``, asked of the client that made it."""
        try:
            answer = await self.host.query_client(session.jid, disco_query(claim),
                                                  QUERY_TIMEOUT_S)
            return verified_features(answer, claim)
        except TimeoutError:
            log.info("caps query unanswered", extra={"jid": str(session.jid)})
        except CapsMismatch as exc:
            # SECURITY: XEP-0115 §8.3: an answer that does not hash to the claimed ver is
            # never used, for this client or any other claiming the same ver.
            log.warning("caps verification failed", extra={"jid": str(session.jid),
                                                           "reason": str(exc)})
        return None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("caps task failed", exc_info=task.exception())

    async def on_session_end(self, session: Session) -> None:
        """Stop asking a client that went away."""
        state = session.data.get(STATE_KEY)
        if isinstance(state, SessionCaps):
            state.available, state.notify = False, frozenset()
            if state.lookup is not None:
                state.lookup.cancel()


MODULES = (Caps,)
