"""SQLite side of ``PubsubStorage`` (tables ``pubsub_nodes`` and ``pubsub_items``,
migration 0004). Items carry an AUTOINCREMENT ``seq``: publish order, never reused."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from .base import AccountNotFound
from .pubsub import (
    PubsubItem,
    PubsubLimits,
    PubsubNode,
    PubsubNodeLimit,
    PubsubNodeNotFound,
    PubsubQuotaExceeded,
)
from .sqlite_base import SQLiteBase

_ITEM_COLUMNS = "item_id, payload, publisher, stamp"
_BATCH = 400  # usernames per statement in last_pubsub_items


class SQLitePubsub(SQLiteBase):
    """See ``PubsubStorage``."""

    async def create_pubsub_node(self, username: str, node: str, config: str, *,
                                 max_nodes: int) -> bool:
        """See ``PubsubStorage.create_pubsub_node``."""
        return await self._run(True, _create_node, username, node, config, max_nodes)

    async def get_pubsub_node(self, username: str, node: str) -> PubsubNode | None:
        """See ``PubsubStorage.get_pubsub_node``."""
        return await self._run(False, _get_node, username, node)

    async def list_pubsub_nodes(self, username: str) -> list[PubsubNode]:
        """See ``PubsubStorage.list_pubsub_nodes``."""
        return await self._run(False, _list_nodes, username)

    async def configure_pubsub_node(self, username: str, node: str, config: str, *,
                                    max_items: int) -> list[str]:
        """See ``PubsubStorage.configure_pubsub_node``."""
        return await self._run(True, _configure_node, username, node, config, max_items)

    async def delete_pubsub_node(self, username: str, node: str) -> bool:
        """See ``PubsubStorage.delete_pubsub_node``."""
        return await self._run(True, _delete_node, username, node)

    async def publish_pubsub_item(self, username: str, node: str, item: PubsubItem,
                                  limits: PubsubLimits, *,
                                  create_config: str | None = None) -> list[str]:
        """See ``PubsubStorage.publish_pubsub_item``."""
        return await self._run(True, _publish, username, node, item, limits, create_config)

    async def get_pubsub_items(self, username: str, node: str, *,
                               ids: Sequence[str] | None = None,
                               last: int | None = None) -> list[PubsubItem]:
        """See ``PubsubStorage.get_pubsub_items``."""
        return await self._run(False, _get_items, username, node,
                               tuple(ids) if ids is not None else None, last)

    async def retract_pubsub_items(self, username: str, node: str,
                                   ids: Sequence[str]) -> list[str]:
        """See ``PubsubStorage.retract_pubsub_items``."""
        return await self._run(True, _retract, username, node, tuple(ids))

    async def purge_pubsub_node(self, username: str, node: str) -> int:
        """See ``PubsubStorage.purge_pubsub_node``."""
        return await self._run(True, _purge, username, node)

    async def last_pubsub_items(self, usernames: Sequence[str], nodes: Sequence[str],
                                ) -> list[tuple[str, PubsubNode, PubsubItem]]:
        """See ``PubsubStorage.last_pubsub_items``."""
        if not usernames or not nodes:
            return []
        return await self._run(False, _last_items, tuple(set(usernames)), tuple(set(nodes)))


def _node_row(row: tuple[str, str, float]) -> PubsubNode:
    return PubsubNode(str(row[0]), str(row[1]), float(row[2]))


def _item_row(row: tuple[str, str, str, float]) -> PubsubItem:
    return PubsubItem(str(row[0]), str(row[1]), str(row[2]), float(row[3]))


def _check_account(conn: sqlite3.Connection, username: str) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone() is None:
        raise AccountNotFound(username)


def _insert_node(conn: sqlite3.Connection, username: str, node: str, config: str,
                 max_nodes: int) -> None:
    (count,) = conn.execute("SELECT COUNT(*) FROM pubsub_nodes WHERE username = ?",
                            (username,)).fetchone()
    if count >= max_nodes:
        raise PubsubNodeLimit(f"account {username!r} has {count} nodes")
    conn.execute("INSERT INTO pubsub_nodes (username, node, config, created) VALUES (?, ?, ?, ?)",
                 (username, node, config, time.time()))


def _node_exists(conn: sqlite3.Connection, username: str, node: str) -> bool:
    return conn.execute("SELECT 1 FROM pubsub_nodes WHERE username = ? AND node = ?",
                        (username, node)).fetchone() is not None


def _create_node(conn: sqlite3.Connection, username: str, node: str, config: str,
                 max_nodes: int) -> bool:
    _check_account(conn, username)
    if _node_exists(conn, username, node):
        return False
    _insert_node(conn, username, node, config, max_nodes)
    return True


def _get_node(conn: sqlite3.Connection, username: str, node: str) -> PubsubNode | None:
    row = conn.execute("SELECT node, config, created FROM pubsub_nodes WHERE username = ? "
                       "AND node = ?", (username, node)).fetchone()
    return None if row is None else _node_row(row)


def _list_nodes(conn: sqlite3.Connection, username: str) -> list[PubsubNode]:
    rows = conn.execute("SELECT node, config, created FROM pubsub_nodes WHERE username = ? "
                        "ORDER BY node", (username,)).fetchall()
    return [_node_row(r) for r in rows]


def _trim(conn: sqlite3.Connection, username: str, node: str, max_items: int) -> list[str]:
    """Delete all but the ``max_items`` newest items; returns their ids, oldest first."""
    rows = conn.execute(
        "SELECT seq, item_id FROM pubsub_items WHERE username = ? AND node = ? "
        "ORDER BY seq DESC LIMIT -1 OFFSET ?", (username, node, max(max_items, 0))).fetchall()
    if rows:
        conn.executemany("DELETE FROM pubsub_items WHERE seq = ?", [(seq,) for seq, _ in rows])
    return [str(item_id) for _, item_id in reversed(rows)]


def _configure_node(conn: sqlite3.Connection, username: str, node: str, config: str,
                    max_items: int) -> list[str]:
    cur = conn.execute("UPDATE pubsub_nodes SET config = ? WHERE username = ? AND node = ?",
                       (config, username, node))
    if cur.rowcount == 0:
        raise PubsubNodeNotFound(node)
    return _trim(conn, username, node, max_items)


def _delete_node(conn: sqlite3.Connection, username: str, node: str) -> bool:
    # Items go with their node (ON DELETE CASCADE).
    cur = conn.execute("DELETE FROM pubsub_nodes WHERE username = ? AND node = ?",
                       (username, node))
    return cur.rowcount > 0


def _publish(conn: sqlite3.Connection, username: str, node: str, item: PubsubItem,
             limits: PubsubLimits, create_config: str | None) -> list[str]:
    _check_account(conn, username)
    if not _node_exists(conn, username, node):
        if create_config is None:
            raise PubsubNodeNotFound(node)
        _insert_node(conn, username, node, create_config, limits.max_nodes)
    # A republished id becomes the newest item: delete and insert for a fresh seq.
    conn.execute("DELETE FROM pubsub_items WHERE username = ? AND node = ? AND item_id = ?",
                 (username, node, item.id))
    conn.execute(f"INSERT INTO pubsub_items (username, node, {_ITEM_COLUMNS}) "  # noqa: S608
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 (username, node, item.id, item.payload, item.publisher, item.stamp))
    trimmed = _trim(conn, username, node, limits.max_items)
    (total,) = conn.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM pubsub_items "
                            "WHERE username = ?", (username,)).fetchone()
    if total > limits.max_account_bytes:
        # Raising rolls the whole transaction back: the item is not stored.
        raise PubsubQuotaExceeded(f"account {username!r} would store {total} characters")
    return trimmed


def _get_items(conn: sqlite3.Connection, username: str, node: str,
               ids: tuple[str, ...] | None, last: int | None) -> list[PubsubItem]:
    if ids is not None:
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM pubsub_items WHERE username = ? AND node = ? "  # noqa: S608
            f"AND item_id IN ({marks}) ORDER BY seq", (username, node, *ids)).fetchall()
    elif last is not None:
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM (SELECT seq, {_ITEM_COLUMNS} FROM pubsub_items "  # noqa: S608
            "WHERE username = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (username, node, last)).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM pubsub_items WHERE username = ? AND node = ? "  # noqa: S608
            "ORDER BY seq", (username, node)).fetchall()
    return [_item_row(r) for r in rows]


def _retract(conn: sqlite3.Connection, username: str, node: str,
             ids: tuple[str, ...]) -> list[str]:
    gone = []
    for item_id in ids:
        cur = conn.execute("DELETE FROM pubsub_items WHERE username = ? AND node = ? "
                           "AND item_id = ?", (username, node, item_id))
        if cur.rowcount:
            gone.append(item_id)
    return gone


def _purge(conn: sqlite3.Connection, username: str, node: str) -> int:
    cur = conn.execute("DELETE FROM pubsub_items WHERE username = ? AND node = ?",
                       (username, node))
    return cur.rowcount


def _last_items(conn: sqlite3.Connection, usernames: tuple[str, ...],
                nodes: tuple[str, ...]) -> list[tuple[str, PubsubNode, PubsubItem]]:
    found: list[tuple[str, PubsubNode, PubsubItem]] = []
    node_marks = ", ".join("?" * len(nodes))
    # Bounded batches keep each statement well under SQLite's host-parameter limit.
    for start in range(0, len(usernames), _BATCH):
        batch = usernames[start:start + _BATCH]
        user_marks = ", ".join("?" * len(batch))
        rows = conn.execute(
            "SELECT n.username, n.node, n.config, n.created, i.item_id, i.payload, "  # noqa: S608
            "i.publisher, i.stamp FROM pubsub_nodes n JOIN pubsub_items i ON i.seq = "
            "(SELECT MAX(seq) FROM pubsub_items m WHERE m.username = n.username "
            "AND m.node = n.node) "
            f"WHERE n.username IN ({user_marks}) AND n.node IN ({node_marks})",
            (*batch, *nodes)).fetchall()
        found.extend((str(r[0]), _node_row(r[1:4]), _item_row(r[4:8])) for r in rows)
    found.sort(key=lambda f: (f[0], f[1].name))
    return found
