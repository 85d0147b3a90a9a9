"""SQLite side of ``ArchiveStorage`` (table ``archive``, migration 0003).

Appends are group-committed: every message a client sends is archived twice (sender and
recipient), and a commit waits for the disk (synchronous=FULL), so appends made while one
batch commits go together in the next transaction. A caller still returns only once its
row is committed, and one refused append (no account, id taken) fails alone.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field

from .archive import ArchivedMessage, ArchiveFilter, ArchiveIdNotFound, ArchivePage
from .base import AccountNotFound, StorageError
from .sqlite_base import SQLiteBase

_COLUMNS = "uid, stamp_us, with_bare, with_resource, stanza"
_Row = tuple[str, int, str, str, str]
_Append = tuple[str, str, int, str, str]  # owner, id, stamp, with, stanza
MAX_BATCH = 500  # appends per transaction


@dataclass
class _GroupCommit:
    """Appends waiting for the next transaction, and whether one is being written."""

    pending: list[tuple[_Append, asyncio.Future[ArchivedMessage]]] = field(default_factory=list)
    writer: asyncio.Future[None] | None = None


class SQLiteArchive(SQLiteBase):
    """See ``ArchiveStorage``."""

    _archive_commit: _GroupCommit | None = None

    async def archive_append(self, owner: str, archive_id: str, stamp_us: int, with_jid: str,
                             stanza: str) -> ArchivedMessage:
        """See ``ArchiveStorage.archive_append``."""
        # A caller cancelled from here on still has its row written (like ``_run``).
        return await asyncio.shield(self.archive_enqueue(owner, archive_id, stamp_us,
                                                         with_jid, stanza))

    def archive_enqueue(self, owner: str, archive_id: str, stamp_us: int, with_jid: str,
                        stanza: str) -> asyncio.Future[ArchivedMessage]:
        """See ``ArchiveStorage.archive_enqueue``."""
        commit = self._archive_commit
        if commit is None:
            commit = self._archive_commit = _GroupCommit()
        done: asyncio.Future[ArchivedMessage] = asyncio.get_running_loop().create_future()
        commit.pending.append(((owner, archive_id, int(stamp_us), with_jid, stanza), done))
        if commit.writer is None or commit.writer.done():
            commit.writer = asyncio.ensure_future(self._archive_write(commit))
        return done

    async def _archive_flushed(self) -> None:
        """Read-your-writes: wait for the appends queued so far (the writer drains them
        all, including those queued while it runs)."""
        commit = self._archive_commit
        if commit is not None and commit.writer is not None and not commit.writer.done():
            await asyncio.wait([commit.writer])

    async def _archive_write(self, commit: _GroupCommit) -> None:
        """Write batches until no append is waiting."""
        while commit.pending:
            batch, commit.pending = commit.pending[:MAX_BATCH], commit.pending[MAX_BATCH:]
            try:
                outcomes = await self._run(True, _append_many, [item for item, _ in batch])
            except StorageError as exc:  # the whole transaction failed: every caller hears it
                outcomes = [exc] * len(batch)
            except BaseException:
                # Nobody may wait forever: what was not written is reported as not written.
                for _, done in batch + commit.pending:
                    if not done.done():
                        done.set_exception(StorageError("archive write interrupted"))
                commit.pending = []
                raise
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, ArchivedMessage):
                    done.set_result(outcome)
                else:
                    done.set_exception(outcome)

    async def archive_query(self, owner: str, selection: ArchiveFilter, *, limit: int,
                            after: str | None = None, before: str | None = None,
                            backwards: bool = False) -> ArchivePage:
        """See ``ArchiveStorage.archive_query``."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        await self._archive_flushed()
        return await self._run(False, _query, owner, selection, limit, after, before, backwards)

    async def archive_get(self, owner: str, archive_id: str) -> ArchivedMessage | None:
        """See ``ArchiveStorage.archive_get``."""
        await self._archive_flushed()
        return await self._run(False, _get, owner, archive_id)

    async def archive_bounds(self, owner: str) -> tuple[ArchivedMessage, ArchivedMessage] | None:
        """See ``ArchiveStorage.archive_bounds``."""
        await self._archive_flushed()
        return await self._run(False, _bounds, owner)

    async def archive_count(self, owner: str) -> int:
        """See ``ArchiveStorage.archive_count``."""
        await self._archive_flushed()
        return await self._run(False, _count, owner)

    async def archive_delete_expired(self, before_us: int, limit: int) -> int:
        """See ``ArchiveStorage.archive_delete_expired``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return await self._run(True, _delete_expired, int(before_us), limit)

    async def archive_delete_owner(self, owner: str) -> int:
        """See ``ArchiveStorage.archive_delete_owner``."""
        return await self._run(True, _delete_owner, owner)


# Transaction bodies -------------------------------------------------------------------


def _message(row: _Row) -> ArchivedMessage:
    uid, stamp_us, bare, resource, stanza = row
    return ArchivedMessage(str(uid), int(stamp_us), f"{bare}/{resource}" if resource else bare,
                           str(stanza))


class _Batch:
    """What one transaction of appends learns once per archive: whether the owner may have
    one, and the last stamp (kept up to date as rows go in)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.allowed: dict[str, bool] = {}
        self.last_stamp: dict[str, int | None] = {}

    def append(self, owner: str, archive_id: str, stamp_us: int, with_jid: str,
               stanza: str) -> ArchivedMessage:
        conn = self.conn
        if owner not in self.allowed:
            self.allowed[owner] = "@" in owner or conn.execute(
                "SELECT 1 FROM accounts WHERE username = ?", (owner,)).fetchone() is not None
            row = conn.execute("SELECT stamp_us FROM archive WHERE owner = ? "
                               "ORDER BY seq DESC LIMIT 1", (owner,)).fetchone()
            self.last_stamp[owner] = None if row is None else int(row[0])
        if not self.allowed[owner]:
            raise AccountNotFound(owner)
        # Stamps never go backwards within an archive (a clock stepped back), so a time
        # range is one run of the archive and expiry removes only its oldest messages.
        last = self.last_stamp[owner]
        stamp_us = stamp_us if last is None else max(stamp_us, last)
        bare, _, resource = with_jid.partition("/")
        try:
            conn.execute("INSERT INTO archive (owner, uid, stamp_us, with_bare, with_resource, "
                         "stanza) VALUES (?, ?, ?, ?, ?, ?)",
                         (owner, archive_id, stamp_us, bare, resource, stanza))
        except sqlite3.IntegrityError:
            raise StorageError("archive id already used in this archive") from None
        self.last_stamp[owner] = stamp_us
        return ArchivedMessage(archive_id, stamp_us, with_jid, stanza)


