"""Multi-User Chat, XEP-0045, as a component on ``rooms.<domain>``; room archives (XEP-0313)
and self-ping (XEP-0410).

The rules are the sans-I/O ``stockade.core.muc``: this module feeds it stanzas, carries out
the effects it returns (deliveries, room snapshots, archive rows, archive queries) one room
at a time in order, loads persistent rooms at start and removes sessions that end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from stockade.core.errors import JIDError, RemoteProtocolError, StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.mam import (
    fin_element,
    metadata_element,
    parse_query,
    query_form,
    result_text,
)
from stockade.core.muc import (
    Affiliation,
    AffiliationRecord,
    ArchiveMessage,
    DeleteRoom,
    Effect,
    HistoryEntry,
    MucLimits,
    MucService,
    QueryArchive,
    RoomConfig,
    RoomSnapshot,
    SaveRoom,
    Send,
    Subject,
)
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element, parse_fragment, serialize
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import Component, Hook, Module, Registration, Spec, Stage, StanzaEvent
from stockade.server.session import Session
from stockade.storage.archive import ArchiveFilter, ArchiveIdNotFound
from stockade.storage.base import StorageError
from stockade.storage.muc import StoredAffiliation, StoredRoom

if TYPE_CHECKING:
    from stockade.server.host import Host

log = logging.getLogger("stockade.muc")
SEC = StanzaErrorCondition
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DEFAULT_MAM_PAGE = 100  # results per room archive query when [mam] is absent
STOP_TIMEOUT_S = 5.0  # how long shutdown waits for room work in progress


def _label(value: Any) -> str | None:
    return None if _LABEL.fullmatch(value) else "must be one DNS label (a-z, 0-9, '-')"


register_section("muc", {
    "enabled": Option(bool, True, "Offer multi-user chat rooms (XEP-0045) on "
                      "<subdomain>.<domain>."),
    "subdomain": Option(str, "rooms", "The rooms service's label in front of the domain.",
                        _label),
    "max_rooms": Option(int, 1000, "Rooms the service holds at most (further creations are "
                        "refused with not-allowed).", int_range(1, 1_000_000)),
    "max_rooms_per_user": Option(int, 20, "Rooms one user may own.", int_range(1, 10_000)),
    "max_occupants": Option(int, 200, "Occupants per room (the highest maxusers an owner "
                            "may set).", int_range(2, 100_000)),
    "max_nick_chars": Option(int, 64, "Longest room nickname accepted.", int_range(1, 1023)),
    "max_subject_chars": Option(int, 1000, "Longest room subject accepted.",
                                int_range(1, 100_000)),
    "history_max_stanzas": Option(int, 50, "Messages a room keeps for history on entering "
                                  "(the highest muc#maxhistoryfetch).", int_range(0, 1000)),
    "max_affiliations": Option(int, 1000, "Owners, admins, members and outcasts per room.",
                               int_range(1, 100_000)),
    "archive_by_default": Option(bool, True, "New rooms archive their messages (XEP-0313 on "
                                 "the room JID, history kept across restarts) until an "
                                 "owner turns it off; occupants are told (status 170)."),
})


def limits_from(options: dict[str, Any]) -> MucLimits:
    """The core's limits from the [muc] section."""
    return MucLimits(
        max_rooms=options["max_rooms"], max_rooms_per_user=options["max_rooms_per_user"],
        max_occupants=options["max_occupants"], max_nick_chars=options["max_nick_chars"],
        max_subject_chars=options["max_subject_chars"],
        history_max_stanzas=options["history_max_stanzas"],
        max_affiliations=options["max_affiliations"])


# ---------------------------------------------------------------------- storage mapping


def stored_room(snapshot: RoomSnapshot) -> StoredRoom:
    """A room snapshot as storage keeps it."""
    subject = snapshot.subject
    return StoredRoom(
        str(snapshot.jid), json.dumps(snapshot.config.to_dict(), separators=(",", ":")),
        snapshot.created, subject.text if subject else None,
        subject.nick if subject else None, subject.stamp if subject else None,
        tuple(StoredAffiliation(jid, record.affiliation.value, record.nick, record.reason)
              for jid, record in sorted(snapshot.affiliations.items())))


