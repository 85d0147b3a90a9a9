"""Presence: subscriptions (RFC 6121 §3), broadcast, probes and directed presence (§4).

The subscription state machine itself is the sans-I/O table in ``core.im.subscription``;
this module loads and stores state and moves the stanzas.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from stockade.core.errors import StanzaError
from stockade.core.im.subscription import (
    PresenceNotice,
    SubscriptionKind,
    SubState,
    process_inbound,
    process_outbound,
)
from stockade.core.im.subscription import Subscription as Sub
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, Stanza
from stockade.core.xml import Element, serialize
from stockade.server.module import Module, Spec
from stockade.server.session import Session
from stockade.storage.base import RosterItem

log = logging.getLogger("stockade.presence")
MAX_DIRECTED = 1000  # directed-presence recipients remembered per session (RFC 6121 §4.6)
SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})
_SEES_CONTACT = ("to", "both")  # user receives the contact's presence
_CONTACT_SEES = ("from", "both")  # contact receives the user's presence


def _state(item: RosterItem | None, pending_in: bool) -> SubState:
    if item is None:
        return SubState(pending_in=pending_in)
    return SubState(Sub(item.subscription), item.ask, pending_in, item.approved)


def _presence(from_: JID, to: JID, type_: str = "") -> Element:
    attrs = {"from": str(from_), "to": str(to)}
    if type_:
        attrs["type"] = type_
    return Element(NS_CLIENT, "presence", attrs)


class Presence(Module):
    """RFC 6121 §3 and §4 for local accounts."""

    name = "rfc6121_presence"
    specs = (Spec("RFC 6121", "XMPP IM: roster, subscriptions, presence, messages", "RFC 6121"),)
    depends = ("rfc6121_roster",)

    # ------------------------------------------------------------------ outbound
    def outbound(self, stanza: Stanza, session: Session) -> Awaitable[None] | None:
        """A presence stanza sent by ``session``."""
        if stanza.type in SUBSCRIPTION_TYPES and stanza.to is not None:
            return self._outbound_subscription(stanza, session, stanza.to.bare)
        if stanza.to is None and stanza.type in ("", "unavailable"):
            return self._broadcast(stanza, session)
        if stanza.to is None:
            return None  # e.g. a probe or subscription with no addressee: nothing to do
        if stanza.type == "probe":  # the user asks for a contact's presence (§4.3)
            return self._answer_probe(stanza.to.bare, session.jid.bare, session.jid)
        self._directed(stanza, session)
        return None

    async def _broadcast(self, stanza: Stanza, session: Session) -> None:
        """§4.2 initial presence, §4.4 updates, §4.5 unavailable."""
        available = stanza.type == ""
        initial = available and not session.available
        could_take_offline = session.available and session.priority >= 0
        session.available = available
        session.priority = _priority(stanza.element) if available else 0
        session.presence = stanza.element if available else None
        takes_offline = (available and session.priority >= 0 and not could_take_offline
                         # From now on live messages queue behind the stored ones.
                         and self.host.offline.reserve(session))
        _, items = await self.host.storage.get_roster(session.username)
        for item in items:
            if item.subscription in _CONTACT_SEES:
                self.deliver_to_contact(JID.parse(item.jid), stanza.element, session.jid)
        for other in self.host.resources(session.username):
            if other is not session and other.available:
                other.deliver(stanza.element)
        if not available:
            for jid in session.directed:
                self.deliver_to_contact(jid, stanza.element, session.jid)
            session.directed.clear()
            return
        session.deliver(stanza.element)  # §4.2.2: the server reflects presence to the user
        if initial:
            await self._after_initial(session, items)
        if takes_offline:
            # XEP-0160 §2: stored messages go out on the next non-negative presence, the
            # initial one or a later change from a negative priority.
            await self.host.offline.deliver(session, reserved=True)

    async def _after_initial(self, session: Session, items: list[RosterItem]) -> None:
        """Probes for the contacts' presence (§4.3), pending requests (§3.1.3), offline."""
        for item in items:
            if item.subscription in _SEES_CONTACT:
                await self._answer_probe(JID.parse(item.jid), session.jid.bare, session.jid)
        for _jid, text in await self.host.storage.list_pending_subscriptions(session.username):
            session.conn.deliver_raw(text)

    async def _answer_probe(self, contact: JID, user_bare: JID, reply_to: JID) -> None:
        """§4.3.2: tell ``reply_to`` the presence of ``contact`` if ``user_bare`` may see it."""
        if contact.domain != self.host.domain or contact.local is None:
            return
        item = await self.host.storage.get_roster_item(contact.local, str(user_bare))
        if item is None or item.subscription not in _CONTACT_SEES:
            return  # §4.3.2: no subscription → silently ignore (nothing leaks)
        online = [s for s in self.host.resources(contact.local) if s.available]
        if not online:
            self.host.router.deliver_local(reply_to, _presence(contact, reply_to, "unavailable"))
            return
        for s in online:
            assert s.presence is not None
            self.host.router.deliver_local(reply_to, _restamp(s.presence, s.jid, reply_to))

    def _directed(self, stanza: Stanza, session: Session) -> None:
        """§4.6 directed presence (and presence errors)."""
        to = stanza.to
        assert to is not None
        local = to.domain == self.host.domain and to.local is not None
        if stanza.type == "" and local and len(session.directed) < MAX_DIRECTED:
            # Bounded, and local only: remote JIDs are undeliverable until s2s exists.
            session.directed.add(to)
        elif stanza.type == "unavailable":
            session.directed.discard(to)
        self.deliver_to_contact(to, stanza.element, session.jid)

    def deliver_to_contact(self, to: JID, el: Element, from_: JID) -> None:
        """Deliver presence to a local JID (§4.2.3, §8.5.2.1.2); remote domains need s2s."""
        if to.domain != self.host.domain or to.local is None:
            return
        stamped = _restamp(el, from_, to)
        if to.resource is not None:
            self.host.router.deliver_local(to, stamped)
            return
        for s in self.host.resources(to.local):
            if s.available and s.conn.is_open:
                s.deliver(stamped)

    # ------------------------------------------------------------------ subscriptions §3
    async def _outbound_subscription(self, stanza: Stanza, session: Session,
                                     contact: JID) -> None:
        await self.outbound_subscription(session.username, contact,
                                         SubscriptionKind(stanza.type), stanza.element)

    async def outbound_subscription(self, username: str, contact: JID,
                                    kind: SubscriptionKind, element: Element, *,
                                    push: bool = True) -> None:
        """A subscription stanza the user sends to ``contact`` (§3, App. A.2)."""
        user = JID(username, self.host.domain, None)
        old_item = await self.host.storage.get_roster_item(username, str(contact))
        if old_item is None:
            try:
                await self.host.roster.check_room(username)
            except StanzaError:
                return  # a full roster takes no new contact, not even through presence
        pending = await self._has_pending(username, contact)
        result = process_outbound(_state(old_item, pending), kind)
        changed = await self._store(username, contact, old_item, pending, result.state)
        if changed is not None and result.push and push:
            self.host.roster.push(username, *changed)  # §3.1.2: before routing
        if not result.route:
            return
        notice = result.presence_to_contact
        if notice is PresenceNotice.UNAVAILABLE:  # §3.2.2: before the routed 'unsubscribed'
            self._notify(username, contact, notice)
        # §3.1.2: the user's server stamps the bare JID on subscription stanzas.
        await self.inbound_subscription(contact, user, kind, element)
        if notice is PresenceNotice.CURRENT:  # §3.1.5: after the routed 'subscribed'
            self._notify(username, contact, notice)

    def _notify(self, username: str, contact: JID, notice: PresenceNotice) -> None:
        """Send ``contact`` the presence of each available resource (or 'unavailable')."""
        for s in self.host.resources(username):
            if not s.available or s.presence is None:
                continue
            if notice is PresenceNotice.CURRENT:
                self.deliver_to_contact(contact, s.presence, s.jid)
            else:
                self.deliver_to_contact(contact, _presence(s.jid, contact, "unavailable"),
                                        s.jid)

    async def inbound_subscription(self, user: JID, contact: JID, kind: SubscriptionKind,
                                   original: Element) -> None:
        """A subscription stanza from ``contact`` arriving for local ``user`` (§3, App. A.3)."""
        if user.domain != self.host.domain or user.local is None:
            return  # remote contacts need s2s (a later issue)
        if not await self.host.storage.account_exists(user.local):
            return  # §3.1.3: silently ignored for a non-existent account
        old_item = await self.host.storage.get_roster_item(user.local, str(contact))
        pending = await self._has_pending(user.local, contact)
        result = process_inbound(_state(old_item, pending), kind)
        stanza_el = _subscription_element(original, contact, user, kind.value)
        changed = await self._store(user.local, contact, old_item, pending, result.state,
                                    pending_stanza=stanza_el)
        if result.deliver:
            self._deliver_subscription(user, stanza_el)
        if changed is not None and result.push:
            self.host.roster.push(user.local, *changed)  # §3.1.6: after the delivery
        if result.auto_reply is not None:
            reply = _presence(user, contact, result.auto_reply.value)
            await self.inbound_subscription(contact, user, result.auto_reply, reply)
        if result.presence_to_contact is not None:
            self._notify(user.local, contact, result.presence_to_contact)

    def _deliver_subscription(self, user: JID, el: Element) -> None:
        assert user.local is not None
        for s in self.host.resources(user.local):
            if s.available:
                s.deliver(el)

    async def _has_pending(self, username: str, contact: JID) -> bool:
        pending = await self.host.storage.list_pending_subscriptions(username)
        return any(jid == str(contact) for jid, _ in pending)

    async def _store(self, username: str, contact: JID, old: RosterItem | None,
                     pending_before: bool, state: SubState,
                     pending_stanza: Element | None = None) -> tuple[RosterItem, str] | None:
        """Persist the new state; returns (item, roster version) if the item changed."""
        storage = self.host.storage
        if state.pending_in and not pending_before and pending_stanza is not None:
            await storage.store_pending_subscription(username, str(contact),
                                                     serialize(pending_stanza, NS_CLIENT))
        elif pending_before and not state.pending_in:
            await storage.remove_pending_subscription(username, str(contact))
        new_item = self._item_for(contact, old, state)
        if new_item is None or new_item == old:
            return None
        return new_item, await storage.put_roster_item(username, new_item)

    @staticmethod
    def _item_for(contact: JID, old: RosterItem | None, state: SubState) -> RosterItem | None:
        if old is None and state.subscription is Sub.NONE and not state.pending_out \
                and not state.approved:
            return None  # a bare inbound request does not create a roster item (§3.1.3)
        return RosterItem(str(contact), old.name if old else None, state.subscription.value,
                          state.pending_out, state.approved, old.groups if old else ())

    async def on_roster_remove(self, username: str, contact: JID, item: RosterItem) -> None:
        """§2.5.2: removing a contact cancels the subscription both ways."""
        # Processed as if the user had sent them, so the contact also gets 'unavailable'
        # before the 'unsubscribed' (§3.2.2). The roster module pushes the removal itself.
        user = JID(username, self.host.domain, None)
        if item.subscription in _CONTACT_SEES or await self._has_pending(username, contact):
            await self.outbound_subscription(username, contact, SubscriptionKind.UNSUBSCRIBED,
                                             _presence(user, contact, "unsubscribed"),
                                             push=False)
        if item.subscription in _SEES_CONTACT or item.ask:
            await self.outbound_subscription(username, contact, SubscriptionKind.UNSUBSCRIBE,
                                             _presence(user, contact, "unsubscribe"),
                                             push=False)

    # ------------------------------------------------------------------ session end
    async def on_session_end(self, session: Session) -> None:
        """§4.5.2: a session that ends without saying so goes unavailable for everyone."""
        if not session.available and not session.directed:
            return
        unavailable = _presence(session.jid, session.jid.bare, "unavailable")
        del unavailable.attrs["to"]
        await self._broadcast(Stanza(unavailable, "presence", "unavailable", None,
                                     session.jid, None), session)


def _priority(el: Element) -> int:
    """RFC 6121 §4.7.2.3: an integer -128..127; anything else counts as 0."""
    prio = el.find(NS_CLIENT, "priority")
    try:
        value = int(prio.text.strip()) if prio is not None else 0
    except ValueError:
        return 0
    return value if -128 <= value <= 127 else 0


def _restamp(el: Element, from_: JID, to: JID) -> Element:
    attrs = dict(el.attrs)
    attrs["from"] = str(from_)
    attrs["to"] = str(to)
    return el.copy(attrs)


def _subscription_element(original: Element, from_: JID, to: JID, type_: str) -> Element:
    """The stanza as the contact receives it: bare from (§3.1.2), original children kept
    (e.g. a nickname or status), no id games."""
    el = _restamp(original, from_, to)
    el.attrs["type"] = type_
    return el


MODULES = (Presence,)