def _append_many(conn: sqlite3.Connection, items: list[_Append],
                 ) -> list[ArchivedMessage | Exception]:
    """One refused append leaves the others in: a failed INSERT is undone by SQLite alone
    (statement-level abort), and nothing else is written before it."""
    batch = _Batch(conn)
    outcomes: list[ArchivedMessage | Exception] = []
    for item in items:
        try:
            outcomes.append(batch.append(*item))
        except StorageError as exc:  # no account, or the id is taken
            outcomes.append(exc)
    return outcomes


def _seq(conn: sqlite3.Connection, owner: str, archive_id: str) -> int:
    row = conn.execute("SELECT seq FROM archive WHERE owner = ? AND uid = ?",
                       (owner, archive_id)).fetchone()
    if row is None:
        raise ArchiveIdNotFound(archive_id)
    return int(row[0])


def _stamp_bound(conn: sqlite3.Connection, owner: str, stamp_us: int, *, lower: bool,
                 ) -> int | None:
    """The first seq stamped at or after ``stamp_us`` (lower) or the last one at or before
    it; None if there is none. Exact because stamps never decrease along seq."""
    if lower:
        sql = ("SELECT seq FROM archive WHERE owner = ? AND stamp_us >= ? "
               "ORDER BY stamp_us, seq LIMIT 1")
    else:
        sql = ("SELECT seq FROM archive WHERE owner = ? AND stamp_us <= ? "
               "ORDER BY stamp_us DESC, seq DESC LIMIT 1")
    row = conn.execute(sql, (owner, stamp_us)).fetchone()
    return None if row is None else int(row[0])


