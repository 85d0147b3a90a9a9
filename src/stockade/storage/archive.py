"""Storage interface for message archives: XEP-0313 user archives and XEP-0045 room archives.

Every archive lives in one store keyed by ``owner``: a local account's username (never
contains '@') or a room's bare JID (always contains '@'), so the two kinds cannot collide.
A user's archive goes when the account is deleted; a room's with ``archive_delete_owner``.

Order is the order of appending (a monotonic sequence, never the clock), and stamps never
decrease within an archive: a stamp earlier than the archive's last one is raised to it.
So same-stamp messages keep their order, a time range is a contiguous run, and retention
(deleting by age) only ever removes the oldest messages, never a hole in the middle
(XEP-0313 §3.2).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from .base import StorageError


class ArchiveIdNotFound(StorageError):
    """A query named an id that is not in the archive (XEP-0313: item-not-found)."""

    def __init__(self, archive_id: str) -> None:
        super().__init__("no such archive id")
        self.archive_id = archive_id


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One archived message.

    Attributes:
        id: the archive id (XEP-0359 stanza-id, XEP-0313 result id), unique per owner.
        stamp_us: when it was archived, microseconds since the epoch.
        with_jid: the other party (full or bare JID as archived).
        stanza: the serialized ``<message/>`` with its own ``xmlns='jabber:client'``.
    """

    id: str
    stamp_us: int
    with_jid: str
    stanza: str


@dataclass(frozen=True, slots=True)
class ArchiveFilter:
    """Which messages a query selects (the whole result set, before paging).

    Attributes:
        with_jid: a bare JID matches every resource of it, a full JID only itself.
        start_us, end_us: inclusive stamp bounds.
        after_id, before_id: exclusive bounds by archive id (the ids must exist).
        ids: only these archive ids (each must exist); empty: no such restriction.
    """

    with_jid: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One page of a query's result set.

    Attributes:
        messages: oldest first, whichever way the page was requested.
        complete: nothing more matches beyond this page in the direction paged.
        count: how many messages the whole result set holds.
    """

    messages: list[ArchivedMessage]
    complete: bool
    count: int


class ArchiveStorage(Protocol):
    """Message archives. Owners without '@' are local accounts and must exist to be
    appended to; other owners (rooms) need nothing beforehand."""

    async def archive_append(self, owner: str, archive_id: str, stamp_us: int, with_jid: str,
                             stanza: str) -> ArchivedMessage:
        """Append a message; returns it as stored (its stamp raised to the archive's last
        one if earlier). Committed before returning.

        Raises:
            AccountNotFound: ``owner`` names no account (and is not a room).
            StorageError: ``archive_id`` is already used in this archive.
        """
        ...

    def archive_enqueue(self, owner: str, archive_id: str, stamp_us: int, with_jid: str,
                        stanza: str) -> asyncio.Future[ArchivedMessage]:
        """Queue an append without waiting: appends are written in the order of these
        calls, and every read of the archive (query, get, bounds, count) sees the ones
        queued before it. The future settles once the row is committed, with the
        exceptions of :meth:`archive_append`."""
        ...

    async def archive_query(self, owner: str, selection: ArchiveFilter, *, limit: int,
                            after: str | None = None, before: str | None = None,
                            backwards: bool = False) -> ArchivePage:
        """Up to ``limit`` messages of the selection: the first ones after ``after``, or
        with ``backwards`` the last ones before ``before`` (None: from the end).

        Raises:
            ArchiveIdNotFound: ``after``, ``before`` or an id of the filter is not in the
                archive.
            ValueError: ``limit`` is negative.
        """
        ...

    async def archive_get(self, owner: str, archive_id: str) -> ArchivedMessage | None:
        """The message with this id, or None."""
        ...

    async def archive_bounds(self, owner: str) -> tuple[ArchivedMessage, ArchivedMessage] | None:
        """The first and the last message, or None for an empty archive."""
        ...

    async def archive_count(self, owner: str) -> int:
        """How many messages the archive holds."""
        ...

    async def archive_delete_expired(self, before_us: int, limit: int) -> int:
        """Delete up to ``limit`` messages stamped before ``before_us``, in any archive,
        oldest first; returns how many went (fewer than ``limit``: none are left).

        Raises:
            ValueError: ``limit`` is less than 1.
        """
        ...

    async def archive_delete_owner(self, owner: str) -> int:
        """Delete a whole archive (a destroyed room); returns how many messages went."""
        ...
