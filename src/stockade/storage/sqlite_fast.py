"""SQLite side of ``FastTokenStorage`` (table ``fast_tokens``, migration 0006)."""

from __future__ import annotations

import sqlite3

from stockade.core.sasl.ht import FastToken, FastTokenUse

from .base import AccountNotFound
from .fast import MAX_CLIENT_ID_CHARS, TokenChooser
from .sqlite_base import SQLiteBase

_COLUMNS = "slot, mechanism, verifier, responder, expires_at, last_count"


class SQLiteFast(SQLiteBase):
    """See ``FastTokenStorage``."""

    async def store_fast_token(self, username: str, client_id: str, token: FastToken) -> None:
        """See ``FastTokenStorage.store_fast_token``."""
        _check_client_id(client_id)
        if token.slot != "new":
            raise ValueError("a newly issued token goes into the 'new' slot")
        await self._run(True, _store, username, client_id, token)

    async def use_fast_token(self, username: str, client_id: str,
                             choose: TokenChooser) -> FastTokenUse | None:
        """See ``FastTokenStorage.use_fast_token``."""
        return await self._run(True, _use, username, client_id, choose)

    async def list_fast_tokens(self, username: str) -> list[tuple[str, FastToken]]:
        """See ``FastTokenStorage.list_fast_tokens``."""
        return await self._run(False, _list, username)

    async def revoke_fast_tokens(self, username: str, client_id: str | None = None) -> int:
        """See ``FastTokenStorage.revoke_fast_tokens``."""
        return await self._run(True, _revoke, username, client_id)


def _check_client_id(client_id: str) -> None:
    if not 0 < len(client_id) <= MAX_CLIENT_ID_CHARS:
        raise ValueError(f"a client id has 1 to {MAX_CLIENT_ID_CHARS} characters")


def _row_to_token(row: tuple[object, ...]) -> FastToken:
    slot, mechanism, verifier, responder, expires_at, last_count = row
    assert isinstance(verifier, bytes) and isinstance(responder, bytes)
    return FastToken(str(mechanism), verifier, responder, float(str(expires_at)), str(slot),
                     int(str(last_count)))


def _store(conn: sqlite3.Connection, username: str, client_id: str, token: FastToken) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone() is None:
        raise AccountNotFound(username)
    conn.execute(
        f"INSERT OR REPLACE INTO fast_tokens (username, client_id, {_COLUMNS}) "  # noqa: S608
        "VALUES (?, ?, 'new', ?, ?, ?, ?, 0)",
        (username, client_id, token.mechanism, token.verifier, token.responder,
         token.expires_at))


def _tokens(conn: sqlite3.Connection, username: str, client_id: str) -> list[FastToken]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM fast_tokens "  # noqa: S608
                        "WHERE username = ? AND client_id = ? ORDER BY slot",
                        (username, client_id)).fetchall()
    return [_row_to_token(row) for row in rows]


def _use(conn: sqlite3.Connection, username: str, client_id: str,
         choose: TokenChooser) -> FastTokenUse | None:
    use = choose(_tokens(conn, username, client_id))
    if use is None:
        return None
    key = (username, client_id)
    if use.invalidate:
        conn.execute("DELETE FROM fast_tokens WHERE username = ? AND client_id = ?", key)
        return use
    if use.token.slot == "new":
        # XEP-0484 §5.1: the used new token moves to 'current', overwriting what was there.
        conn.execute("DELETE FROM fast_tokens WHERE username = ? AND client_id = ? AND "
                     "slot = 'current'", key)
    else:
        # §3.5: "invalidate all tokens issued to the same client with an earlier expiry
        # than the current token".
        conn.execute("DELETE FROM fast_tokens WHERE username = ? AND client_id = ? AND "
                     "slot = 'new' AND expires_at < ?", (*key, use.token.expires_at))
    count = use.token.last_count if use.count is None else use.count
    conn.execute("UPDATE fast_tokens SET slot = 'current', last_count = ? "
                 "WHERE username = ? AND client_id = ? AND slot = ?",
                 (count, *key, use.token.slot))
    return use


def _list(conn: sqlite3.Connection, username: str) -> list[tuple[str, FastToken]]:
    rows = conn.execute(f"SELECT client_id, {_COLUMNS} FROM fast_tokens "  # noqa: S608
                        "WHERE username = ? ORDER BY client_id, slot", (username,)).fetchall()
    return [(str(row[0]), _row_to_token(row[1:])) for row in rows]


def _revoke(conn: sqlite3.Connection, username: str, client_id: str | None) -> int:
    if client_id is None:
        cur = conn.execute("DELETE FROM fast_tokens WHERE username = ?", (username,))
    else:
        cur = conn.execute("DELETE FROM fast_tokens WHERE username = ? AND client_id = ?",
                           (username, client_id))
    return cur.rowcount
