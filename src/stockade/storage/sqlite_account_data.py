"""SQLite side of ``AccountDataStorage`` (table ``account_data``, migration 0002)."""

from __future__ import annotations

import sqlite3
import time

from .account_data import MAX_VALUE_CHARS
from .base import AccountNotFound, StorageError
from .sqlite_base import SQLiteBase


class SQLiteAccountData(SQLiteBase):
    """See ``AccountDataStorage``."""

    async def get_data(self, username: str, namespace: str, key: str) -> str | None:
        """See ``AccountDataStorage.get_data``."""
        return await self._run(False, _get, username, namespace, key)

    async def put_data(self, username: str, namespace: str, key: str, value: str) -> None:
        """See ``AccountDataStorage.put_data``."""
        if len(value) > MAX_VALUE_CHARS:
            raise StorageError(f"value for {namespace} is too large")
        await self._run(True, _put, username, namespace, key, value)

    async def delete_data(self, username: str, namespace: str, key: str) -> bool:
        """See ``AccountDataStorage.delete_data``."""
        return await self._run(True, _delete, username, namespace, key)

    async def list_data(self, username: str, namespace: str) -> list[tuple[str, str]]:
        """See ``AccountDataStorage.list_data``."""
        return await self._run(False, _list, username, namespace)

    async def clear_data(self, username: str, namespace: str) -> int:
        """See ``AccountDataStorage.clear_data``."""
        return await self._run(True, _clear, username, namespace)


def _get(conn: sqlite3.Connection, username: str, namespace: str, key: str) -> str | None:
    row = conn.execute("SELECT value FROM account_data WHERE username = ? AND namespace = ? "
                       "AND key = ?", (username, namespace, key)).fetchone()
    return None if row is None else str(row[0])


def _put(conn: sqlite3.Connection, username: str, namespace: str, key: str, value: str) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone() is None:
        raise AccountNotFound(username)
    conn.execute(
        "INSERT INTO account_data (username, namespace, key, value, updated) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (username, namespace, key) "
        "DO UPDATE SET value = excluded.value, updated = excluded.updated",
        (username, namespace, key, value, time.time()))


def _delete(conn: sqlite3.Connection, username: str, namespace: str, key: str) -> bool:
    cur = conn.execute("DELETE FROM account_data WHERE username = ? AND namespace = ? "
                       "AND key = ?", (username, namespace, key))
    return cur.rowcount > 0


def _list(conn: sqlite3.Connection, username: str, namespace: str) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT key, value FROM account_data WHERE username = ? AND "
                        "namespace = ? ORDER BY key", (username, namespace)).fetchall()
    return [(str(k), str(v)) for k, v in rows]


def _clear(conn: sqlite3.Connection, username: str, namespace: str) -> int:
    cur = conn.execute("DELETE FROM account_data WHERE username = ? AND namespace = ?",
                       (username, namespace))
    return cur.rowcount
