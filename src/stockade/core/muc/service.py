"""A MUC service (XEP-0045 §6): its rooms, who may create them, and every stanza's answer.

``MucService.handle`` takes a stanza addressed to the service or one of its rooms and
returns the effects to carry out; a refused stanza becomes its error reply (§17), never
an exception for the caller.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.muc import _ns as ns
from stockade.core.muc.config import MucLimits, RoomConfig
from stockade.core.muc.effects import Effect, Send
from stockade.core.muc.history import HistoryEntry
from stockade.core.muc.occupant import AffiliationRecord, RoomSnapshot, sender_of
from stockade.core.muc.roles import Affiliation
from stockade.core.muc.room import Room
from stockade.core.stanza import Stanza, error_reply, result_reply
from stockade.core.xml import Element

SEC = StanzaErrorCondition


def random_id() -> str:
    """An unguessable id for stanza-ids and room-made stanzas."""
    return secrets.token_urlsafe(12)


class MucService:
    """The rooms on one service domain (e.g. rooms.example.org)."""

    def __init__(self, domain: str, limits: MucLimits, name: str = "Chatrooms",
                 new_id: Callable[[], str] = random_id,
                 defaults: RoomConfig | None = None) -> None:
        self.domain = domain
        self.name = name
        self.limits = limits
        self.defaults = defaults or RoomConfig()  # a new room's configuration
        self.new_id = new_id
        self.rooms: dict[JID, Room] = {}
        self._index: dict[JID, set[JID]] = {}  # occupant session -> rooms it is in

    # ------------------------------------------------------------------ rooms
    def restore(self, snapshot: RoomSnapshot, history: Iterable[HistoryEntry] = ()) -> Room:
        """Bring back a stored persistent room (unlocked, empty)."""
        room = Room(snapshot.jid, self.limits, self.new_id, self._index,
                    config=snapshot.config, affiliations=snapshot.affiliations,
                    subject=snapshot.subject, created=snapshot.created, history=history)
        self.rooms[room.jid] = room
        return room

    def rooms_owned_by(self, bare: JID) -> int:
        """How many rooms list ``bare`` as an owner."""
        return sum(1 for room in self.rooms.values()
                   if room.affiliation_of(bare) is Affiliation.OWNER)

    def _create(self, jid: JID, creator: JID, now: float) -> Room:
        """§10.1.1: a new, locked room with its creator as owner.

        Raises:
            StanzaError: ``not-allowed`` when the service or the user has too many rooms
                (§10.1.1: "If access is restricted ... the service MUST return a
                <not-allowed/> error"; §14.6 suggests limiting rooms per user).
        """
        if len(self.rooms) >= self.limits.max_rooms:
            raise StanzaError(SEC.NOT_ALLOWED, "the service has too many rooms")
        if self.rooms_owned_by(creator.bare) >= self.limits.max_rooms_per_user:
            raise StanzaError(SEC.NOT_ALLOWED, "you own too many rooms")
        owner = {str(creator.bare): AffiliationRecord(Affiliation.OWNER)}
        room = Room(jid, self.limits, self.new_id, self._index, config=self.defaults,
                    affiliations=owner, created=now, locked=True)
        self.rooms[jid] = room
        return room

    def _forget_closed(self, room: Room) -> None:
        if room.closed and self.rooms.get(room.jid) is room:
            del self.rooms[room.jid]

    # ------------------------------------------------------------------ stanzas
    def handle(self, stanza: Stanza, now: float) -> list[Effect]:
        """Everything the service does about one stanza addressed to it."""
        if stanza.from_ is None or stanza.to is None:
            return []
        try:
            return self._dispatch(stanza, now)
        except StanzaError as error:
            return self.error(stanza, error)

    def error(self, stanza: Stanza, error: StanzaError) -> list[Effect]:
        """The error reply (never to an error, RFC 6120 §8.3.1), marked ``by`` the room and,
        for presence, with the MUC <x/> (§7.2.5 examples)."""
        if stanza.type == "error" or stanza.from_ is None:
            return []
        reply = error_reply(stanza.element, error)
        err = reply.find(reply.ns, "error")
        if err is not None and stanza.to is not None:
            err.attrs["by"] = str(stanza.to.bare)
        if stanza.kind == "presence":
            reply.children.insert(0, Element(ns.NS_MUC, "x"))
        return [Send(stanza.from_, reply)]

    def _dispatch(self, stanza: Stanza, now: float) -> list[Effect]:
        assert stanza.to is not None
        if stanza.to.local is None:
            return self._to_service(stanza)
        room = self.rooms.get(stanza.to.bare)
        if room is None:
            return self._to_missing_room(stanza, now)
        if stanza.type != "unavailable":
            room.hide_if_locked(sender_of(stanza))
        try:
            if stanza.kind == "presence":
                return room.handle_presence(stanza, now)
            if stanza.kind == "message":
                return room.handle_message(stanza, now)
            return room.handle_iq(stanza, now)
        finally:
            self._forget_closed(room)

    def _to_missing_room(self, stanza: Stanza, now: float) -> list[Effect]:
        """§7.2.11 creation by entering; everything else meets item-not-found (§17.2)."""
        assert stanza.to is not None
        if stanza.type in ("error", "result", "unavailable"):
            return []
        if stanza.kind == "presence":
            if stanza.type != "":
                return []  # probes and subscriptions create nothing (§17.3 rule 1)
            joining = stanza.element.find(ns.NS_MUC, "x")
            if joining is None:
                raise StanzaError(SEC.ITEM_NOT_FOUND, "no such room")
            sender = sender_of(stanza)
            if stanza.to.resource is None:
                raise StanzaError(SEC.JID_MALFORMED, "a room nickname is required")
            room = self._create(stanza.to.bare, sender, now)
            try:
                return room.join(sender, stanza.to.resource, stanza, joining, now,
                                 created=True)
            except StanzaError:
                del self.rooms[room.jid]  # a refused creation leaves nothing behind
                raise
        raise StanzaError(SEC.ITEM_NOT_FOUND, "no such room")

    def _to_service(self, stanza: Stanza) -> list[Effect]:
        """§6.1-§6.3: the service's own disco#info and its public rooms."""
        if stanza.kind != "iq":
            if stanza.kind == "message":
                raise StanzaError(SEC.SERVICE_UNAVAILABLE)
            return []
        if stanza.type not in ("get", "set"):
            return []
        payload = next(stanza.element.elements(), None)
        tag = payload.tag if payload is not None else None
        if stanza.type == "get" and payload is not None and payload.get("node"):
            raise StanzaError(SEC.ITEM_NOT_FOUND)
        if stanza.type == "get" and tag == (ns.NS_DISCO_INFO, "query"):
            return [self._reply(stanza, self._service_info())]
        if stanza.type == "get" and tag == (ns.NS_DISCO_ITEMS, "query"):
            return [self._reply(stanza, self._public_rooms())]
        if stanza.type == "get" and tag == (ns.NS_PING, "ping"):
            return [self._reply(stanza, None)]
        raise StanzaError(SEC.SERVICE_UNAVAILABLE)

    def _reply(self, iq: Stanza, child: Element | None) -> Effect:
        assert iq.from_ is not None
        return Send(iq.from_, result_reply(iq, self.domain, child))

    def _service_info(self) -> Element:
        query = Element(ns.NS_DISCO_INFO, "query")
        query.sub(ns.NS_DISCO_INFO, "identity", {"category": "conference", "type": "text",
                                                "name": self.name})
        for var in sorted((ns.NS_MUC, ns.NS_STABLE_ID, ns.NS_SELF_PING, ns.NS_DISCO_INFO,
                           ns.NS_DISCO_ITEMS, ns.NS_SID, ns.NS_MAM)):
            query.sub(ns.NS_DISCO_INFO, "feature", {"var": var})
        return query

    def _public_rooms(self) -> Element:
        """§6.3: "a full list of the public rooms it hosts (i.e., not ... any rooms that are
        hidden)"; locked rooms do not exist yet."""
        query = Element(ns.NS_DISCO_ITEMS, "query")
        for jid, room in sorted(self.rooms.items(), key=lambda kv: str(kv[0])):
            if room.config.public and not room.locked:
                query.sub(ns.NS_DISCO_ITEMS, "item", {"jid": str(jid),
                                                     "name": room.config.name or
                                                     str(jid.local)})
        return query

    # ------------------------------------------------------------------ sessions
    def rooms_of(self, session: JID) -> list[JID]:
        """The rooms a full JID is an occupant session of."""
        return sorted(self._index.get(session, ()), key=str)

    def leave(self, session: JID, room_jid: JID) -> list[Effect]:
        """A user's session went away: it leaves the room (§7.14: the user's server "is
        responsible for sending unavailable presence on behalf of the user")."""
        room = self.rooms.get(room_jid)
        if room is None:
            return []
        effects = room.session_ended(session)
        self._forget_closed(room)
        return effects

    def shutdown(self) -> list[Effect]:
        """The service stops: every occupant is told (332, §11.2)."""
        effects: list[Effect] = []
        for room in self.rooms.values():
            effects.extend(room.shutdown())
        return effects
