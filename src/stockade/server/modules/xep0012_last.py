"""Last Activity, XEP-0012: the server's uptime, and when an account was last online.

Off by default ([last] enabled): when a user was last seen is personal information, so an
operator opts in, and even then only contacts subscribed to the user's presence may ask.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.stanza import NS_CLIENT, Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.config import Option, register_section
from stockade.server.module import (
    AccountFeature,
    Feature,
    Hook,
    IQHandler,
    Module,
    Registration,
    Spec,
    Stage,
    StanzaEvent,
    Target,
)
from stockade.server.session import Session
from stockade.storage.base import AccountNotFound

if TYPE_CHECKING:
    from stockade.server.host import Host

NS_LAST = "jabber:iq:last"
KEY = "logout"
MAX_STATUS_CHARS = 1024
SEC = StanzaErrorCondition
_CONTACT_SEES = ("from", "both")

register_section("last", {
    "enabled": Option(bool, False, "Answer Last Activity queries (XEP-0012): the server's "
                      "uptime, and for an account the seconds since its last session ended "
                      "(only to contacts subscribed to its presence)."),
})


def last_query(seconds: float, status: str = "") -> Element:
    """``<query xmlns='jabber:iq:last' seconds='...'>status</query>`` (XEP-0012 §3)."""
    query = Element(NS_LAST, "query", {"seconds": str(max(0, int(seconds)))})
    if status:
        query.append(status)
    return query


class LastActivity(Module):
    """XEP-0012 §4 (offline user query) and §5 (server uptime); client idle time (§3) is a
    query to a full JID, which the router forwards to the client itself."""

    name = "xep0012_last"
    specs = (Spec("XEP-0012", "Last Activity", "2.0"),)
    depends = ("xep0030_disco", "rfc6121_presence")
    config_section = "last"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self.started = time.monotonic()

    def registrations(self) -> Iterable[Registration]:
        """Uptime on the host, last logout on accounts, and the status of the last
        unavailable presence (recorded as it is sent)."""
        yield Feature(NS_LAST)
        yield AccountFeature(NS_LAST)
        yield IQHandler("get", (NS_LAST, "query"), Target.HOST, self.on_uptime)
        yield IQHandler("get", (NS_LAST, "query"), Target.SELF | Target.ACCOUNT,
                        self.on_account)
        yield Hook(Stage.SENT, frozenset({"presence"}), self.on_presence_sent)

    async def on_uptime(self, iq: Stanza, session: Session) -> Element:
        """§5: seconds since the server started."""
        return result_reply(iq, str(iq.to) if iq.to is not None else None,
                            last_query(time.monotonic() - self.started))

    async def on_account(self, iq: Stanza, session: Session) -> Element:
        """§4: seconds since the account's last session ended, with that session's last
        status; 0 while it has an available resource."""
        owner = iq.to.local if iq.to is not None and iq.to.local else session.username
        if owner != session.username:
            await self._check_subscribed(owner, session)
        reply_from = str(iq.to) if iq.to is not None else None
        if any(s.available for s in self.host.resources(owner)):
            return result_reply(iq, reply_from, last_query(0))
        stored = await self.host.storage.get_data(owner, NS_LAST, KEY)
        if stored is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND, "no recorded activity")
        record = json.loads(stored)
        return result_reply(iq, reply_from, last_query(time.time() - float(record["stamp"]),
                                                        str(record.get("status", ""))))

    async def _check_subscribed(self, owner: str, session: Session) -> None:
        # §4: "the server MUST NOT return the information unless the requesting entity is
        # authorized to view the user's presence"; a missing account answers the same.
        item = await self.host.storage.get_roster_item(owner, str(session.jid.bare))
        if item is None or item.subscription not in _CONTACT_SEES:
            raise StanzaError(SEC.FORBIDDEN)

    def on_presence_sent(self, event: StanzaEvent) -> None:
        """Remember the status of a broadcast unavailable presence for the record."""
        stanza, origin = event.stanza, event.origin
        if origin is None or stanza.to is not None or stanza.type != "unavailable":
            return
        status = stanza.element.find(NS_CLIENT, "status")
        origin.data[self.name] = status.text[:MAX_STATUS_CHARS] if status is not None else ""

    async def on_session_end(self, session: Session) -> None:
        """Record the time when the account's last session ends."""
        if self.host.resources(session.username):
            return
        record = {"stamp": time.time(), "status": session.data.get(self.name, "")}
        try:
            await self.host.storage.put_data(session.username, NS_LAST, KEY, json.dumps(record))
        except AccountNotFound:
            pass  # the account was removed while online


MODULES = (LastActivity,)
