"""SQLite side of ``UploadStorage`` (table ``uploads``, migration 0007)."""

from __future__ import annotations

import sqlite3

from .base import AccountNotFound, StorageError
from .sqlite_base import SQLiteBase
from .upload import StoredUpload

_COLUMNS = ("token, username, filename, size, content_type, put_digest, created, expires, "
            "completed")


class SQLiteUpload(SQLiteBase):
    """See ``UploadStorage``."""

    async def add_upload(self, upload: StoredUpload) -> None:
        """See ``UploadStorage.add_upload``."""
        await self._run(True, _add, upload)

    async def get_upload(self, token: str) -> StoredUpload | None:
        """See ``UploadStorage.get_upload``."""
        return await self._run(False, _get, token)

    async def list_uploads(self, username: str) -> list[StoredUpload]:
        """See ``UploadStorage.list_uploads``."""
        return await self._run(False, _select, "WHERE username = ? ORDER BY created, token",
                               (username,))

    async def list_pending_uploads(self) -> list[StoredUpload]:
        """See ``UploadStorage.list_pending_uploads``."""
        return await self._run(False, _select,
                               "WHERE completed IS NULL ORDER BY created, token", ())

    async def complete_upload(self, token: str, completed: float, expires: float | None,
                              content_type: str) -> bool:
        """See ``UploadStorage.complete_upload``."""
        return await self._run(True, _complete, token, completed, expires, content_type)

    async def expired_uploads(self, now: float, limit: int) -> list[StoredUpload]:
        """See ``UploadStorage.expired_uploads``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return await self._run(False, _select, "WHERE expires IS NOT NULL AND expires <= ? "
                               "ORDER BY expires, token LIMIT ?", (now, limit))

    async def delete_upload(self, token: str) -> bool:
        """See ``UploadStorage.delete_upload``."""
        return await self._run(True, _delete, token)

    async def upload_tokens(self) -> set[str]:
        """See ``UploadStorage.upload_tokens``."""
        return await self._run(False, _tokens)


def _row(row: tuple[object, ...]) -> StoredUpload:
    token, username, filename, size, content_type, digest, created, expires, completed = row
    assert isinstance(digest, bytes)
    return StoredUpload(str(token), str(username), str(filename), int(str(size)),
                        str(content_type), digest, float(str(created)),
                        None if expires is None else float(str(expires)),
                        None if completed is None else float(str(completed)))


def _add(conn: sqlite3.Connection, upload: StoredUpload) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE username = ?",
                    (upload.username,)).fetchone() is None:
        raise AccountNotFound(upload.username)
    try:
        conn.execute(
            f"INSERT INTO uploads ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (upload.token, upload.username, upload.filename, upload.size,
             upload.content_type, upload.put_digest, upload.created, upload.expires,
             upload.completed))
    except sqlite3.IntegrityError as exc:
        raise StorageError(f"upload slot refused: {exc}") from None


def _get(conn: sqlite3.Connection, token: str) -> StoredUpload | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM uploads WHERE token = ?",  # noqa: S608
                       (token,)).fetchone()
    return None if row is None else _row(row)


def _select(conn: sqlite3.Connection, where: str,
            params: tuple[object, ...]) -> list[StoredUpload]:
    # ``where`` is one of the constant clauses above, never input.
    rows = conn.execute(f"SELECT {_COLUMNS} FROM uploads {where}", params)  # noqa: S608
    return [_row(row) for row in rows.fetchall()]


def _complete(conn: sqlite3.Connection, token: str, completed: float,
              expires: float | None, content_type: str) -> bool:
    cur = conn.execute("UPDATE uploads SET completed = ?, expires = ?, content_type = ? "
                       "WHERE token = ? AND completed IS NULL",
                       (completed, expires, content_type, token))
    return cur.rowcount > 0


def _delete(conn: sqlite3.Connection, token: str) -> bool:
    return conn.execute("DELETE FROM uploads WHERE token = ?", (token,)).rowcount > 0


def _tokens(conn: sqlite3.Connection) -> set[str]:
    return {str(token) for (token,) in conn.execute("SELECT token FROM uploads")}
