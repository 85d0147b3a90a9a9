"""Roster management, RFC 6121 §2 (get, set, push, remove) with versioning (§2.6)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from stockade.core.errors import JIDError, StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.module import AccountFeature, IQHandler, Module, Registration, Spec, Target
from stockade.server.session import Session
from stockade.storage.base import RosterItem

NS_ROSTER = "jabber:iq:roster"
NS_ROSTER_VER = "urn:xmpp:features:rosterver"
MAX_TEXT_BYTES = 1023  # names and groups; RFC 6121 §2.1.2.4 leaves the bound to the server
MAX_GROUPS = 64
MAX_ITEMS = 2000  # per account: every presence broadcast walks the roster
SEC = StanzaErrorCondition


def item_element(item: RosterItem, subscription: str | None = None) -> Element:
    """The ``<item/>`` for a roster result or push."""
    attrs = {"jid": item.jid, "subscription": subscription or item.subscription}
    if item.name:
        attrs["name"] = item.name
    if item.ask and subscription is None:
        attrs["ask"] = "subscribe"
    if item.approved and subscription is None:
        attrs["approved"] = "true"  # RFC 6121 §3.4.1
    el = Element(NS_ROSTER, "item", attrs)
    for group in item.groups:
        el.sub(NS_ROSTER, "group", text=group)
    return el


class Roster(Module):
    """The roster get/set handlers and pushes; subscriptions live in rfc6121_presence."""

    name = "rfc6121_roster"
    specs = (Spec("RFC 6121", "XMPP IM: roster, subscriptions, presence, messages", "RFC 6121"),)

    def registrations(self) -> Iterable[Registration]:
        """RFC 6121 §2.1.5: only the account itself may read or change its roster."""
        yield AccountFeature(NS_ROSTER)
        yield IQHandler("get", (NS_ROSTER, "query"), Target.SELF, self.on_get)
        yield IQHandler("set", (NS_ROSTER, "query"), Target.SELF, self.on_set)

    async def on_get(self, iq: Stanza, session: Session) -> Element:
        """§2.1.3 roster get; §2.6.3: an up-to-date ``ver`` gets an empty result."""
        session.interested = True
        query_in = iq.element.find(NS_ROSTER, "query")
        assert query_in is not None
        version, items = await self.host.storage.get_roster(session.username)
        if query_in.get("ver") == version:
            return result_reply(iq, None)
        query = Element(NS_ROSTER, "query", {"ver": version})
        for item in items:
            query.append(item_element(item))
        return result_reply(iq, None, query)

    async def on_set(self, iq: Stanza, session: Session) -> Element:
        """§2.3 add/update, §2.5 remove."""
        query = iq.element.find(NS_ROSTER, "query")
        assert query is not None
        items = query.find_all(NS_ROSTER, "item")
        if len(items) != 1 or len(list(query.elements())) != 1:
            raise StanzaError(SEC.BAD_REQUEST, "exactly one item")  # §2.3.3
        el = items[0]
        contact = _parse_contact(el, session)
        if el.get("subscription") == "remove":
            await self.remove(session.username, contact)
        else:
            await self._update(session.username, contact, el)
        return result_reply(iq, None)

    async def _update(self, username: str, contact: JID, el: Element) -> None:
        name = el.get("name") or None
        if name is not None and len(name.encode()) > MAX_TEXT_BYTES:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "name too long")
        groups = _groups(el)
        old = await self.host.storage.get_roster_item(username, str(contact))
        if old is None:
            await self.check_room(username)
            item = RosterItem(str(contact), name, "none", False, False, groups)
        else:
            item = RosterItem(old.jid, name, old.subscription, old.ask, old.approved, groups)
        version = await self.host.storage.put_roster_item(username, item)
        self.push(username, item, version)

    async def check_room(self, username: str) -> None:
        """Refuse a new item once the roster holds MAX_ITEMS (RFC 6121 §2.3.3 lets the
        server limit it; resource-constraint is the condition for that)."""
        _, items = await self.host.storage.get_roster(username)
        if len(items) >= MAX_ITEMS:
            raise StanzaError(SEC.RESOURCE_CONSTRAINT, "roster is full")

    async def remove(self, username: str, contact: JID) -> None:
        """§2.5.2: cancel both directions of the subscription, then remove and push."""
        old = await self.host.storage.get_roster_item(username, str(contact))
        if old is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND)
        await self.host.presence.on_roster_remove(username, contact, old)
        version = await self.host.storage.remove_roster_item(username, str(contact))
        await self.host.storage.remove_pending_subscription(username, str(contact))
        self.push(username, old, version, subscription="remove")

    def push(self, username: str, item: RosterItem, version: str,
             subscription: str | None = None) -> None:
        """§2.1.6: push to every resource that requested the roster."""
        for session in self.host.resources(username):
            if not session.interested:
                continue
            iq = Element(NS_CLIENT, "iq", {"type": "set", "id": "push-" + secrets.token_hex(6),
                                           "to": str(session.jid)})
            query = iq.sub(NS_ROSTER, "query", {"ver": version})
            query.append(item_element(item, subscription))
            session.deliver(iq)


def _parse_contact(el: Element, session: Session) -> JID:
    try:
        contact = JID.parse(el.get("jid") or "")
    except JIDError:
        raise StanzaError(SEC.JID_MALFORMED) from None
    if contact.resource is not None:
        contact = contact.bare
    if contact == session.jid.bare:
        raise StanzaError(SEC.NOT_ALLOWED, "your own JID")
    return contact


def _groups(el: Element) -> tuple[str, ...]:
    groups = [g.text for g in el.find_all(NS_ROSTER, "group")]
    if len(groups) > MAX_GROUPS:
        raise StanzaError(SEC.NOT_ACCEPTABLE, "too many groups")
    for group in groups:
        if not group or len(group.encode()) > MAX_TEXT_BYTES:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "empty or too long group name")
    if len(set(groups)) != len(groups):
        raise StanzaError(SEC.BAD_REQUEST, "duplicate group")  # §2.3.3
    return tuple(groups)


MODULES = (Roster,)
