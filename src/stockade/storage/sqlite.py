"""SQLite storage backend (the default) and its forward-only migration runner.

sqlite3 blocks, so every call runs on one dedicated worker thread owned by the
instance; the event loop only awaits. One thread also means one connection
used by one thread, and calls executing in the order they were made.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Concatenate, ParamSpec, Self, TypeVar

from stockade.core.sasl.credentials import ScramCredential

from .base import (
    AccountExists,
    AccountNotFound,
    FingerprintInUse,
    OfflineMessage,
    RosterItem,
    StorageError,
    UnsupportedSchemaVersion,
    normalize_fingerprint,
)
from .sqlite_account_data import SQLiteAccountData
from .sqlite_archive import SQLiteArchive
from .sqlite_base import SQLiteBase
from .sqlite_fast import SQLiteFast
from .sqlite_muc import SQLiteMuc
from .sqlite_pubsub import SQLitePubsub
from .sqlite_upload import SQLiteUpload

P = ParamSpec("P")
T = TypeVar("T")

# Connection settings that must hold before anything is read. Constants, so
# nothing is interpolated into SQL.
_SAFETY_PRAGMAS = (
    # SECURITY: a tampered file cannot make schema objects (views, triggers,
    # defaults) call SQL functions with side effects (sqlite.org/security.html).
    "PRAGMA trusted_schema = OFF",
    "PRAGMA busy_timeout = 5000",
)
_PRAGMAS = (
    # Readers do not block the writer; other processes (the CLI) can read.
    "PRAGMA journal_mode = WAL",
    # FULL syncs the WAL at every commit: a message we acknowledged survives
    # power loss, not just a process crash (NORMAL may lose the last commits).
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    # SECURITY: overwrite deleted content, so removed SCRAM keys and delivered
    # offline messages do not linger in free pages of the file.
    "PRAGMA secure_delete = ON",
)

_MIGRATION_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


# Migrations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema step, ``migrations/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


@functools.cache
def load_migrations() -> tuple[Migration, ...]:
    """Read the packaged migrations, checking they are numbered 1, 2, 3, ...

    Raises:
        StorageError: a file is misnamed or a number is missing or repeated.
    """
    root = importlib.resources.files("stockade.storage").joinpath("migrations")
    migrations = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            raise StorageError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), entry.name, entry.read_text("utf-8")))
    migrations.sort(key=lambda m: m.version)
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise StorageError("migrations must be numbered 1, 2, 3, ... without gaps")
    return tuple(migrations)


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's schema version; 0 for an empty database.

    Raises:
        UnsupportedSchemaVersion: the database has tables but is not ours.
    """
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if has_table is None:
        foreign = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()
        if foreign is not None:
            # Migrating someone else's database would corrupt it; refuse.
            raise UnsupportedSchemaVersion("the database has tables but is not a Stockade database")
        return 0
    (version,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(version)


def check_schema_version(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Return the schema version, refusing one newer than ``migrations`` reach.

    Raises:
        UnsupportedSchemaVersion: the database is newer than this code, or not ours.
    """
    current = schema_version(conn)
    latest = len(migrations)
    if current > latest:
        raise UnsupportedSchemaVersion(
            f"the database has schema version {current} but this Stockade knows only "
            f"versions up to {latest}; run a newer Stockade or restore a backup "
            "(downgrades are not supported)"
        )
    return current


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations the database lacks, one transaction each; return the version.

    ``conn`` must be in autocommit mode (``isolation_level=None``).

    Raises:
        UnsupportedSchemaVersion: the database is newer than this code, or not ours.
        sqlite3.Error: a migration failed; it is rolled back, earlier ones stay.
    """
    current = check_schema_version(conn, migrations)
    (fk_enabled,) = conn.execute("PRAGMA foreign_keys").fetchone()
    # SQLite's table-rebuild procedure (lang_altertable.html, "other kinds of
    # table schema changes") needs foreign keys off; integrity is checked with
    # foreign_key_check before each commit instead.
    # The pragma is a no-op inside a transaction, so it is set out here.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for migration in migrations[current:]:
            _apply_migration(conn, migration)
    finally:
        conn.execute("PRAGMA foreign_keys = ON" if fk_enabled else "PRAGMA foreign_keys = OFF")
    return schema_version(conn)


def _apply_migration(conn: sqlite3.Connection, migration: Migration) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated.
        current = schema_version(conn)
        if current >= migration.version:
            conn.execute("ROLLBACK")
            return
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
        for statement in _split_statements(migration.sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (migration.version,))
        if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
            raise StorageError(f"migration {migration.name} leaves dangling foreign keys")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _split_statements(sql: str) -> Iterator[str]:
    """Split a script into statements, respecting ``;`` inside literals and triggers.

    Not executescript(): on Python 3.11 it commits any open transaction first,
    which would break one-transaction-per-migration.
    """
    *pieces, tail = sql.split(";")
    buffer = ""
    for piece in pieces:
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    # Whatever follows the last complete statement: comments, a final statement
    # without ";", or a truncated one, which SQLite rejects as a syntax error.
    if (buffer + tail).strip():
        yield buffer + tail


# Connection -------------------------------------------------------------------


def _create_private_file(path: Path) -> None:
    # SECURITY: the file holds SCRAM keys (ServerKey lets its reader pose as
    # this server to clients; both allow offline password guessing) and private
    # messages. Create it 0600 before SQLite touches it;
    # SQLite gives the -wal and -shm files the same mode as the database.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def _connect(path: Path) -> sqlite3.Connection:
    _create_private_file(path)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a "transaction"
    # means exactly what the code says (the legacy mode starts them implicitly).
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in _SAFETY_PRAGMAS:
            conn.execute(pragma)
        migrations = load_migrations()
        # Refuse before anything below changes the file.
        check_schema_version(conn, migrations)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        if mode != "wal":
            raise StorageError(f"{path}: cannot use WAL mode here (got {mode!r})")
        apply_migrations(conn, migrations)
    except BaseException:
        conn.close()
        raise
    return conn


# The backend ------------------------------------------------------------------


class SQLiteStorage(SQLiteAccountData, SQLiteArchive, SQLitePubsub, SQLiteMuc, SQLiteFast,
                    SQLiteUpload, SQLiteBase):
    """``Storage`` on one SQLite file.

    Args:
        path: database file; it and its parent directory are created if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Create or open the database and apply missing migrations.

        Raises:
            UnsupportedSchemaVersion: the database is newer than this code, or not ours.
            StorageError: already open, or SQLite failed.
        """
        if self._executor is not None:
            raise StorageError("storage is already open")
        # Published before the first await: calls made while opening queue
        # behind it on the one worker, and a second open() is refused.
        self._executor = executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="stockade-sqlite"
        )
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open_connection)
        except BaseException as exc:
            self._executor = None
            # If we were cancelled, the connection may still appear; close it.
            executor.submit(self._close_connection)
            executor.shutdown(wait=False)
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"{self.path}: {exc}") from exc
            raise

    async def close(self) -> None:
        """Run the calls already made, then close; a no-op if not open."""
        if self._executor is not None:
            await self._archive_flushed()  # queued archive rows are calls made too
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            # Queued behind every call made before, so those complete first.
            await loop.run_in_executor(executor, self._close_connection)
        finally:
            # The queue is empty now; the thread exits without being waited for.
            executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        """Open."""
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close."""
        await self.close()

    def _open_connection(self) -> None:
        # Assigned on the worker, so the calls queued behind it see it.
        self._conn = _connect(self.path)

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _run(
        self,
        write: bool,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` as one transaction on the worker thread.

        If the awaiting task is cancelled after the call started, the
        transaction still runs to completion (and may commit).
        """
        if self._executor is None:
            raise StorageError("storage is not open")
        job = functools.partial(self._transaction, write, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _transaction(
        self,
        write: bool,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        conn = self._conn
        if conn is None:
            raise StorageError("storage is not open")
        try:
            # IMMEDIATE takes the write lock up front, so a writer never fails
            # half-way with SQLITE_BUSY when another process also writes.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            result = fn(conn, *args, **kwargs)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                # Callers see StorageError from every backend, not sqlite3's.
                raise StorageError(f"sqlite: {exc}") from exc
            raise
        return result

    # Accounts -----------------------------------------------------------------

    async def create_account(self, username: str, credentials: Sequence[ScramCredential]) -> None:
        """See ``Storage.create_account``."""
        _check_unique_hashes(credentials)
        await self._run(True, _create_account, username, tuple(credentials))

    async def set_credentials(self, username: str, credentials: Sequence[ScramCredential]) -> None:
        """See ``Storage.set_credentials``."""
        _check_unique_hashes(credentials)
        await self._run(True, _set_credentials, username, tuple(credentials))

    async def delete_account(self, username: str) -> None:
        """See ``Storage.delete_account``."""
        await self._run(True, _delete_account, username)

    async def account_exists(self, username: str) -> bool:
        """See ``Storage.account_exists``."""
        return await self._run(False, _account_exists, username)

    async def list_accounts(self) -> list[str]:
        """See ``Storage.list_accounts``."""
        return await self._run(False, _list_accounts)

    async def get_credential(self, username: str, hash_name: str) -> ScramCredential | None:
        """See ``Storage.get_credential``."""
        return await self._run(False, _get_credential, username, hash_name)

    # Client certificates --------------------------------------------------------

    async def add_cert_fingerprint(self, username: str, sha256_hex: str) -> None:
        """See ``Storage.add_cert_fingerprint``."""
        fingerprint = normalize_fingerprint(sha256_hex)
        await self._run(True, _add_cert_fingerprint, username, fingerprint)

    async def remove_cert_fingerprint(self, username: str, sha256_hex: str) -> None:
        """See ``Storage.remove_cert_fingerprint``."""
        fingerprint = normalize_fingerprint(sha256_hex)
        await self._run(True, _remove_cert_fingerprint, username, fingerprint)

    async def account_for_fingerprint(self, sha256_hex: str) -> str | None:
        """See ``Storage.account_for_fingerprint``."""
        fingerprint = normalize_fingerprint(sha256_hex)
        return await self._run(False, _account_for_fingerprint, fingerprint)

    async def list_cert_fingerprints(self, username: str) -> list[str]:
        """See ``Storage.list_cert_fingerprints``."""
        return await self._run(False, _list_cert_fingerprints, username)

    # Roster -----------------------------------------------------------------------

    async def get_roster(self, username: str) -> tuple[str, list[RosterItem]]:
        """See ``Storage.get_roster``."""
        return await self._run(False, _get_roster, username)

    async def get_roster_item(self, username: str, jid: str) -> RosterItem | None:
        """See ``Storage.get_roster_item``."""
        return await self._run(False, _get_roster_item, username, jid)

    async def put_roster_item(self, username: str, item: RosterItem) -> str:
        """See ``Storage.put_roster_item``."""
        return await self._run(True, _put_roster_item, username, item)

    async def remove_roster_item(self, username: str, jid: str) -> str:
        """See ``Storage.remove_roster_item``."""
        return await self._run(True, _remove_roster_item, username, jid)

    async def roster_version(self, username: str) -> str:
        """See ``Storage.roster_version``."""
        return await self._run(False, _roster_version, username)

    # Pending subscriptions ------------------------------------------------------

    async def store_pending_subscription(self, username: str, from_jid: str, stanza: str) -> None:
        """See ``Storage.store_pending_subscription``."""
        await self._run(True, _store_pending_subscription, username, from_jid, stanza)

    async def list_pending_subscriptions(self, username: str) -> list[tuple[str, str]]:
        """See ``Storage.list_pending_subscriptions``."""
        return await self._run(False, _list_pending_subscriptions, username)

    async def remove_pending_subscription(self, username: str, from_jid: str) -> None:
        """See ``Storage.remove_pending_subscription``."""
        await self._run(True, _remove_pending_subscription, username, from_jid)

    # Offline messages ------------------------------------------------------------

    async def store_offline(self, username: str, stanza: str, stamp: float) -> int:
        """See ``Storage.store_offline``."""
        if not math.isfinite(stamp):
            raise ValueError("stamp must be a finite number of seconds")
        return await self._run(True, _store_offline, username, stanza, float(stamp))

    async def fetch_offline(self, username: str, limit: int = 1000) -> list[OfflineMessage]:
        """See ``Storage.fetch_offline``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return await self._run(False, _fetch_offline, username, limit)

    async def delete_offline(self, username: str, ids: Sequence[int]) -> None:
        """See ``Storage.delete_offline``."""
        await self._run(True, _delete_offline, username, tuple(ids))

    async def count_offline(self, username: str) -> int:
        """See ``Storage.count_offline``."""
        return await self._run(False, _count_offline, username)


# Transaction bodies: run on the worker thread inside _transaction ---------------


def _check_unique_hashes(credentials: Sequence[ScramCredential]) -> None:
    names = [c.hash_name for c in credentials]
    if len(set(names)) != len(names):
        raise ValueError("at most one SCRAM credential per hash")


def _require_account(conn: sqlite3.Connection, username: str) -> None:
    if not _account_exists(conn, username):
        raise AccountNotFound(username)


def _account_exists(conn: sqlite3.Connection, username: str) -> bool:
    row = conn.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone()
    return row is not None


def _create_account(
    conn: sqlite3.Connection, username: str, credentials: tuple[ScramCredential, ...]
) -> None:
    if _account_exists(conn, username):
        raise AccountExists(username)
    conn.execute("INSERT INTO accounts (username) VALUES (?)", (username,))
    conn.execute("INSERT INTO roster_versions (username, version) VALUES (?, 0)", (username,))
    _insert_credentials(conn, username, credentials)


def _set_credentials(
    conn: sqlite3.Connection, username: str, credentials: tuple[ScramCredential, ...]
) -> None:
    _require_account(conn, username)
    conn.execute("DELETE FROM scram_credentials WHERE username = ?", (username,))
    _insert_credentials(conn, username, credentials)


def _insert_credentials(
    conn: sqlite3.Connection, username: str, credentials: tuple[ScramCredential, ...]
) -> None:
    conn.executemany(
        "INSERT INTO scram_credentials"
        " (username, hash_name, salt, iterations, stored_key, server_key)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (username, c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
            for c in credentials
        ],
    )


def _delete_account(conn: sqlite3.Connection, username: str) -> None:
    # ON DELETE CASCADE removes credentials, fingerprints, roster (and its
    # groups), roster version, pending subscriptions and offline messages.
    if conn.execute("DELETE FROM accounts WHERE username = ?", (username,)).rowcount == 0:
        raise AccountNotFound(username)


def _list_accounts(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT username FROM accounts ORDER BY username").fetchall()
    return [username for (username,) in rows]


def _get_credential(
    conn: sqlite3.Connection, username: str, hash_name: str
) -> ScramCredential | None:
    row = conn.execute(
        "SELECT salt, iterations, stored_key, server_key FROM scram_credentials"
        " WHERE username = ? AND hash_name = ?",
        (username, hash_name),
    ).fetchone()
    if row is None:
        return None
    salt, iterations, stored_key, server_key = row
    return ScramCredential(
        hash_name, bytes(salt), int(iterations), bytes(stored_key), bytes(server_key)
    )


def _add_cert_fingerprint(conn: sqlite3.Connection, username: str, fingerprint: str) -> None:
    _require_account(conn, username)
    owner = _account_for_fingerprint(conn, fingerprint)
    if owner == username:
        return
    if owner is not None:
        raise FingerprintInUse(fingerprint)
    conn.execute(
        "INSERT INTO cert_fingerprints (sha256, username) VALUES (?, ?)", (fingerprint, username)
    )


def _remove_cert_fingerprint(conn: sqlite3.Connection, username: str, fingerprint: str) -> None:
    _require_account(conn, username)
    # Matching on both columns: one account can never unbind another's cert.
    conn.execute(
        "DELETE FROM cert_fingerprints WHERE sha256 = ? AND username = ?", (fingerprint, username)
    )


def _account_for_fingerprint(conn: sqlite3.Connection, fingerprint: str) -> str | None:
    row = conn.execute(
        "SELECT username FROM cert_fingerprints WHERE sha256 = ?", (fingerprint,)
    ).fetchone()
    return None if row is None else str(row[0])


def _list_cert_fingerprints(conn: sqlite3.Connection, username: str) -> list[str]:
    _require_account(conn, username)
    rows = conn.execute(
        "SELECT sha256 FROM cert_fingerprints WHERE username = ? ORDER BY sha256", (username,)
    ).fetchall()
    return [fingerprint for (fingerprint,) in rows]


def _roster_version(conn: sqlite3.Connection, username: str) -> str:
    row = conn.execute(
        "SELECT version FROM roster_versions WHERE username = ?", (username,)
    ).fetchone()
    if row is None:
        raise AccountNotFound(username)
    return str(row[0])


def _bump_roster_version(conn: sqlite3.Connection, username: str) -> str:
    conn.execute("UPDATE roster_versions SET version = version + 1 WHERE username = ?", (username,))
    return _roster_version(conn, username)


def _get_roster(conn: sqlite3.Connection, username: str) -> tuple[str, list[RosterItem]]:
    version = _roster_version(conn, username)
    items = conn.execute(
        "SELECT jid, name, subscription, ask, approved FROM roster_items"
        " WHERE username = ? ORDER BY jid",
        (username,),
    ).fetchall()
    groups: dict[str, list[str]] = {}
    for jid, group in conn.execute(
        "SELECT jid, name FROM roster_groups WHERE username = ? ORDER BY jid, position",
        (username,),
    ):
        groups.setdefault(jid, []).append(group)
    return version, [_roster_item(row, groups.get(row[0], [])) for row in items]


def _get_roster_item(conn: sqlite3.Connection, username: str, jid: str) -> RosterItem | None:
    # No _require_account: an unknown account simply has no such contact.
    row = conn.execute(
        "SELECT jid, name, subscription, ask, approved FROM roster_items"
        " WHERE username = ? AND jid = ?",
        (username, jid),
    ).fetchone()
    if row is None:
        return None
    groups = conn.execute(
        "SELECT name FROM roster_groups WHERE username = ? AND jid = ? ORDER BY position",
        (username, jid),
    ).fetchall()
    return _roster_item(row, [group for (group,) in groups])


def _roster_item(row: tuple[str, str | None, str, int, int], groups: list[str]) -> RosterItem:
    jid, name, subscription, ask, approved = row
    return RosterItem(jid, name, subscription, bool(ask), bool(approved), tuple(groups))


def _put_roster_item(conn: sqlite3.Connection, username: str, item: RosterItem) -> str:
    _require_account(conn, username)
    # Replace = delete (cascading to the groups) + insert, all in this transaction.
    conn.execute("DELETE FROM roster_items WHERE username = ? AND jid = ?", (username, item.jid))
    conn.execute(
        "INSERT INTO roster_items (username, jid, name, subscription, ask, approved)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (username, item.jid, item.name, item.subscription, int(item.ask), int(item.approved)),
    )
    conn.executemany(
        "INSERT INTO roster_groups (username, jid, position, name) VALUES (?, ?, ?, ?)",
        [(username, item.jid, position, group) for position, group in enumerate(item.groups)],
    )
    return _bump_roster_version(conn, username)


def _remove_roster_item(conn: sqlite3.Connection, username: str, jid: str) -> str:
    _require_account(conn, username)
    deleted = conn.execute(
        "DELETE FROM roster_items WHERE username = ? AND jid = ?", (username, jid)
    ).rowcount
    # Nothing changed, so the client's cached roster is still current.
    return _bump_roster_version(conn, username) if deleted else _roster_version(conn, username)


def _store_pending_subscription(
    conn: sqlite3.Connection, username: str, from_jid: str, stanza: str
) -> None:
    # Delete + insert (not upsert) so the newest request gets a new, larger id.
    _remove_pending_subscription(conn, username, from_jid)
    conn.execute(
        "INSERT INTO pending_subscriptions (username, from_jid, stanza) VALUES (?, ?, ?)",
        (username, from_jid, stanza),
    )


def _list_pending_subscriptions(conn: sqlite3.Connection, username: str) -> list[tuple[str, str]]:
    _require_account(conn, username)
    rows = conn.execute(
        "SELECT from_jid, stanza FROM pending_subscriptions WHERE username = ? ORDER BY id",
        (username,),
    ).fetchall()
    return [(str(from_jid), str(stanza)) for from_jid, stanza in rows]


def _remove_pending_subscription(conn: sqlite3.Connection, username: str, from_jid: str) -> None:
    _require_account(conn, username)
    conn.execute(
        "DELETE FROM pending_subscriptions WHERE username = ? AND from_jid = ?",
        (username, from_jid),
    )


def _store_offline(conn: sqlite3.Connection, username: str, stanza: str, stamp: float) -> int:
    _require_account(conn, username)
    cursor = conn.execute(
        "INSERT INTO offline_messages (username, stanza, stamp) VALUES (?, ?, ?)",
        (username, stanza, stamp),
    )
    if cursor.lastrowid is None:  # cannot happen after a successful INSERT
        raise StorageError("SQLite returned no id for the stored message")
    return cursor.lastrowid


def _fetch_offline(conn: sqlite3.Connection, username: str, limit: int) -> list[OfflineMessage]:
    _require_account(conn, username)
    # Arrival order (id), not stamp: a clock stepped backwards must not
    # reorder a conversation.
    rows = conn.execute(
        "SELECT id, stanza, stamp FROM offline_messages WHERE username = ? ORDER BY id LIMIT ?",
        (username, limit),
    ).fetchall()
    return [OfflineMessage(int(id_), str(stanza), float(stamp)) for id_, stanza, stamp in rows]


def _delete_offline(conn: sqlite3.Connection, username: str, ids: tuple[int, ...]) -> None:
    _require_account(conn, username)
    # One statement per id: no IN-list built from input, no variable limit.
    conn.executemany(
        "DELETE FROM offline_messages WHERE username = ? AND id = ?",
        [(username, int(id_)) for id_ in ids],
    )


def _count_offline(conn: sqlite3.Connection, username: str) -> int:
    _require_account(conn, username)
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM offline_messages WHERE username = ?", (username,)
    ).fetchone()
    return int(count)
