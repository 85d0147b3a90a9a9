"""SQLite side of ``MucStorage`` (tables ``muc_rooms`` and ``muc_affiliations``, migration
0005)."""

from __future__ import annotations

import sqlite3

from .base import StorageError
from .muc import MAX_CONFIG_CHARS, StoredAffiliation, StoredRoom
from .sqlite_base import SQLiteBase


class SQLiteMuc(SQLiteBase):
    """See ``MucStorage``."""

    async def put_muc_room(self, room: StoredRoom) -> None:
        """See ``MucStorage.put_muc_room``."""
        if len(room.config) > MAX_CONFIG_CHARS:
            raise StorageError("room configuration is too large")
        await self._run(True, _put_room, room)

    async def get_muc_room(self, jid: str) -> StoredRoom | None:
        """See ``MucStorage.get_muc_room``."""
        rooms = await self._run(False, _rooms, jid)
        return rooms[0] if rooms else None

    async def list_muc_rooms(self) -> list[StoredRoom]:
        """See ``MucStorage.list_muc_rooms``."""
        return await self._run(False, _rooms, None)

    async def delete_muc_room(self, jid: str) -> bool:
        """See ``MucStorage.delete_muc_room``."""
        return await self._run(True, _delete_room, jid)


def _put_room(conn: sqlite3.Connection, room: StoredRoom) -> None:
    conn.execute(
        "INSERT INTO muc_rooms (jid, config, created, subject, subject_nick, subject_stamp) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (jid) DO UPDATE SET config = excluded.config, "
        "subject = excluded.subject, subject_nick = excluded.subject_nick, "
        "subject_stamp = excluded.subject_stamp",
        (room.jid, room.config, room.created, room.subject, room.subject_nick,
         room.subject_stamp))
    conn.execute("DELETE FROM muc_affiliations WHERE room = ?", (room.jid,))
    conn.executemany(
        "INSERT INTO muc_affiliations (room, jid, affiliation, nick, reason) "
        "VALUES (?, ?, ?, ?, ?)",
        [(room.jid, a.jid, a.affiliation, a.nick, a.reason) for a in room.affiliations])


_ONE_ROOM = ("SELECT jid, config, created, subject, subject_nick, subject_stamp "
             "FROM muc_rooms WHERE jid = ?")
_ALL_ROOMS = ("SELECT jid, config, created, subject, subject_nick, subject_stamp "
              "FROM muc_rooms ORDER BY jid")
_ONE_ROOMS_AFFILIATIONS = ("SELECT room, jid, affiliation, nick, reason FROM muc_affiliations "
                           "WHERE room = ? ORDER BY jid")
_ALL_AFFILIATIONS = ("SELECT room, jid, affiliation, nick, reason FROM muc_affiliations "
                     "ORDER BY room, jid")


def _rooms(conn: sqlite3.Connection, jid: str | None) -> list[StoredRoom]:
    if jid is None:
        rows = conn.execute(_ALL_ROOMS).fetchall()
        affiliation_rows = conn.execute(_ALL_AFFILIATIONS).fetchall()
    else:
        rows = conn.execute(_ONE_ROOM, (jid,)).fetchall()
        affiliation_rows = conn.execute(_ONE_ROOMS_AFFILIATIONS, (jid,)).fetchall()
    affiliations: dict[str, list[StoredAffiliation]] = {}
    for room, member, affiliation, nick, reason in affiliation_rows:
        affiliations.setdefault(room, []).append(
            StoredAffiliation(member, affiliation, nick, reason))
    return [StoredRoom(str(r[0]), str(r[1]), float(r[2]), r[3], r[4], r[5],
                       tuple(affiliations.get(r[0], ()))) for r in rows]


def _delete_room(conn: sqlite3.Connection, jid: str) -> bool:
    conn.execute("DELETE FROM muc_affiliations WHERE room = ?", (jid,))
    return conn.execute("DELETE FROM muc_rooms WHERE jid = ?", (jid,)).rowcount > 0
