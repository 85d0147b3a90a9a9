"""Blocking Command, XEP-0191: block lists, their pushes, and their enforcement (§3.3-§3.5).

Where each rule is enforced:

- the user's own stanzas to a blocked JID: a ``Stage.SENT`` hook answers ``<not-acceptable/>``
  with ``<blocked xmlns='urn:xmpp:blocking:errors'/>`` (results and errors are dropped);
- messages from a blocked JID: a ``Stage.MESSAGE_INBOUND`` hook answers
  ``service-unavailable`` before delivery *or offline storage*;
- IQ get/set from a blocked JID: ``service-unavailable`` (``Stage.IQ_INBOUND`` for full JIDs;
  the SENT hook for local senders, which also covers IQs the server answers on the user's
  behalf, such as vCard or last-activity queries);
- presence (including subscriptions and probes) from a blocked JID: dropped without an error,
  by the SENT hook for local senders and by ``Session.screen`` for everything else delivered;
- the server's own stanzas on behalf of a user who blocks the recipient (presence broadcasts,
  probe answers): dropped by the recipient's ``Session.screen``.

Block lists of accounts with a bound session are cached in memory, so screening a delivery
costs a set lookup; lists of offline accounts are read from storage when needed.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Set
from typing import TYPE_CHECKING

from stockade.core.errors import ErrorType, JIDError, StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, Stanza, error_reply, result_reply
from stockade.core.xml import Element
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import (
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

if TYPE_CHECKING:
    from stockade.server.host import Host
    from stockade.storage.base import RosterItem

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
SEC = StanzaErrorCondition
_EMPTY: frozenset[str] = frozenset()
_CONTACT_SEES = ("from", "both")  # the contact receives the user's presence (RFC 6121)
_SEES_CONTACT = ("to", "both")  # the user receives the contact's presence

register_section("blocking", {
    "max_items": Option(int, 1000, "JIDs one account may block (XEP-0191); a block command "
                        "beyond it gets resource-constraint.", int_range(1, 100_000)),
})


def matches(items: Set[str], jid: str) -> bool:
    """Whether a prepared JID is matched by a block list (XEP-0191 §6, as XEP-0016):
    ``user@domain/resource`` only itself, ``user@domain`` any of its resources,
    ``domain/resource`` only itself, ``domain`` itself, anything at it and its subdomains."""
    if not items:
        return False
    if jid in items:
        return True
    bare, _, resource = jid.partition("/")
    if resource and bare in items:
        return True
    domain = bare.rpartition("@")[2]
    while True:
        if domain in items and domain != jid:
            return True
        dot = domain.find(".")
        if dot < 0:
            return False
        domain = domain[dot + 1:]


class _SessionState:
    """What the module keeps per session (``Session.data[Blocking.name]``)."""

    __slots__ = ("interested",)

    def __init__(self) -> None:
        self.interested = False  # requested the block list: gets pushes (§3.3)


class Blocking(Module):
    """XEP-0191 for local accounts."""

    name = "xep0191_blocking"
    specs = (Spec("XEP-0191", "Blocking Command", "1.3",
                  notes="messages stored offline before a block are still delivered"),)
    depends = ("xep0030_disco", "rfc6121_presence")
    config_section = "blocking"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._lists: dict[str, frozenset[str]] = {}  # accounts with bound sessions
        self._nonempty: set[str] = set()  # of those, the ones that block someone

    def registrations(self) -> Iterable[Registration]:
        """§3.1 feature, §3.2-§3.5 commands (only to one's own account), enforcement hooks."""
        yield Feature(NS_BLOCKING)
        yield IQHandler("get", (NS_BLOCKING, "blocklist"), Target.SELF, self.on_get)
        yield IQHandler("set", (NS_BLOCKING, "block"), Target.SELF, self.on_block)
        yield IQHandler("set", (NS_BLOCKING, "unblock"), Target.SELF, self.on_unblock)
        # Early, so that nothing blocked is archived or copied by later hooks.
        every = frozenset({"message", "presence", "iq"})
        yield Hook(Stage.SENT, every, self.on_sent, order=10)
        yield Hook(Stage.MESSAGE_INBOUND, frozenset({"message"}), self.on_inbound, order=10)
        yield Hook(Stage.IQ_INBOUND, frozenset({"iq"}), self.on_inbound, order=10)

    # ------------------------------------------------------------------ the cached lists
    async def blocklist(self, username: str) -> frozenset[str]:
        """The account's block list (cached while it has a bound session)."""
        cached = self._lists.get(username)
        if cached is not None:
            return cached
        rows = await self.host.storage.list_data(username, NS_BLOCKING)
        cached = self._lists.get(username)  # a block command filled it meanwhile
        if cached is not None:
            return cached
        items = frozenset(key for key, _ in rows)
        self._set_list(username, items)
        return items

    def _set_list(self, username: str, items: frozenset[str] | None) -> None:
        # Only accounts that are online stay cached: memory is bounded by the sessions.
        if items is None or not self.host.resources(username):
            self._lists.pop(username, None)
            self._nonempty.discard(username)
            return
        self._lists[username] = items
        if items:
            self._nonempty.add(username)
        else:
            self._nonempty.discard(username)

    async def on_session_end(self, session: Session) -> None:
        """Forget the list of an account whose last session ended."""
        if not self.host.resources(session.username):
            self._set_list(session.username, None)

    # ------------------------------------------------------------------ screening deliveries
    def attach(self, session: Session) -> _SessionState:
        """Install the delivery screen on ``session`` (once) and return its state."""
        state = session.data.get(self.name)
        if isinstance(state, _SessionState):
            return state
        state = _SessionState()
        session.data[self.name] = state
        mine = self._screen_for(session)
        previous = session.screen
        session.screen = mine if previous is None else (lambda el: mine(el) or previous(el))
        return state

    def _screen_for(self, session: Session) -> Callable[[Element], bool]:
        lists, nonempty, domain = self._lists, self._nonempty, self.host.domain
        username, me, own_bare = session.username, str(session.jid), str(session.jid.bare)

        def screened(el: Element) -> bool:
            sender = el.attrs.get("from")
            if sender is None or not nonempty:
                return False
            # §3.3: "MUST NOT deliver any XML stanzas from the contact to the user".
            mine = lists.get(username)
            if mine and matches(mine, sender) and sender != domain \
                    and sender.partition("/")[0] != own_bare:
                return True
            if el.attrs.get("type") == "error":
                return False  # errors answering this user's own stanzas must reach it
            # Stanzas the server sends on behalf of a local user who blocks this one.
            local, at, rest = sender.partition("@")
            if not at or local == username or local not in nonempty \
                    or rest.partition("/")[0] != domain:
                return False
            return matches(lists.get(local, _EMPTY), me)

        return screened

    # ------------------------------------------------------------------ hooks
    def on_sent(self, event: StanzaEvent) -> Awaitable[None] | None:
        """Outbound rule for the sender; inbound rules for local recipients (not messages:
        those are checked at MESSAGE_INBOUND, which also covers other senders)."""
        origin = event.origin
        if origin is None:
            return None
        if self.name not in origin.data or origin.username not in self._lists:
            return self._first_sent(event, origin)
        return self._check_sent(event, origin)

    async def _first_sent(self, event: StanzaEvent, origin: Session) -> None:
        await self.blocklist(origin.username)
        self.attach(origin)
        work = self._check_sent(event, origin)
        if work is not None:
            await work

    def _check_sent(self, event: StanzaEvent, origin: Session) -> Awaitable[None] | None:
        stanza = event.stanza
        to = stanza.to
        if to is None or self._is_own_or_server(to, origin.username):
            return None
        mine = self._lists.get(origin.username, _EMPTY)
        if mine and matches(mine, str(to)):
            event.stop = True
            self._refuse_outbound(stanza, origin)
            return None
        if stanza.kind == "message" or to.domain != self.host.domain or to.local is None:
            return None
        theirs = self._lists.get(to.local)
        if theirs is None:
            return self._check_local_recipient_stored(event, to.local, origin)
        self._check_local_recipient(event, theirs, origin)
        return None

    async def _check_local_recipient_stored(self, event: StanzaEvent, recipient: str,
                                            origin: Session) -> None:
        self._check_local_recipient(event, await self.blocklist(recipient), origin)

    @staticmethod
    def _check_local_recipient(event: StanzaEvent, items: frozenset[str],
                               origin: Session) -> None:
        if not matches(items, str(origin.jid)):
            return
        event.stop = True  # §3.3: presence silently; IQ results and errors too
        if event.stanza.kind == "iq" and event.stanza.type in ("get", "set"):
            raise StanzaError(SEC.SERVICE_UNAVAILABLE)

    def on_inbound(self, event: StanzaEvent) -> Awaitable[None] | None:
        """§3.3: a message, or an IQ get/set to a full JID, from a blocked JID gets
        service-unavailable (the user appears offline) and is neither delivered nor stored."""
        sender, account = event.stanza.from_, event.account
        if sender is None or account is None or self._is_own_or_server(sender, account):
            return None
        cached = self._lists.get(account)
        if cached is None:
            return self._refuse_inbound_stored(account, sender)
        _refuse_inbound(cached, sender)
        return None

    async def _refuse_inbound_stored(self, account: str, sender: JID) -> None:
        _refuse_inbound(await self.blocklist(account), sender)

    def _is_own_or_server(self, jid: JID, username: str) -> bool:
        # The user's own account and its server are never blocked: blocking the domain
        # blocks its other users, not the service the user is talking to.
        if jid.domain != self.host.domain:
            return False
        return jid.local == username or (jid.local is None and jid.resource is None)

    @staticmethod
    def _refuse_outbound(stanza: Stanza, origin: Session) -> None:
        """§3.3: not-acceptable with the blocked application condition (never an error to an
        error or result). Written past the session's screen: it comes 'from' the blocked JID."""
        if stanza.type in ("error", "result"):
            return
        reply = error_reply(stanza.element, StanzaError(
            SEC.NOT_ACCEPTABLE, type_=ErrorType.CANCEL,
            app=Element(NS_BLOCKING_ERRORS, "blocked")))
        if origin.conn.is_open:
            origin.conn.deliver(reply)

    # ------------------------------------------------------------------ commands
    async def on_get(self, iq: Stanza, session: Session) -> Element:
        """§3.2: the list; the resource now gets pushes."""
        self.attach(session).interested = True
        blocklist = Element(NS_BLOCKING, "blocklist")
        for jid in sorted(await self.blocklist(session.username)):
            blocklist.sub(NS_BLOCKING, "item", {"jid": jid})
        return result_reply(iq, None, blocklist)

    async def on_block(self, iq: Stanza, session: Session) -> Element:
        """§3.3: block, push, and tell the newly blocked contacts the user went offline."""
        self.attach(session)
        username = session.username
        items = _items(iq, "block")
        if not items:
            raise StanzaError(SEC.BAD_REQUEST, "block needs at least one item")  # §3.3
        current = await self.blocklist(username)
        new = [jid for jid in items if jid not in current]
        if len(current) + len(new) > self.options["max_items"]:
            raise StanzaError(SEC.RESOURCE_CONSTRAINT, "the block list is full")
        for jid in new:
            await self.host.storage.put_data(username, NS_BLOCKING, jid, "")
        _, roster = await self.host.storage.get_roster(username)
        # From here on nothing is awaited: the unavailable presence goes out before the
        # screens start hiding this user from the contact.
        current = self._lists.get(username, current)
        added = frozenset(new) - current
        self._announce_unavailable(username, added, roster)
        self._set_list(username, current | added)
        self._push(username, "block", items)
        return result_reply(iq, None)

    async def on_unblock(self, iq: Stanza, session: Session) -> Element:
        """§3.4 (items) and §3.5 (none: unblock all): push, then presence flows again."""
        self.attach(session)
        username = session.username
        items = _items(iq, "unblock")
        current = await self.blocklist(username)
        removed = current if not items else current & frozenset(items)
        if not items:
            await self.host.storage.clear_data(username, NS_BLOCKING)
        else:
            for jid in removed:
                await self.host.storage.delete_data(username, NS_BLOCKING, jid)
        _, roster = await self.host.storage.get_roster(username)
        remaining = self._lists.get(username, current) - removed
        self._set_list(username, remaining)
        self._push(username, "unblock", items)
        unblocked = [item for item in roster if matches(removed, item.jid)
                     and not matches(remaining, item.jid)]
        self._announce_current(username, [i for i in unblocked
                                          if i.subscription in _CONTACT_SEES])
        await self._probe(username, [i for i in unblocked if i.subscription in _SEES_CONTACT])
        return result_reply(iq, None)

    def _push(self, username: str, verb: str, items: list[str]) -> None:
        """§3.3-§3.5: to every resource that requested the block list."""
        for session in self.host.resources(username):
            state = session.data.get(self.name)
            if not isinstance(state, _SessionState) or not state.interested:
                continue
            iq = Element(NS_CLIENT, "iq", {"type": "set", "id": "push-" + secrets.token_hex(6),
                                           "to": str(session.jid)})
            command = iq.sub(NS_BLOCKING, verb)
            for jid in items:
                command.sub(NS_BLOCKING, "item", {"jid": jid})
            session.deliver(iq)

    # ------------------------------------------------------------------ presence effects
    def _announce_unavailable(self, username: str, added: frozenset[str],
                              roster: list[RosterItem]) -> None:
        """§3.3: unavailable presence from each available resource to each newly blocked
        contact allowed to see it (a subscription, or directed presence)."""
        if not added:
            return
        presence = self.host.presence
        contacts = [JID.parse(item.jid) for item in roster
                    if item.subscription in _CONTACT_SEES and matches(added, item.jid)]
        for session in self.host.resources(username):
            if not session.available:
                continue
            directed = [jid for jid in session.directed if matches(added, str(jid))]
            session.directed.difference_update(directed)
            for contact in [*contacts, *directed]:
                unavailable = Element(NS_CLIENT, "presence", {"type": "unavailable"})
                presence.deliver_to_contact(contact, unavailable, session.jid)

    def _announce_current(self, username: str, contacts: list[RosterItem]) -> None:
        """§3.4: the user's current presence to each unblocked contact allowed to see it."""
        for session in self.host.resources(username):
            if not session.available or session.presence is None:
                continue
            for item in contacts:
                self.host.presence.deliver_to_contact(JID.parse(item.jid), session.presence,
                                                      session.jid)

    async def _probe(self, username: str, contacts: list[RosterItem]) -> None:
        """After an unblock the user's resources learn the presence they missed (as a probe
        answer would tell them, RFC 6121 §4.3.2): only local contacts, until s2s exists."""
        mine = [s for s in self.host.resources(username) if s.available]
        user = str(JID(username, self.host.domain, None))
        for item in contacts:
            contact = JID.parse(item.jid)
            if not mine or contact.domain != self.host.domain or contact.local is None:
                continue
            theirs = await self.host.storage.get_roster_item(contact.local, user)
            if theirs is None or theirs.subscription not in _CONTACT_SEES:
                continue
            for other in self.host.resources(contact.local):
                if other.available and other.presence is not None:
                    for session in mine:
                        self.host.presence.deliver_to_contact(session.jid, other.presence,
                                                              other.jid)


def _refuse_inbound(items: frozenset[str], sender: JID) -> None:
    if matches(items, str(sender)):
        raise StanzaError(SEC.SERVICE_UNAVAILABLE)


def _items(iq: Stanza, command: str) -> list[str]:
    """The prepared JIDs of a block/unblock command, in order, without duplicates."""
    element = iq.element.find(NS_BLOCKING, command)
    assert element is not None
    jids: list[str] = []
    for item in element.find_all(NS_BLOCKING, "item"):
        try:
            jids.append(str(JID.parse(item.get("jid") or "")))
        except JIDError:
            raise StanzaError(SEC.JID_MALFORMED, "not a valid JID") from None
    return list(dict.fromkeys(jids))


MODULES = (Blocking,)