def room_snapshot(stored: StoredRoom) -> RoomSnapshot:
    """Read a stored room back.

    Raises:
        ValueError: the stored room is unreadable (bad JID, configuration or affiliation).
    """
    try:
        jid = JID.parse(stored.jid)
    except JIDError as exc:
        raise ValueError(str(exc)) from None
    data = json.loads(stored.config)
    if not isinstance(data, dict):
        raise ValueError("room configuration is not a JSON object")
    subject = None
    if stored.subject is not None:
        subject = Subject(stored.subject, stored.subject_nick, stored.subject_stamp or 0.0)
    affiliations = {a.jid: AffiliationRecord(Affiliation(a.affiliation), a.nick, a.reason)
                    for a in stored.affiliations}
    return RoomSnapshot(jid, RoomConfig.from_dict(data), affiliations, subject, stored.created)


# ---------------------------------------------------------------------- ordering


class _RoomQueue:
    """Carries out effect batches one room at a time, in the order they were made.

    Each stanza's effects are computed at once by the core (so state changes in arrival
    order); carrying them out may wait (archive rows, delivery hooks), and a later batch of
    the same room must not overtake it, or occupants would see messages out of order.
    """

    def __init__(self) -> None:
        self._tails: dict[JID, asyncio.Future[None]] = {}

    def submit(self, room: JID, work: Awaitable[None]) -> asyncio.Future[None]:
        """Schedule ``work`` after the room's earlier batches; returns its task."""
        previous = self._tails.get(room)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[room] = done
        return asyncio.ensure_future(self._after(room, previous, done, work))

    async def _after(self, room: JID, previous: asyncio.Future[None] | None,
                     done: asyncio.Future[None], work: Awaitable[None]) -> None:
        try:
            if previous is not None:
                await previous
            await work
        finally:
            done.set_result(None)
            if self._tails.get(room) is done:
                del self._tails[room]


# ---------------------------------------------------------------------- the module