def _selection(conn: sqlite3.Connection, owner: str, selection: ArchiveFilter,
               ) -> tuple[list[str], list[object]] | None:
    """WHERE clauses (constant SQL) and their parameters; None when nothing can match."""
    clauses: list[str] = ["owner = ?"]
    params: list[object] = [owner]
    if selection.with_jid is not None:
        bare, sep, resource = selection.with_jid.partition("/")
        clauses.append("with_bare = ?")
        params.append(bare)
        if sep:
            clauses.append("with_resource = ?")
            params.append(resource)
    low, high = 0, None
    if selection.after_id is not None:
        low = _seq(conn, owner, selection.after_id) + 1
    if selection.before_id is not None:
        high = _seq(conn, owner, selection.before_id) - 1
    if selection.ids:
        _check_ids_exist(conn, owner, selection.ids)
        clauses.append("uid IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(selection.ids)))
    if selection.start_us is not None:
        first = _stamp_bound(conn, owner, selection.start_us, lower=True)
        if first is None:
            return None
        low = max(low, first)
    if selection.end_us is not None:
        last = _stamp_bound(conn, owner, selection.end_us, lower=False)
        if last is None:
            return None
        high = last if high is None else min(high, last)
    clauses.append("seq >= ?")
    params.append(low)
    if high is not None:
        clauses.append("seq <= ?")
        params.append(high)
    return clauses, params


def _check_ids_exist(conn: sqlite3.Connection, owner: str, ids: tuple[str, ...]) -> None:
    found = {str(uid) for (uid,) in conn.execute(
        "SELECT uid FROM archive WHERE owner = ? AND uid IN (SELECT value FROM json_each(?))",
        (owner, json.dumps(list(ids))))}
    for archive_id in ids:
        if archive_id not in found:
            raise ArchiveIdNotFound(archive_id)


def _query(conn: sqlite3.Connection, owner: str, selection: ArchiveFilter, limit: int,
           after: str | None, before: str | None, backwards: bool) -> ArchivePage:
    # The cursors are checked first: an unknown one is an error even if nothing matches.
    cursor_clauses: list[str] = []
    cursor_params: list[object] = []
    if after is not None:
        cursor_clauses.append("seq > ?")
        cursor_params.append(_seq(conn, owner, after))
    if before is not None:
        cursor_clauses.append("seq < ?")
        cursor_params.append(_seq(conn, owner, before))
    selected = _selection(conn, owner, selection)
    if selected is None:
        return ArchivePage([], True, 0)
    clauses, params = selected
    # Only constant fragments are joined into the SQL; every value is a parameter.
    where = " AND ".join(clauses)
    (count,) = conn.execute(f"SELECT COUNT(*) FROM archive WHERE {where}",  # noqa: S608
                            params).fetchone()
    page_where = " AND ".join(clauses + cursor_clauses)
    order = "DESC" if backwards else "ASC"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM archive WHERE {page_where} ORDER BY seq {order} "  # noqa: S608
        "LIMIT ?", [*params, *cursor_params, limit + 1]).fetchall()
    complete = len(rows) <= limit
    messages = [_message(row) for row in rows[:limit]]
    if backwards:
        messages.reverse()
    return ArchivePage(messages, complete, int(count))


def _get(conn: sqlite3.Connection, owner: str, archive_id: str) -> ArchivedMessage | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM archive WHERE owner = ? AND uid = ?",  # noqa: S608
                       (owner, archive_id)).fetchone()
    return None if row is None else _message(row)


def _bounds(conn: sqlite3.Connection, owner: str,
            ) -> tuple[ArchivedMessage, ArchivedMessage] | None:
    ends = []
    for order in ("ASC", "DESC"):
        row = conn.execute(f"SELECT {_COLUMNS} FROM archive WHERE owner = ? "  # noqa: S608
                           f"ORDER BY seq {order} LIMIT 1", (owner,)).fetchone()
        if row is None:
            return None
        ends.append(_message(row))
    return ends[0], ends[1]


def _count(conn: sqlite3.Connection, owner: str) -> int:
    (count,) = conn.execute("SELECT COUNT(*) FROM archive WHERE owner = ?", (owner,)).fetchone()
    return int(count)


def _delete_expired(conn: sqlite3.Connection, before_us: int, limit: int) -> int:
    # Bounded batches by the stamp index keep each write transaction short.
    cursor = conn.execute("DELETE FROM archive WHERE seq IN (SELECT seq FROM archive "
                          "WHERE stamp_us < ? ORDER BY stamp_us LIMIT ?)", (before_us, limit))
    return cursor.rowcount


def _delete_owner(conn: sqlite3.Connection, owner: str) -> int:
    return conn.execute("DELETE FROM archive WHERE owner = ?", (owner,)).rowcount
