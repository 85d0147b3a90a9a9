"""Message Archive Management for user archives: XEP-0313 queries with XEP-0059 paging,
XEP-0359 stanza ids on archived messages, XEP-0441 preferences, XEP-0334 storage hints.

Every eligible message a local session sends goes into the sender's archive (Stage.SENT)
and every eligible message to a local account into the recipient's (Stage.MESSAGE_INBOUND),
each exactly once however many resources get copies. The recipient's row is written before
delivery and the delivered copy carries the same <stanza-id/> as the archived one, so a
client can match live, offline and archived copies. The protocol rules are the sans-I/O
``stockade.core.mam``; this module moves stanzas and rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.mam import (
    NS_MAM,
    NS_MAM_EXTENDED,
    NS_SID,
    ArchivePrefs,
    ArchiveQuery,
    archived_xml,
    fin_element,
    is_archivable,
    metadata_element,
    parse_query,
    query_form,
    restamp,
    result_text,
)
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.config import Option, choice, int_range, register_section
from stockade.server.module import (
    AccountFeature,
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
from stockade.storage.archive import ArchiveFilter, ArchiveIdNotFound, ArchivePage
from stockade.storage.base import AccountNotFound, StorageError

if TYPE_CHECKING:
    from stockade.server.host import Host

log = logging.getLogger("stockade.mam")
SEC = StanzaErrorCondition
PREFS_KEY = "prefs"  # account-data key (namespace NS_MAM) of the XEP-0441 preferences
EXPIRY_BATCH = 500  # rows deleted per retention transaction
# Preferences are read for both sides of every message; kept a while in memory so that a
# read does not queue behind the archive writes on the one storage thread. A change made
# through this server applies at once; the TTL bounds what a change behind its back (an
# account deleted with the CLI and made again) can leave behind.
PREFS_CACHE_SIZE = 10_000
PREFS_CACHE_TTL_S = 60.0
_DAY_US = 86_400 * 1_000_000

register_section("mam", {
    "enabled": Option(bool, True, "Archive one-to-one messages (XEP-0313) and answer "
                      "archive queries."),
    "retention_days": Option(int, 0, "Days archived messages are kept; 0 keeps them "
                             "forever.", int_range(0, 100 * 365)),
    "max_page_size": Option(int, 100, "Most messages one archive query returns (larger "
                            "requests are cut to this).", int_range(1, 1000)),
    "default_prefs": Option(str, "always", "What is archived for an account that set no "
                            "preference: always, roster (contacts only) or never.",
                            choice("always", "roster", "never")),
})


def _now_us() -> int:
    return time.time_ns() // 1000


class _IdSource:
    """Archive ids: 96 random bits each, base64url. XEP-0313 §3: "A server-assigned UID
    that MUST be unpredictable and unique". Random bytes are drawn from the OS 256 ids at
    a time: two ids per message made a getrandom call each a visible cost."""

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def __call__(self) -> str:
        if self._next >= len(self._pool):
            self._pool, self._next = secrets.token_bytes(12 * 256), 0
        chunk = self._pool[self._next:self._next + 12]
        self._next += 12
        return base64.urlsafe_b64encode(chunk).decode("ascii")


_new_id = _IdSource()


class MAM(Module):
    """User archives: archiving hooks, queries, preferences, retention."""

    name = "xep0313_mam"
    specs = (
        Spec("XEP-0059", "Result Set Management", "1.0", "partial",
             "archive paging; no <index/> jumps"),
        Spec("XEP-0313", "Message Archive Management", "1.1.1", "complete",
             "user archives with #extended; groupchat is not kept in user archives"),
        Spec("XEP-0334", "Message Processing Hints", "0.3.0", "partial",
             "no-store, no-permanent-store, store (archive); no-copy (carbons)"),
        Spec("XEP-0359", "Unique and Stable Stanza IDs", "0.7.0"),
        Spec("XEP-0441", "Message Archive Management Preferences", "0.2.0"),
    )
    depends = ("xep0030_disco", "rfc6121_roster")
    config_section = "mam"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._expiry: asyncio.Task[None] | None = None
        self.expiry_interval_s = 3600.0
        self._prefs: OrderedDict[str, tuple[float, ArchivePrefs]] = OrderedDict()
        self._prefs_changes = 0  # bumped by every set: a read begun earlier is not cached

    def registrations(self) -> Iterable[Registration]:
        """Account features, the archive IQs and the archiving hooks."""
        for var in (NS_MAM, NS_MAM_EXTENDED, NS_SID):
            yield AccountFeature(var)
        # Another account's archive answers 'forbidden' (XEP-0313 §8.1), the same whether
        # or not the account exists.
        archive = Target.SELF | Target.ACCOUNT
        yield IQHandler("set", (NS_MAM, "query"), archive, self.on_query)
        yield IQHandler("get", (NS_MAM, "query"), archive, self.on_form)
        yield IQHandler("get", (NS_MAM, "metadata"), archive, self.on_metadata)
        yield IQHandler("get", (NS_MAM, "prefs"), Target.SELF, self.on_get_prefs)
        yield IQHandler("set", (NS_MAM, "prefs"), Target.SELF, self.on_set_prefs)
        # Late, so filters that reject a message (blocking) run first: a rejected message
        # does not belong in the archive (XEP-0313 §6.1).
        yield Hook(Stage.SENT, frozenset({"message"}), self.archive_sent, order=70)
        yield Hook(Stage.SENT, frozenset({"message"}), self.strip_sender_id, order=95)
        yield Hook(Stage.MESSAGE_INBOUND, frozenset({"message"}), self.archive_inbound,
                   order=80)

    # ------------------------------------------------------------------ archiving
    def archive_sent(self, event: StanzaEvent) -> Awaitable[None] | None:
        """The sender's copy of a message a local session sends.

        The copy handed on carries the sender's stanza-id so that sent carbons (XEP-0280,
        later on this stage) show it, as XEP-0313 §3.5 asks; :meth:`strip_sender_id`
        removes it before the message leaves for its recipient. Synchronous when the
        account's preferences are cached (nearly always): no task per message.
        """
        origin, stanza = event.origin, event.stanza
        if origin is None or not is_archivable(stanza.element, stanza.type):
            return None
        own = origin.jid.bare
        to = stanza.to if stanza.to is not None else own
        if to.bare == own or to.local is None:
            return None  # to oneself: archived once, on the way in; to a server: not a chat
        wanted = self._wanted_now(origin.username, to)
        if wanted is None:
            return self._archive_sent_later(event, origin.username, own, to)
        if wanted:
            self._archive_sent(event, origin.username, own, to)
        return None

    async def _archive_sent_later(self, event: StanzaEvent, username: str, own: JID,
                                  to: JID) -> None:
        if await self._wanted(username, to):
            self._archive_sent(event, username, own, to)

    def _archive_sent(self, event: StanzaEvent, username: str, own: JID, to: JID) -> None:
        archive_id = _new_id()
        element = restamp(event.stanza.element, {str(own)}, (archive_id, str(own)))
        self._append_soon(username, archive_id, str(to), archived_xml(element))
        event.stanza = _replaced(event.stanza, element)

    def _append_soon(self, username: str, archive_id: str, peer: str, stanza: str) -> None:
        """Archive without holding the message up.

        The archive is history, not the delivery path: the live copy (or the offline copy,
        which is stored durably before the sender's next stanza is read) is what must not
        be lost. Queued rows share transactions (one disk sync for many messages, from every
        connection), and every archive read waits for the rows queued before it, so a client
        always finds every message it sent or received. A crash can lose the last
        milliseconds of archive rows, never a message.
        """
        write = self.host.storage.archive_enqueue(username, archive_id, _now_us(), peer,
                                                  stanza)
        write.add_done_callback(functools.partial(_log_failure, username))

    def strip_sender_id(self, event: StanzaEvent) -> None:
        """XEP-0313 §3.5: "Servers MUST NOT include the <stanza-id/> element in messages
        addressed to JIDs that do not have permissions to access the archive"."""
        if event.origin is None:
            return
        own = {str(event.origin.jid.bare)}
        element = restamp(event.stanza.element, own)
        if element is not event.stanza.element:
            event.stanza = _replaced(event.stanza, element)

    def archive_inbound(self, event: StanzaEvent) -> Awaitable[None] | None:
        """The recipient's copy: queued for the archive, and the delivered copy carries its
        id. Synchronous when the account's preferences are cached."""
        stanza, account = event.stanza, event.account
        if account is None:
            return None
        owner = JID(account, self.host.domain, None)
        owned = {str(owner), self.host.domain}
        element = restamp(stanza.element, owned)  # forged ids go whether or not we archive
        if element is not stanza.element:
            event.stanza = _replaced(stanza, element)
        if not is_archivable(element, stanza.type):
            return None
        peer = stanza.from_ if stanza.from_ is not None else JID(None, self.host.domain, None)
        wanted = self._wanted_now(account, peer)
        if wanted is None:
            return self._archive_inbound_later(event, account, owner, peer)
        if wanted:
            self._archive_inbound(event, account, owner, peer)
        return None

    async def _archive_inbound_later(self, event: StanzaEvent, account: str, owner: JID,
                                     peer: JID) -> None:
        if await self._wanted(account, peer):
            self._archive_inbound(event, account, owner, peer)

    def _archive_inbound(self, event: StanzaEvent, account: str, owner: JID,
                         peer: JID) -> None:
        archive_id = _new_id()
        element = restamp(event.stanza.element, {str(owner), self.host.domain},
                          (archive_id, str(owner)))
        self._append_soon(account, archive_id, str(peer), archived_xml(element))
        event.stanza = _replaced(event.stanza, element)

    def _wanted_now(self, username: str, peer: JID) -> bool | None:
        """:meth:`_wanted` from cached preferences; None when that needs storage (not
        cached, or the 'roster' rule)."""
        cached = self._prefs.get(username)
        if cached is None or time.monotonic() - cached[0] >= PREFS_CACHE_TTL_S:
            return None
        rule = cached[1].rule_for(peer)
        return None if rule == "roster" else rule == "always"

    async def _wanted(self, username: str, peer: JID) -> bool:
        """XEP-0441: whether the account's preferences archive messages with ``peer``."""
        rule = (await self.prefs(username)).rule_for(peer)
        if rule == "roster":
            return await self.host.storage.get_roster_item(username, str(peer.bare)) is not None
        return rule == "always"

    # ------------------------------------------------------------------ preferences
    async def prefs(self, username: str) -> ArchivePrefs:
        """The account's preferences, or the configured default."""
        now = time.monotonic()
        cached = self._prefs.get(username)
        if cached is not None and now - cached[0] < PREFS_CACHE_TTL_S:
            self._prefs.move_to_end(username)
            return cached[1]
        changes = self._prefs_changes
        prefs = await self._load_prefs(username)
        if changes == self._prefs_changes:
            self._remember(username, prefs, now)
        return prefs

    async def _load_prefs(self, username: str) -> ArchivePrefs:
        stored = await self.host.storage.get_data(username, NS_MAM, PREFS_KEY)
        if stored is not None:
            try:
                return ArchivePrefs.from_json(stored)
            except ValueError:
                log.warning("unreadable archive preferences", extra={"account": username})
        return ArchivePrefs(self.options["default_prefs"])

    def _remember(self, username: str, prefs: ArchivePrefs, now: float) -> None:
        self._prefs[username] = (now, prefs)
        self._prefs.move_to_end(username)
        while len(self._prefs) > PREFS_CACHE_SIZE:
            self._prefs.popitem(last=False)

    async def on_get_prefs(self, iq: Stanza, session: Session) -> Element:
        """XEP-0441 §2.1: the current preferences."""
        return result_reply(iq, None, (await self.prefs(session.username)).to_element())

    async def on_set_prefs(self, iq: Stanza, session: Session) -> Element:
        """XEP-0441 §2.1: replace the preferences; the reply shows what applies now."""
        payload = iq.element.find(NS_MAM, "prefs")
        assert payload is not None  # the router dispatched on it
        prefs = ArchivePrefs.from_element(payload)
        await self.host.storage.put_data(session.username, NS_MAM, PREFS_KEY, prefs.to_json())
        self._prefs_changes += 1
        self._remember(session.username, prefs, time.monotonic())
        return result_reply(iq, None, prefs.to_element())

    # ------------------------------------------------------------------ queries
    async def on_query(self, iq: Stanza, session: Session) -> Element:
        """XEP-0313 §4: send the page's results, then the IQ result with <fin/>."""
        _own_archive_only(iq, session)
        payload = iq.element.find(NS_MAM, "query")
        assert payload is not None
        query = parse_query(payload, max_page_size=self.options["max_page_size"])
        if not session.conn.is_open:
            # A client that does not read gets no more results queued behind the others.
            raise StanzaError(SEC.RESOURCE_CONSTRAINT, "read the pending stanzas first")
        page = await self._page(session.username, query)
        archive = str(session.jid.bare)
        for message in reversed(page.messages) if query.flip else page.messages:
            session.conn.deliver_raw(result_text(
                to=str(session.jid), archive=archive, message_id=_new_id(),
                query_id=query.query_id, archive_id=message.id, stamp_us=message.stamp_us,
                stanza_xml=message.stanza))
        first = page.messages[0].id if page.messages else None
        last = page.messages[-1].id if page.messages else None
        fin = fin_element(first, last, page.count, complete=page.complete)
        return result_reply(iq, str(iq.to) if iq.to is not None else None, fin)

    async def _page(self, username: str, query: ArchiveQuery) -> ArchivePage:
        selection = ArchiveFilter(
            with_jid=str(query.with_jid) if query.with_jid is not None else None,
            start_us=query.start_us, end_us=query.end_us, after_id=query.after_id,
            before_id=query.before_id, ids=query.ids)
        try:
            return await self.host.storage.archive_query(
                username, selection, limit=query.page.max, after=query.page.after,
                before=query.page.before, backwards=query.page.backwards)
        except ArchiveIdNotFound:
            # XEP-0313 §4.1.3 and §4.3.2: an id that is not in the archive.
            raise StanzaError(SEC.ITEM_NOT_FOUND) from None

    async def on_form(self, iq: Stanza, session: Session) -> Element:
        """XEP-0313 §4.1.5: the fields a query may use."""
        _own_archive_only(iq, session)
        return result_reply(iq, str(iq.to) if iq.to is not None else None, query_form())

    async def on_metadata(self, iq: Stanza, session: Session) -> Element:
        """XEP-0313 §5: the first and last message of the archive."""
        _own_archive_only(iq, session)
        bounds = await self.host.storage.archive_bounds(session.username)
        first, last = ((bounds[0].id, bounds[0].stamp_us), (bounds[1].id, bounds[1].stamp_us)
                       ) if bounds is not None else (None, None)
        return result_reply(iq, str(iq.to) if iq.to is not None else None,
                            metadata_element(first, last))

    # ------------------------------------------------------------------ retention
    async def start(self) -> None:
        """Start the retention task if messages expire."""
        if self.options["retention_days"] > 0:
            self._expiry = asyncio.ensure_future(self._expire_periodically())

    async def stop(self) -> None:
        """Stop the retention task (storage closes after this)."""
        task, self._expiry = self._expiry, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _expire_periodically(self) -> None:
        while True:
            try:
                await self.expire(_now_us())
            except StorageError:
                log.exception("archive expiry failed")
            await asyncio.sleep(self.expiry_interval_s)

    async def expire(self, now_us: int) -> int:
        """Delete messages older than retention_days, in bounded batches; returns how many.

        Only ever the oldest messages of an archive go (no holes, XEP-0313 §3.2); the rest
        of the archive is not rewritten.
        """
        cutoff = now_us - self.options["retention_days"] * _DAY_US
        total = 0
        while True:
            deleted = await self.host.storage.archive_delete_expired(cutoff, EXPIRY_BATCH)
            total += deleted
            if deleted < EXPIRY_BATCH:
                return total
            await asyncio.sleep(0)  # let stanzas through between batches


def _own_archive_only(iq: Stanza, session: Session) -> None:
    # XEP-0313 §8.1: "If a client requests access to an archive it does not have
    # permissions for the server MUST return an iq with type error, and the error condition
    # SHOULD be 'forbidden'."
    if iq.to is not None and iq.to.bare != session.jid.bare:
        raise StanzaError(SEC.FORBIDDEN)


def _replaced(stanza: Stanza, element: Element) -> Stanza:
    return Stanza(element, stanza.kind, stanza.type, stanza.to, stanza.from_, stanza.id)


MODULES = (MAM,)


def _log_failure(username: str, write: asyncio.Future[Any]) -> None:
    """Done-callback of a queued archive write: a missing account is the sender's business
    (delivery answers it, RFC 6121 §8.5.1); anything else is logged."""
    if write.cancelled():
        return
    exc = write.exception()
    if exc is not None and not isinstance(exc, AccountNotFound):
        log.error("archiving a message failed", extra={"account": username,
                                                       "error": str(exc)})
