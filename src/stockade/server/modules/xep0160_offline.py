"""Offline messages: RFC 6121 §8.5.2.2 storage, XEP-0160 delivery, XEP-0203 delay stamps."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, Stanza
from stockade.core.xml import escape_attr, serialize
from stockade.server.module import Module, Spec

if TYPE_CHECKING:
    from stockade.server.host import Host
from stockade.server.session import Session

log = logging.getLogger("stockade.offline")
NS_DELAY = "urn:xmpp:delay"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
SEC = StanzaErrorCondition


def delay_stamp(stamp: float) -> str:
    """XEP-0082 DateTime in UTC with millisecond precision, as XEP-0203 wants it."""
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _worth_storing(stanza: Stanza) -> bool:
    # XEP-0160 §3: chat states and other transient notifications are not stored.
    return any(child.ns != NS_CHATSTATES for child in stanza.element.elements())


class Offline(Module):
    """Stores messages for accounts with no available resource; delivers them at login."""

    name = "xep0160_offline"
    specs = (Spec("XEP-0160", "Best Practices for Handling Offline Messages", "1.0.1"),
             Spec("XEP-0203", "Delayed Delivery", "2.0"))
    depends = ("rfc6121_presence",)

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self.tasks: set[asyncio.Future[None]] = set()
        self._last_store: dict[str, asyncio.Future[None]] = {}  # per account, the newest

    def store(self, stanza: Stanza, to: JID) -> Awaitable[None]:
        """Keep ``stanza`` for ``to`` (bare), or bounce it with the RFC's error.

        Stores for one account happen in the order of these calls, whatever each one
        awaits (the account check, the quota): rerouted and new messages keep their order.
        """
        assert to.local is not None
        previous = self._last_store.get(to.local)
        task = asyncio.ensure_future(self._store_after(previous, stanza, to))
        self._last_store[to.local] = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(functools.partial(self._forget_store, to.local))
        return asyncio.shield(task)  # a cancelled caller must not cancel the store

    def _forget_store(self, username: str, task: asyncio.Future[None]) -> None:
        if self._last_store.get(username) is task:
            del self._last_store[username]

    async def _store_after(self, previous: asyncio.Future[None] | None, stanza: Stanza,
                           to: JID) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own caller's business
        await self._store_now(stanza, to)

    async def _store_now(self, stanza: Stanza, to: JID) -> None:
        assert to.local is not None
        storage = self.host.storage
        if not await storage.account_exists(to.local):
            # RFC 6121 §8.5.1: no such account.
            self.host.router.bounce(stanza, StanzaError(SEC.SERVICE_UNAVAILABLE))
            return
        if not _worth_storing(stanza):
            return
        limit = self.host.config["storage"]["max_offline_messages"]
        if await storage.count_offline(to.local) >= limit:
            self.host.router.bounce(stanza, StanzaError(SEC.RESOURCE_CONSTRAINT,
                                                        "offline storage is full"))
            return
        await storage.store_offline(to.local, serialize(stanza.element, NS_CLIENT), time.time())
        self._wake(to.local)

    def _wake(self, username: str) -> None:
        """A message was stored while a resource may take it (it was draining, or became
        reachable meanwhile): make sure it is not left behind in storage."""
        for session in self.host.resources(username):
            if session.available and session.priority >= 0 and session.conn.is_open:
                self.kick(session)

    def kick(self, session: Session) -> None:
        """Start handing stored messages to ``session`` without waiting for it.

        ``draining`` is set here, synchronously, so a message routed right after this call
        already queues behind the stored ones instead of overtaking them.
        """
        if not self.reserve(session):
            return
        task = asyncio.ensure_future(self._drain_passes(session))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def reserve(self, session: Session) -> bool:
        """Hold live messages back from ``session`` from now on. True if the caller owns the
        hand-over and must ``deliver(session, reserved=True)``; False if one is running
        already (it will make another pass)."""
        if session.draining:
            session.redrain = True
            return False
        session.draining = True
        return True

    async def deliver(self, session: Session, *, reserved: bool = False) -> None:
        """Send the stored messages, oldest first, each with its delay stamp.

        While this runs the session takes no live messages (they are stored and picked up by
        the next batch), so nothing overtakes what was stored earlier.
        """
        if reserved or self.reserve(session):
            await self._drain_passes(session)

    async def _drain_passes(self, session: Session) -> None:
        try:
            while True:
                session.redrain = False
                await self._drain(session)
                if not session.redrain:
                    return
        finally:
            session.draining = False

    async def _drain(self, session: Session) -> None:
        storage = self.host.storage
        while True:
            batch = await storage.fetch_offline(session.username, limit=200)
            handed: list[int] = []
            for msg in batch:
                if not session.conn.is_open:
                    break  # backed up or closing: the rest waits for resume_writing/login
                session.conn.deliver_raw(_with_delay(msg.stanza, msg.stamp, self.host.domain))
                handed.append(msg.id)
            # Deleted only once handed to an open connection; XEP-0198 acks come later.
            if handed:
                await storage.delete_offline(session.username, handed)
            if len(handed) < len(batch) or not batch:
                return


def _with_delay(stanza: str, stamp: float, domain: str) -> str:
    delay = (f"<delay xmlns='{NS_DELAY}' from='{escape_attr(domain)}' "
             f"stamp='{delay_stamp(stamp)}'/>")
    closing = stanza.rfind("</")
    if closing < 0:  # self-closed element: open it up
        return stanza[:-2] + ">" + delay + "</message>"
    return stanza[:closing] + delay + stanza[closing:]


MODULES = (Offline,)
