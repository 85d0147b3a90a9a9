"""Offline messages: RFC 6121 §8.5.2.2 storage, XEP-0160 delivery, XEP-0203 delay stamps."""

from __future__ import annotations

import datetime
import logging
import time

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, Stanza
from stockade.core.xml import escape_attr, serialize
from stockade.server.module import Module
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
    depends = ("rfc6121_presence",)

    async def store(self, stanza: Stanza, to: JID) -> None:
        """Keep ``stanza`` for ``to`` (bare), or bounce it with the RFC's error."""
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

    async def deliver(self, session: Session) -> None:
        """Send the stored messages, oldest first, each with its delay stamp."""
        storage = self.host.storage
        while True:
            batch = await storage.fetch_offline(session.username, limit=200)
            if not batch:
                return
            if not session.is_reachable:
                return  # kept for the next login
            for msg in batch:
                session.conn.deliver_raw(_with_delay(msg.stanza, msg.stamp, self.host.domain))
            # Deleted only once handed to an open connection; XEP-0198 acks come later.
            await storage.delete_offline(session.username, [m.id for m in batch])
            if len(batch) < 200:
                return


def _with_delay(stanza: str, stamp: float, domain: str) -> str:
    delay = (f"<delay xmlns='{NS_DELAY}' from='{escape_attr(domain)}' "
             f"stamp='{delay_stamp(stamp)}'/>")
    closing = stanza.rfind("</")
    if closing < 0:  # self-closed element: open it up
        return stanza[:-2] + ">" + delay + "</message>"
    return stanza[:closing] + delay + stanza[closing:]
