"""One room: occupants, affiliations, and what each stanza makes the room send to whom.

XEP-0045 §7 (occupants), §8 (moderators), §17 (business rules). Admin and owner IQs are in
``admin.py``; both act on this class. Nothing here does I/O: every handler returns the
effects (``effects.py``) for the caller to carry out, in order.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from stockade.core.errors import ErrorType, StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.muc import _ns as ns
from stockade.core.muc import admin
from stockade.core.muc.config import MucLimits, RoomConfig
from stockade.core.muc.effects import (
    ArchiveMessage,
    DeleteRoom,
    Effect,
    QueryArchive,
    SaveRoom,
    Send,
)
from stockade.core.muc.forms import add_field, new_form
from stockade.core.muc.history import (
    History,
    HistoryEntry,
    HistoryRequest,
    history_message,
    xep0082_stamp,
)
from stockade.core.muc.occupant import (
    AffiliationRecord,
    Occupant,
    PendingIQ,
    PresenceOptions,
    RoomSnapshot,
    Subject,
    check_nick,
    nick_key,
    sanitize_presence,
    sender_of,
)
from stockade.core.muc.roles import Affiliation, Role, default_role
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import XML_LANG, Element

SEC = StanzaErrorCondition
MAX_PENDING_IQS = 256  # IQs forwarded between occupants awaiting an answer, per room


class Room:
    """A room's state. Construct through :class:`MucService` (creation, restore)."""

    def __init__(self, jid: JID, limits: MucLimits, new_id: Callable[[], str],
                 index: dict[JID, set[JID]], *, config: RoomConfig | None = None,
                 affiliations: dict[str, AffiliationRecord] | None = None,
                 subject: Subject | None = None, created: float = 0.0,
                 locked: bool = False, history: Iterable[HistoryEntry] = ()) -> None:
        self.jid = jid
        self.limits = limits
        self.config = config or RoomConfig()
        self.affiliations: dict[str, AffiliationRecord] = dict(affiliations or {})
        self.subject = subject
        self.created = created
        self.locked = locked  # §10.1.1: created but not yet configured
        self.closed = False  # destroyed or emptied: the service forgets it
        self.history = History(self.config.history_limit(limits), history)
        self.new_id = new_id
        self._occupants: dict[str, Occupant] = {}  # by nick_key
        self._sessions: dict[JID, Occupant] = {}
        self._index = index  # full JID -> rooms it is in, shared with the service
        self._pending: OrderedDict[str, PendingIQ] = OrderedDict()

    # ------------------------------------------------------------------ lookups
    @property
    def occupants(self) -> Iterator[Occupant]:
        """The occupants, in order of entry."""
        return iter(list(self._occupants.values()))

    def occupant_count(self) -> int:
        """How many occupants (nicks) are in the room."""
        return len(self._occupants)

    def occupant_by_nick(self, nick: str) -> Occupant | None:
        """The occupant using ``nick`` (compared by :func:`nick_key`)."""
        return self._occupants.get(nick_key(nick))

    def occupant_of(self, session: JID) -> Occupant | None:
        """The occupant a full JID is a session of."""
        return self._sessions.get(session)

    def occupants_of(self, bare: JID) -> list[Occupant]:
        """The occupants a user is (one per nick)."""
        return [o for o in self._occupants.values() if o.bare == bare]

    def occupant_jid(self, nick: str) -> JID:
        """``room@service/nick``."""
        return JID(self.jid.local, self.jid.domain, nick)

    def affiliation_of(self, jid: JID) -> Affiliation:
        """A user's affiliation: their bare JID's record, else their domain's (§9.2)."""
        record = self.affiliations.get(str(jid.bare)) or self.affiliations.get(jid.domain)
        return record.affiliation if record is not None else Affiliation.NONE

    def owners(self) -> list[str]:
        """The owners' JIDs."""
        return [j for j, r in self.affiliations.items() if r.affiliation is Affiliation.OWNER]

    def reserved_nick(self, bare: JID) -> str | None:
        """The nick reserved for a user (§7.12), if any."""
        record = self.affiliations.get(str(bare))
        return record.nick if record is not None else None

    def _reserved_by(self, nick: str) -> str | None:
        key = nick_key(nick)
        for jid, record in self.affiliations.items():
            if record.nick is not None and nick_key(record.nick) == key:
                return jid
        return None

    def shows_jid_to(self, viewer: Occupant) -> bool:
        """Whether ``viewer`` sees real JIDs: everyone in non-anonymous rooms, moderators in
        semi-anonymous ones (§7.2.3, §7.2.4)."""
        return self.config.non_anonymous or viewer.role is Role.MODERATOR

    def snapshot(self) -> RoomSnapshot:
        """What persists."""
        return RoomSnapshot(self.jid, self.config, dict(self.affiliations), self.subject,
                            self.created)

    def hide_if_locked(self, sender: JID) -> None:
        """§7.2.10/§17.2: a locked room does not exist yet for anyone but its owner.

        Raises:
            StanzaError: ``item-not-found``.
        """
        if self.locked and self.affiliation_of(sender) is not Affiliation.OWNER:
            raise StanzaError(SEC.ITEM_NOT_FOUND)

    # ------------------------------------------------------------------ output helpers
    def to_sessions(self, occupant: Occupant, element: Element) -> list[Effect]:
        """``element`` addressed to each session of ``occupant`` (own children list each,
        so a delivery hook changing one copy leaves the others alone)."""
        sends: list[Effect] = []
        for session in occupant.sessions:
            attrs = dict(element.attrs)
            attrs["to"] = str(session)
            sends.append(Send(session, Element(element.ns, element.name, attrs,
                                               list(element.children))))
        return sends

    def to_everyone(self, element: Element) -> list[Effect]:
        """``element`` to every session of every occupant."""
        sends: list[Effect] = []
        for occupant in self._occupants.values():
            sends.extend(self.to_sessions(occupant, element))
        return sends

    def status_message(self, *codes: str) -> list[Effect]:
        """A room message carrying only status codes (§10.2.1), to everyone."""
        message = Element(ns.NS_CLIENT, "message", {"from": str(self.jid), "type": "groupchat",
                                                   "id": self.new_id()})
        x = message.sub(ns.NS_MUC_USER, "x")
        for code in codes:
            x.sub(ns.NS_MUC_USER, "status", {"code": code})
        return self.to_everyone(message)

    def presence_of(self, occupant: Occupant, viewer: Occupant, options: PresenceOptions,
                    affiliation: Affiliation | None = None) -> Element:
        """``occupant``'s presence as ``viewer`` sees it, with the muc#user item (§17.3
        rule 8: role and affiliation "in all presence stanzas")."""
        attrs = {"from": str(self.occupant_jid(occupant.nick))}
        if options.unavailable:
            attrs["type"] = "unavailable"
        presence = Element(ns.NS_CLIENT, "presence", attrs,
                           list(options.status) if options.unavailable
                           else list(occupant.presence.children))
        x = presence.sub(ns.NS_MUC_USER, "x")
        aff = affiliation if affiliation is not None else self.affiliation_of(occupant.bare)
        item_attrs = {"affiliation": aff.value,
                      "role": Role.NONE.value if options.unavailable else occupant.role.value}
        if viewer is occupant or self.shows_jid_to(viewer):
            item_attrs["jid"] = str(occupant.current)  # §17.3 rule 10: the full JID
        if options.nick is not None:
            item_attrs["nick"] = options.nick
        item = x.sub(ns.NS_MUC_USER, "item", item_attrs)
        if options.actor is not None:
            item.sub(ns.NS_MUC_USER, "actor", {"nick": options.actor})
        if options.reason:
            item.sub(ns.NS_MUC_USER, "reason", text=options.reason)
        if options.destroy is not None:
            x.append(options.destroy)
        codes = list(options.codes)
        if viewer is occupant:
            codes = [ns.SELF, *codes, *options.self_codes]
            if options.presence_id:
                presence.attrs["id"] = options.presence_id
        for code in sorted(set(codes)):
            x.sub(ns.NS_MUC_USER, "status", {"code": code})
        return presence

    def broadcast_presence(self, occupant: Occupant, options: PresenceOptions,
                           affiliation: Affiliation | None = None) -> list[Effect]:
        """``occupant``'s presence to every occupant, itself included."""
        effects: list[Effect] = []
        for viewer in self._occupants.values():
            effects.extend(self.to_sessions(viewer, self.presence_of(
                occupant, viewer, options, affiliation)))
        return effects

    # ------------------------------------------------------------------ sessions
    def _add_session(self, occupant: Occupant, session: JID, presence: Element) -> None:
        occupant.sessions[session] = presence
        occupant.current = session
        self._sessions[session] = occupant
        self._index.setdefault(session, set()).add(self.jid)

    def _drop_session(self, occupant: Occupant, session: JID) -> None:
        occupant.sessions.pop(session, None)
        self._sessions.pop(session, None)
        rooms = self._index.get(session)
        if rooms is not None:
            rooms.discard(self.jid)
            if not rooms:
                del self._index[session]
        if occupant.current == session and occupant.sessions:
            occupant.current = next(iter(occupant.sessions))

    def _drop_occupant(self, occupant: Occupant) -> None:
        for session in list(occupant.sessions):
            self._drop_session(occupant, session)
        occupant.sessions = {}
        self._occupants.pop(nick_key(occupant.nick), None)

    def close(self) -> list[Effect]:
        """Forget the room: the service drops it and the caller deletes what is stored."""
        for occupant in list(self._occupants.values()):
            self._drop_occupant(occupant)
        self.closed = True
        return [DeleteRoom(self.jid)]

    def _after_departure(self) -> list[Effect]:
        """§7.14: "If the room is not persistent and this occupant is the last to exit, the
        service is responsible for destroying the room"; §10.1.3: so is a room whose owner
        leaves before configuring it."""
        if self._occupants or (self.config.persistent and not self.locked):
            return []
        return self.close()

    # ------------------------------------------------------------------ presence
    def handle_presence(self, stanza: Stanza, now: float) -> list[Effect]:
        """A presence stanza to the room or an occupant JID (§7.2, §7.6, §7.7, §7.14)."""
        session = sender_of(stanza)
        if stanza.type == "unavailable":
            occupant = self._sessions.get(session)
            if occupant is None:
                return []  # §17.3 rule 5: "silently ignore unavailable presence" from non-occupants
            return self.remove_session(occupant, session, PresenceOptions(
                unavailable=True, status=_exit_status(stanza.element)))
        if stanza.type != "":
            return []  # §17.3 rules 1-2, 4: probes and the like neither join nor leave
        occupant = self._sessions.get(session)
        joining = stanza.element.find(ns.NS_MUC, "x")
        nick = stanza.to.resource if stanza.to is not None else None
        if occupant is None:
            if joining is None:
                return self._not_an_occupant(session, nick)
            return self.join(session, nick, stanza, joining, now)
        if nick is None:
            nick = occupant.nick  # presence to the bare room JID: taken as to our nick
        if nick != occupant.nick:
            return self._change_nick(occupant, session, nick, stanza)
        if joining is not None:
            return self._resync(occupant, session, stanza, joining, now)
        occupant.sessions[session] = sanitize_presence(stanza.element)
        occupant.current = session
        return self.broadcast_presence(occupant, PresenceOptions())

    def _not_an_occupant(self, session: JID, nick: str | None) -> list[Effect]:
        """§7.2.18: presence without the MUC <x/> from a non-occupant is answered with a
        kick carrying 110, 307 and 333 (the client lost track of the room)."""
        if nick is None:
            raise StanzaError(SEC.JID_MALFORMED, "a room nickname is required")
        presence = Element(ns.NS_CLIENT, "presence", {
            "from": str(self.occupant_jid(nick)), "to": str(session), "type": "unavailable"})
        x = presence.sub(ns.NS_MUC_USER, "x")
        item = x.sub(ns.NS_MUC_USER, "item", {"affiliation": self.affiliation_of(session).value,
                                             "role": "none"})
        item.sub(ns.NS_MUC_USER, "reason", text="You are not in the room.")
        for code in (ns.SELF, ns.KICKED, ns.TECHNICAL):
            x.sub(ns.NS_MUC_USER, "status", {"code": code})
        return [Send(session, presence)]

    def check_entry(self, session: JID, nick: str, password: str | None) -> Occupant | None:
        """§7.2.5-§7.2.10: may this user enter with this nick? Returns the occupant they
        become another session of (same user, same nick), or None for a new occupant.

        Raises:
            StanzaError: the condition §7.2.17 lists for each refusal.
        """
        aff = self.affiliation_of(session)
        self.hide_if_locked(session)
        if aff is Affiliation.OUTCAST:
            raise StanzaError(SEC.FORBIDDEN, "you are banned from this room")
        if self.config.members_only and aff.rank < Affiliation.MEMBER.rank:
            raise StanzaError(SEC.REGISTRATION_REQUIRED, "this room is for members only")
        if self.config.password and not hmac.compare_digest(
                (password or "").encode(), self.config.password.encode()):
            raise StanzaError(SEC.NOT_AUTHORIZED, "a password is required")
        existing = self.occupant_by_nick(nick)
        if existing is not None and existing.bare != session.bare:
            raise StanzaError(SEC.CONFLICT, "that nickname is in use")
        reserved_by = self._reserved_by(nick)
        if reserved_by is not None and reserved_by != str(session.bare):
            raise StanzaError(SEC.CONFLICT, "that nickname is reserved")
        if existing is not None:
            if len(existing.sessions) >= self.limits.max_sessions_per_occupant:
                raise StanzaError(SEC.RESOURCE_CONSTRAINT, "too many sessions for one nick")
            return existing
        self._check_room_for_one_more(aff)
        return None

    def _check_room_for_one_more(self, aff: Affiliation) -> None:
        count = len(self._occupants)
        limit = self.config.occupant_limit(self.limits)
        # §7.2.9: "If the room has reached its maximum number of occupants and a room admin
        # or owner attempts to join, the room MUST allow the admin or owner to join, up to
        # some reasonable number of additional occupants".
        if aff.is_admin:
            limit += self.limits.admin_extra_occupants
        if count >= limit:
            raise StanzaError(SEC.SERVICE_UNAVAILABLE, "the room is full",
                              type_=ErrorType.WAIT)

    def join(self, session: JID, nick: str | None, stanza: Stanza, joining: Element,
             now: float, *, created: bool = False) -> list[Effect]:
        """Enter the room (§7.2): presence of the others, self-presence, history, subject."""
        nick = check_nick(nick, self.limits)
        password = joining.find(ns.NS_MUC, "password")
        existing = self.check_entry(session, nick, password.text if password is not None
                                    else None)
        request = HistoryRequest.from_element(joining.find(ns.NS_MUC, "history"))
        presence = sanitize_presence(stanza.element)
        if existing is None:
            role = default_role(self.affiliation_of(session), self.config.moderated)
            occupant = Occupant(nick, session.bare, role, session, presence)
            self._occupants[nick_key(nick)] = occupant
        else:
            occupant = existing
        self._add_session(occupant, session, presence)
        effects = self.others_to(session)
        for viewer in self._occupants.values():
            if viewer is not occupant:
                effects.extend(self.to_sessions(viewer, self.presence_of(
                    occupant, viewer, PresenceOptions())))
        effects.extend(self._self_presence(occupant, session, stanza.id, created))
        effects.extend(self._history_to(session, request, now))
        effects.append(self._subject_to(session))
        return effects

    def _resync(self, occupant: Occupant, session: JID, stanza: Stanza, joining: Element,
                now: float) -> list[Effect]:
        """§7.2.1: a join from an occupant's session "SHOULD send exactly the same stanzas
        to the client as if it actually just joined"."""
        request = HistoryRequest.from_element(joining.find(ns.NS_MUC, "history"))
        occupant.sessions[session] = sanitize_presence(stanza.element)
        occupant.current = session
        effects = self.others_to(session)
        for viewer in self._occupants.values():
            if viewer is not occupant:
                effects.extend(self.to_sessions(viewer, self.presence_of(
                    occupant, viewer, PresenceOptions())))
        effects.extend(self._self_presence(occupant, session, stanza.id, False))
        effects.extend(self._history_to(session, request, now))
        effects.append(self._subject_to(session))
        return effects

    def others_to(self, session: JID) -> list[Effect]:
        viewer = self._sessions[session]
        effects: list[Effect] = []
        for other in self._occupants.values():
            if other is not viewer:
                presence = self.presence_of(other, viewer, PresenceOptions())
                presence.attrs["to"] = str(session)
                effects.append(Send(session, presence))
        return effects

    def _self_presence(self, occupant: Occupant, session: JID, presence_id: str | None,
                       created: bool) -> list[Effect]:
        codes: list[str] = []
        if self.config.non_anonymous:
            codes.append(ns.NON_ANONYMOUS)  # §7.2.3: "the service MUST warn the user"
        if self.config.archiving:
            codes.append(ns.LOGGING_ON)  # §7.2.12 / §14.3
        if created:
            codes.append(ns.CREATED)  # §10.1.1
        effects: list[Effect] = []
        for target in occupant.sessions:
            presence = self.presence_of(occupant, occupant, PresenceOptions(
                self_codes=tuple(codes) if target == session else (),
                presence_id=presence_id if target == session else None))
            presence.attrs["to"] = str(target)
            effects.append(Send(target, presence))
        return effects

    def _history_to(self, session: JID, request: HistoryRequest, now: float) -> list[Effect]:
        offer = self.config.history_limit(self.limits)
        return [Send(session, history_message(entry, session, self.jid))
                for entry in self.history.select(request, offer, now)]

    def _subject_to(self, session: JID) -> Effect:
        """§7.2.15: after the history, the subject (empty if none), stamped when set."""
        subject = self.subject
        sender = self.jid if subject is None or subject.nick is None else \
            self.occupant_jid(subject.nick)
        message = Element(ns.NS_CLIENT, "message", {"from": str(sender), "to": str(session),
                                                   "type": "groupchat", "id": self.new_id()})
        message.sub(ns.NS_CLIENT, "subject", text=subject.text if subject else None)
        if subject is not None:
            message.sub(ns.NS_DELAY, "delay", {"from": str(self.jid),
                                               "stamp": xep0082_stamp(subject.stamp)})
        return Send(session, message)

    def _change_nick(self, occupant: Occupant, session: JID, nick: str, stanza: Stanza
                     ) -> list[Effect]:
        """§7.6: unavailable from the old nick with 303 and the new nick, then available
        from the new one."""
        nick = check_nick(nick, self.limits)
        if len(occupant.sessions) > 1:
            # One nick shared by several sessions moves for all or none; refusing is the
            # lockdown answer of §7.6 ("not-acceptable").
            raise StanzaError(SEC.NOT_ACCEPTABLE, "leave from your other sessions first")
        other = self.occupant_by_nick(nick)
        if other is not None and other is not occupant:
            raise StanzaError(SEC.CONFLICT, "that nickname is in use")
        reserved_by = self._reserved_by(nick)
        if reserved_by is not None and reserved_by != str(session.bare):
            raise StanzaError(SEC.CONFLICT, "that nickname is reserved")
        effects = self.broadcast_presence(occupant, PresenceOptions(
            unavailable=True, nick=nick, codes=(ns.NICK_CHANGED,)))
        del self._occupants[nick_key(occupant.nick)]
        occupant.nick = nick
        self._occupants[nick_key(nick)] = occupant
        occupant.sessions[session] = sanitize_presence(stanza.element)
        effects.extend(self.broadcast_presence(occupant, PresenceOptions()))
        return effects

    def remove_session(self, occupant: Occupant, session: JID, options: PresenceOptions
                       ) -> list[Effect]:
        """One session leaves (§7.14): if the occupant keeps others, the rest of the room
        sees a presence update; otherwise the occupant is gone."""
        if len(occupant.sessions) == 1:
            return self.remove_occupant(occupant, options)
        goodbye = self.presence_of(occupant, occupant, options)
        goodbye.attrs["to"] = str(session)
        self._drop_session(occupant, session)
        return [Send(session, goodbye), *self.broadcast_presence(occupant, PresenceOptions())]

    def remove_occupant(self, occupant: Occupant, options: PresenceOptions,
                        affiliation: Affiliation | None = None) -> list[Effect]:
        """The occupant leaves or is removed: unavailable to everyone, itself included."""
        options.unavailable = True
        effects = self.broadcast_presence(occupant, options, affiliation=affiliation)
        self._drop_occupant(occupant)
        return effects + self._after_departure()

    def session_ended(self, session: JID) -> list[Effect]:
        """The user's server reports the session gone (§7.14: it "is responsible for
        sending unavailable presence on behalf of the user")."""
        occupant = self._sessions.get(session)
        if occupant is None:
            return []
        return self.remove_session(occupant, session, PresenceOptions(unavailable=True))

    def shutdown(self) -> list[Effect]:
        """§11.2: the service stops: each occupant gets unavailable with 332."""
        effects: list[Effect] = []
        for occupant in list(self._occupants.values()):
            effects.extend(self.to_sessions(occupant, self.presence_of(
                occupant, occupant, PresenceOptions(unavailable=True, codes=(ns.SHUTDOWN,)))))
        return effects

    # ------------------------------------------------------------------ messages
    def handle_message(self, stanza: Stanza, now: float) -> list[Effect]:
        """A message to the room (§7.4, §7.8) or to an occupant JID (§7.5)."""
        if stanza.type == "error":
            return []
        if stanza.to is not None and stanza.to.resource is not None:
            return self._private_message(stanza, stanza.to.resource)
        if stanza.type == "groupchat":
            return self._groupchat(stanza, now)
        x = stanza.element.find(ns.NS_MUC_USER, "x")
        if x is not None and (x.find(ns.NS_MUC_USER, "invite") is not None
                              or x.find(ns.NS_MUC_USER, "decline") is not None):
            return admin.handle_invitations(self, stanza, x)
        # §17.2 rule 1: "A service MAY ignore messages that are improperly typed, or reject
        # them with a <bad-request/> error."
        raise StanzaError(SEC.BAD_REQUEST, "messages to the room must be of type groupchat")

    def _groupchat(self, stanza: Stanza, now: float) -> list[Effect]:
        occupant = self._sessions.get(sender_of(stanza))
        if occupant is None:
            # §7.4: "If the sender is not an occupant of the room, the service SHOULD return
            # a <not-acceptable/> error".
            raise StanzaError(SEC.NOT_ACCEPTABLE, "you are not in the room")
        if occupant.role.rank < Role.PARTICIPANT.rank:
            raise StanzaError(SEC.FORBIDDEN, "visitors have no voice in this room")
        el = stanza.element
        subject = el.find(el.ns, "subject")
        if subject is not None and el.find(el.ns, "body") is None \
                and el.find(el.ns, "thread") is None:
            return self._change_subject(occupant, stanza, subject, now)
        reflected = self._reflect(stanza, occupant)
        effects: list[Effect] = []
        if _worth_keeping(reflected):
            entry = HistoryEntry(_stanza_id(reflected), now, occupant.nick, reflected)
            self.history.add(entry)
            if self.config.archiving:
                effects.append(ArchiveMessage(self.jid, entry))  # stored before it is sent
        effects.extend(self.to_everyone(reflected))
        return effects

    def _reflect(self, stanza: Stanza, occupant: Occupant) -> Element:
        """§7.4: the message "from" the occupant JID, with the sender's 'id' (§7.4 stable
        ids) and a stanza-id by the room (XEP-0359)."""
        el = stanza.element
        attrs = {"from": str(self.occupant_jid(occupant.nick)), "type": "groupchat",
                 "id": stanza.id or self.new_id()}
        if XML_LANG in el.attrs:
            attrs[XML_LANG] = el.attrs[XML_LANG]
        kept: list[Element | str] = [c for c in el.children
                                     if isinstance(c, Element) and not self._spoofed(c)]
        message = Element(el.ns, "message", attrs, kept)
        message.sub(ns.NS_SID, "stanza-id", {"id": self.new_id(), "by": str(self.jid)})
        return message

    def _spoofed(self, child: Element) -> bool:
        """SECURITY: what a client must not be able to make the room say: its stanza-ids
        (XEP-0359 §3: a service MUST remove stanza-ids claiming to be by it), its status
        codes (muc#user) and its history delays."""
        if child.ns == ns.NS_MUC_USER:
            return True
        if child.tag in ((ns.NS_SID, "stanza-id"), (ns.NS_DELAY, "delay")):
            return child.get("by", child.get("from")) == str(self.jid)
        return False

    def _change_subject(self, occupant: Occupant, stanza: Stanza, subject: Element,
                        now: float) -> list[Effect]:
        """§8.1: moderators, or participants if muc#roomconfig_changesubject allows."""
        allowed = occupant.role is Role.MODERATOR or (
            self.config.change_subject and occupant.role.rank >= Role.PARTICIPANT.rank)
        if not allowed:
            raise StanzaError(SEC.FORBIDDEN, "you may not change the subject")
        text = subject.text
        if len(text) > self.limits.max_subject_chars:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "the subject is too long")
        self.subject = Subject(text, occupant.nick, now)
        message = Element(ns.NS_CLIENT, "message", {
            "from": str(self.occupant_jid(occupant.nick)), "type": "groupchat",
            "id": stanza.id or self.new_id()})
        message.sub(ns.NS_CLIENT, "subject", text=text)
        effects = self.to_everyone(message)
        if self.config.persistent:
            effects.append(SaveRoom(self.jid))
        return effects

    def _private_message(self, stanza: Stanza, nick: str) -> list[Effect]:
        """§7.5: relayed from the sender's occupant JID, with <x xmlns='...muc#user'/>."""
        if stanza.type == "groupchat":
            raise StanzaError(SEC.BAD_REQUEST, "private messages cannot be groupchat")
        sender = self._sessions.get(sender_of(stanza))
        if sender is None:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "you are not in the room")
        target = self.occupant_by_nick(nick)
        if target is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND, "no such occupant")
        self._check_may_pm(sender)
        el = stanza.element
        attrs = {k: v for k, v in el.attrs.items() if k not in ("to", "from")}
        attrs["from"] = str(self.occupant_jid(sender.nick))
        kept: list[Element | str] = [c for c in el.children
                                     if isinstance(c, Element) and c.ns != ns.NS_MUC_USER]
        message = Element(el.ns, "message", attrs, kept)
        message.sub(ns.NS_MUC_USER, "x")
        return self.to_sessions(target, message)

    def _check_may_pm(self, sender: Occupant) -> None:
        rule = self.config.allow_pm
        if rule == "anyone" or sender.role is Role.MODERATOR or (
                rule == "participants" and sender.role.rank >= Role.PARTICIPANT.rank):
            return
        raise StanzaError(SEC.FORBIDDEN, "private messages are not allowed here")

    # ------------------------------------------------------------------ iq
    def handle_iq(self, stanza: Stanza, now: float) -> list[Effect]:
        """IQs to the room (disco, admin, owner, MAM, ping) or to an occupant JID."""
        nick = stanza.to.resource if stanza.to is not None else None
        if stanza.type in ("result", "error"):
            return self._forwarded_answer(stanza) if nick is not None else []
        if nick is not None:
            return self._iq_to_occupant(stanza, nick)
        payload = next(stanza.element.elements(), None)
        if payload is None:
            raise StanzaError(SEC.BAD_REQUEST, "empty iq")
        return self._iq_to_room(stanza, payload, now)

    def _iq_to_room(self, stanza: Stanza, payload: Element, now: float) -> list[Effect]:
        tag, kind = payload.tag, stanza.type
        if tag == (ns.NS_DISCO_INFO, "query") and kind == "get":
            return [self._reply(stanza, self.disco_info(stanza, payload))]
        if tag == (ns.NS_DISCO_ITEMS, "query") and kind == "get":
            _no_node(payload)
            return [self._reply(stanza, Element(ns.NS_DISCO_ITEMS, "query"))]
        if tag == (ns.NS_PING, "ping") and kind == "get":
            return [self._reply(stanza, None)]
        if tag == (ns.NS_MUC_ADMIN, "query"):
            return admin.handle_admin(self, stanza, payload, now)
        if tag == (ns.NS_MUC_OWNER, "query"):
            return admin.handle_owner(self, stanza, payload, now)
        if tag == (ns.NS_MAM, "query") or (tag == (ns.NS_MAM, "metadata") and kind == "get"):
            self.check_may_read_archive(sender_of(stanza))
            return [QueryArchive(self.jid, stanza)]
        raise StanzaError(SEC.SERVICE_UNAVAILABLE)

    def _reply(self, iq: Stanza, child: Element | None) -> Effect:
        assert iq.from_ is not None
        return Send(iq.from_, result_reply(iq, str(self.jid), child))

    def check_may_read_archive(self, sender: JID) -> None:
        """Room MAM (XEP-0313 §5.2): members of a members-only room, occupants (or
        members) of an open one.

        Raises:
            StanzaError: ``service-unavailable`` if the room keeps no archive, ``forbidden``
                for anyone else.
        """
        if not self.config.archiving:
            raise StanzaError(SEC.SERVICE_UNAVAILABLE, "this room keeps no archive")
        aff = self.affiliation_of(sender)
        if aff is Affiliation.OUTCAST:
            raise StanzaError(SEC.FORBIDDEN)
        if aff.rank >= Affiliation.MEMBER.rank:
            return
        if self.config.members_only or sender not in self._sessions:
            raise StanzaError(SEC.FORBIDDEN, "only occupants may read this room's archive")

    def disco_info(self, stanza: Stanza, query: Element) -> Element:
        """§6.4 room information (features and the muc#roominfo form); §7.12 reserved
        nick discovery on node 'x-roomuser-item'."""
        node = query.get("node")
        sender = sender_of(stanza)
        if node == "x-roomuser-item":
            result = Element(ns.NS_DISCO_INFO, "query", {"node": node})
            nick = self.reserved_nick(sender.bare)
            if nick is not None:
                result.sub(ns.NS_DISCO_INFO, "identity", {"category": "conference",
                                                         "type": "text", "name": nick})
            return result
        if node:
            raise StanzaError(SEC.ITEM_NOT_FOUND)
        result = Element(ns.NS_DISCO_INFO, "query")
        result.sub(ns.NS_DISCO_INFO, "identity", {"category": "conference", "type": "text",
                                                 "name": self.config.name or
                                                 str(self.jid.local)})
        for var in self.features():
            result.sub(ns.NS_DISCO_INFO, "feature", {"var": var})
        result.append(self._roominfo(sender))
        return result

    def features(self) -> list[str]:
        """The room's disco#info features (§6.4, §16.3)."""
        c = self.config
        features = [ns.NS_MUC, ns.NS_STABLE_ID, ns.NS_SELF_PING, ns.NS_DISCO_INFO, ns.NS_SID,
                    "muc_persistent" if c.persistent else "muc_temporary",
                    "muc_membersonly" if c.members_only else "muc_open",
                    "muc_nonanonymous" if c.non_anonymous else "muc_semianonymous",
                    "muc_moderated" if c.moderated else "muc_unmoderated",
                    "muc_passwordprotected" if c.password else "muc_unsecured",
                    "muc_public" if c.public else "muc_hidden"]
        if c.archiving:
            features.append(ns.NS_MAM)
        return sorted(features)

    def _roominfo(self, sender: JID) -> Element:
        form = new_form("result", ns.NS_ROOMINFO)
        add_field(form, "muc#roominfo_description", "text-single", [self.config.description],
                  "Description")
        add_field(form, "muc#roominfo_occupants", "text-single",
                  [str(len(self._occupants))], "Number of occupants")
        # §14.4: the subject is a leak from outside the room; only public rooms, and those
        # in or affiliated with the room, see it.
        insider = sender in self._sessions or self.affiliation_of(sender).rank >= \
            Affiliation.MEMBER.rank
        if self.config.public or insider:
            add_field(form, "muc#roominfo_subject", "text-single",
                      [self.subject.text if self.subject else ""], "Current subject")
        add_field(form, "muc#roomconfig_changesubject", "boolean",
                  ["1" if self.config.change_subject else "0"], "Subject can be modified")
        add_field(form, "muc#maxhistoryfetch", "text-single",
                  [str(self.config.history_limit(self.limits))], "Maximum history")
        if self.config.lang:
            add_field(form, "muc#roominfo_lang", "text-single", [self.config.lang],
                      "Language of discussion")
        return form

    def _iq_to_occupant(self, stanza: Stanza, nick: str) -> list[Effect]:
        """XEP-0410 self-ping; other IQs are passed to the occupant (§17.4 rule 3) with the
        asker's occupant JID as 'from' and a fresh id, so neither learns the other's JID."""
        sender = self._sessions.get(sender_of(stanza))
        payload = next(stanza.element.elements(), None)
        if payload is not None and payload.tag == (ns.NS_PING, "ping") \
                and stanza.type == "get":
            if sender is None or nick_key(sender.nick) != nick_key(nick):
                raise StanzaError(SEC.NOT_ACCEPTABLE, "you are not joined as this nick")
            return [Send(sender_of(stanza), result_reply(stanza, str(stanza.to)))]
        if sender is None:
            raise StanzaError(SEC.BAD_REQUEST, "you are not in the room")  # §6.6
        target = self.occupant_by_nick(nick)
        if target is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND, "no such occupant")
        request_id = self.new_id()
        self._pending[request_id] = PendingIQ(sender_of(stanza), sender.nick, stanza.id or "",
                                               target.current, target.nick)
        while len(self._pending) > MAX_PENDING_IQS:
            self._pending.popitem(last=False)
        attrs = {"type": stanza.type, "id": request_id,
                 "from": str(self.occupant_jid(sender.nick)), "to": str(target.current)}
        forwarded = Element(stanza.element.ns, "iq", attrs, list(stanza.element.children))
        return [Send(target.current, forwarded)]

    def _forwarded_answer(self, stanza: Stanza) -> list[Effect]:
        pending = self._pending.get(stanza.id or "")
        if pending is None or pending.answerer != stanza.from_:
            return []  # unsolicited or from someone else: dropped (RFC 6120 §8.2.3)
        del self._pending[stanza.id or ""]
        attrs = {"type": stanza.type, "id": pending.original_id,
                 "from": str(self.occupant_jid(pending.answerer_nick)),
                 "to": str(pending.asker)}
        answer = Element(stanza.element.ns, "iq", attrs, list(stanza.element.children))
        return [Send(pending.asker, answer)]


def _exit_status(element: Element) -> list[Element | str]:
    """§7.14: "The occupant MAY include normal <status/> information" when leaving."""
    status: list[Element | str] = [c for c in element.children if isinstance(c, Element)
                                   and c.name == "status" and c.ns == element.ns]
    return status[:1]


def _worth_keeping(message: Element) -> bool:
    """Messages with content go to history and the archive; chat states and markers do
    not (XEP-0313 §5.1.1 leaves it to the service)."""
    for child in message.elements():
        if child.tag == (message.ns, "body") or child.ns in ns.NS_OMEMO:
            return True
    return False


def _stanza_id(message: Element) -> str:
    for child in message.find_all(ns.NS_SID, "stanza-id"):
        if child.get("id"):
            return child.attrs["id"]
    raise AssertionError("reflected message without a stanza-id")


def _no_node(query: Element) -> None:
    if query.get("node"):
        raise StanzaError(SEC.ITEM_NOT_FOUND)