class MUC(Module):
    """XEP-0045 rooms on the ``rooms`` component."""

    name = "xep0045_muc"
    specs = (
        Spec("XEP-0045", "Multi-User Chat", "1.35.5", "partial",
             "rooms, roles, affiliations, configuration, history, invitations, persistence "
             "and room archives (XEP-0313 on the room JID); no room registration (§7.10), "
             "voice requests (§7.13) or presence-broadcast filter"),
        Spec("XEP-0410", "MUC Self-Ping (Schrödinger's Chat)", "1.1.0"),
    )
    depends = ("xep0030_disco",)
    config_section = "muc"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self.domain = f"{self.options['subdomain']}.{host.domain}"
        self.service = MucService(self.domain, limits_from(self.options),
                                  defaults=RoomConfig(archiving=self.options["archive_by_default"]))
        self._queue = _RoomQueue()
        self._tasks: set[asyncio.Future[None]] = set()

    def registrations(self) -> Iterable[Registration]:
        """The component, and a hook seeing a session's broadcast unavailable presence."""
        yield Component(self.options["subdomain"], "Chatrooms", self.on_stanza)
        yield Hook(Stage.SENT, frozenset({"presence"}), self._on_presence_sent)

    @property
    def _page_size(self) -> int:
        try:
            return int(self.host.config["mam"]["max_page_size"])
        except KeyError:
            return DEFAULT_MAM_PAGE

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the persistent rooms (with their recent history if they are archived)."""
        for stored in await self.host.storage.list_muc_rooms():
            try:
                snapshot = room_snapshot(stored)
            except (ValueError, TypeError):
                log.warning("unreadable stored room skipped", extra={"room": stored.jid})
                continue
            history = await self._stored_history(snapshot)
            self.service.restore(snapshot, history)
        log.info("rooms loaded", extra={"rooms": len(self.service.rooms),
                                        "service": self.domain})

    async def _stored_history(self, snapshot: RoomSnapshot) -> list[HistoryEntry]:
        limit = snapshot.config.history_limit(self.service.limits)
        if not snapshot.config.archiving or limit == 0:
            return []
        page = await self.host.storage.archive_query(str(snapshot.jid), ArchiveFilter(),
                                                     limit=limit, backwards=True)
        history = []
        for message in page.messages:
            try:
                element = parse_fragment(message.stanza)
                nick = JID.parse(message.with_jid).resource or ""
            except (RemoteProtocolError, JIDError):
                continue
            history.append(HistoryEntry(message.id, message.stamp_us / 1e6, nick, element))
        return history

    async def stop(self) -> None:
        """§11.2: occupants hear that the service shuts down (332)."""
        for effect in self.service.shutdown():
            if isinstance(effect, Send):
                self._send_now(effect)
        pending = list(self._tasks)
        if pending:
            # Work already accepted finishes (storage is still open), within reason.
            await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)

    async def on_session_end(self, session: Session) -> None:
        """The session leaves every room it was in."""
        await self._leave_everywhere(session.jid)

    def _on_presence_sent(self, event: StanzaEvent) -> Awaitable[None] | None:
        # XEP-0045 §7.14: a general unavailable presence is the user's exit from every
        # room too ("the user's server will broadcast that stanza to the client's occupant
        # JID"); the presence module only knows the directed presence it routed itself.
        stanza, origin = event.stanza, event.origin
        if origin is None or stanza.to is not None or stanza.type != "unavailable":
            return None
        return self._leave_everywhere(origin.jid)

    async def _leave_everywhere(self, session: JID) -> None:
        rooms = self.service.rooms_of(session)
        batches = [self._queue.submit(room, self._apply(self.service.leave(session, room)))
                   for room in rooms]
        if batches:
            await asyncio.gather(*batches)

    # ------------------------------------------------------------------ stanzas
    def on_stanza(self, stanza: Stanza, origin: Session | None) -> Awaitable[None] | None:
        """Everything addressed to the service or its rooms."""
        try:
            effects = self.service.handle(stanza, time.time())
        except Exception:
            # A bug must not cost the sender an answer or the server its stream.
            log.exception("room stanza failed", extra={"service": self.domain})
            effects = self.service.error(stanza, StanzaError(SEC.INTERNAL_SERVER_ERROR))
        if not effects:
            return None
        key = stanza.to.bare if stanza.to is not None else JID(None, self.domain, None)
        task = self._queue.submit(key, self._apply(effects))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            try:
                await self._apply_one(effect)
            except Exception:
                log.exception("room effect failed", extra={"effect": type(effect).__name__})

    async def _apply_one(self, effect: Effect) -> None:
        if isinstance(effect, Send):
            work = self._send_now(effect)
            if work is not None:
                await work
        elif isinstance(effect, ArchiveMessage):
            await self._archive(effect)
        elif isinstance(effect, SaveRoom):
            await self._save(effect.room)
        elif isinstance(effect, DeleteRoom):
            await self.host.storage.delete_muc_room(str(effect.room))
            await self.host.storage.archive_delete_owner(str(effect.room))
        elif isinstance(effect, QueryArchive):
            await self._answer_archive_query(effect)

    def _send_now(self, effect: Send) -> Awaitable[None] | None:
        to, element = effect.to, effect.element
        if to.domain == self.domain:
            return None  # never to ourselves (an invitation to a room JID, say)
        if element.name != "message":
            self.host.router.deliver_local(to, element)
            return None
        type_ = element.attrs.get("type", "normal")
        if type_ == "groupchat" and self._deliver_to_draining(to, element):
            return None
        # Through the router, so the recipient's hooks (archive, carbons, blocking) run.
        stanza = Stanza(element, "message", type_, to, _jid(element.get("from")),
                        element.get("id"))
        return self.host.router.route_message(stanza, None)

    def _deliver_to_draining(self, to: JID, element: Element) -> bool:
        """Room traffic for a session still taking its offline messages (just after its
        initial presence): the router bounces groupchat to a resource it will not write to
        yet (RFC 6121 §8.5.3.2.1), which would lose the message (a join's subject, say).
        It cannot wait in offline storage either (groupchat is never stored), so it goes
        straight to the connection; it may pass stored one-to-one messages, which is
        harmless. Returns whether it was delivered here."""
        session = self.host.session_for(to)
        if session is None or not session.draining or not session.conn.is_open:
            return False
        session.deliver(element)
        return True

    async def _archive(self, effect: ArchiveMessage) -> None:
        entry = effect.entry
        try:
            await self.host.storage.archive_append(
                str(effect.room), entry.stanza_id, int(entry.stamp * 1_000_000),
                str(JID(effect.room.local, effect.room.domain, entry.nick)),
                serialize(entry.element, None))
        except StorageError:
            # The message still reaches the occupants; only the archive misses it.
            log.exception("room archive append failed", extra={"room": str(effect.room)})

    async def _save(self, jid: JID) -> None:
        room = self.service.rooms.get(jid)
        if room is not None and room.config.persistent:
            await self.host.storage.put_muc_room(stored_room(room.snapshot()))
        else:
            await self.host.storage.delete_muc_room(str(jid))

    # ------------------------------------------------------------------ room archives
    async def _answer_archive_query(self, effect: QueryArchive) -> None:
        iq = effect.iq
        try:
            reply = await self._archive_reply(effect.room, iq)
        except StanzaError as error:
            for send in self.service.error(iq, error):
                if isinstance(send, Send):
                    self._send_now(send)
            return
        if iq.from_ is not None:
            self.host.router.deliver_local(iq.from_, reply)

    async def _archive_reply(self, room: JID, iq: Stanza) -> Element:
        """XEP-0313 §4 on the room's archive (the core checked who may ask)."""
        payload = next(iq.element.elements())
        owner = str(room)
        if payload.name == "metadata":
            bounds = await self.host.storage.archive_bounds(owner)
            first, last = ((bounds[0].id, bounds[0].stamp_us),
                           (bounds[1].id, bounds[1].stamp_us)) if bounds else (None, None)
            return result_reply(iq, owner, metadata_element(first, last))
        if iq.type == "get":
            return result_reply(iq, owner, query_form())
        query = parse_query(payload, max_page_size=self._page_size)
        selection = ArchiveFilter(
            with_jid=str(query.with_jid) if query.with_jid is not None else None,
            start_us=query.start_us, end_us=query.end_us, after_id=query.after_id,
            before_id=query.before_id, ids=query.ids)
        try:
            page = await self.host.storage.archive_query(
                owner, selection, limit=query.page.max, after=query.page.after,
                before=query.page.before, backwards=query.page.backwards)
        except ArchiveIdNotFound:
            raise StanzaError(SEC.ITEM_NOT_FOUND) from None
        assert iq.from_ is not None
        session = self.host.session_for(iq.from_)
        if session is None or not session.conn.is_open:
            raise StanzaError(SEC.RESOURCE_CONSTRAINT, "read the pending stanzas first")
        for message in reversed(page.messages) if query.flip else page.messages:
            session.conn.deliver_raw(result_text(
                to=str(iq.from_), archive=owner, message_id=self.service.new_id(),
                query_id=query.query_id, archive_id=message.id, stamp_us=message.stamp_us,
                stanza_xml=message.stanza))
        first_id = page.messages[0].id if page.messages else None
        last_id = page.messages[-1].id if page.messages else None
        return result_reply(iq, owner, fin_element(first_id, last_id, page.count,
                                                   complete=page.complete))


def _jid(value: str | None) -> JID | None:
    try:
        return JID.parse(value) if value else None
    except JIDError:
        return None


MODULES = (MUC,)
