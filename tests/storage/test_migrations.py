"""Schema migrations of the SQLite backend: upgrade from every earlier version.

A database is built at version N by applying the first N packaged migrations,
seeding rows after each one with SQL written for that version's schema.
Opening it must reach the latest version with every seeded row intact. When
you add ``NNNN_*.sql``, add ``SEEDS[NNNN]`` and ``CHECKS[NNNN]`` below.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from stockade.core.sasl.ht import FastToken
from stockade.storage import (
    OfflineMessage,
    RosterItem,
    SQLiteStorage,
    StorageError,
    UnsupportedSchemaVersion,
)
from stockade.storage.archive import ArchivedMessage, ArchiveFilter
from stockade.storage.muc import StoredAffiliation, StoredRoom
from stockade.storage.sqlite import (
    Migration,
    apply_migrations,
    load_migrations,
    schema_version,
)
from stockade.storage.upload import StoredUpload

MIGRATIONS = load_migrations()
LATEST = len(MIGRATIONS)
FP = "0f" * 32


def _seed_v1(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO accounts (username) VALUES ('alice')")
    conn.execute("INSERT INTO roster_versions (username, version) VALUES ('alice', 7)")
    conn.execute(
        "INSERT INTO scram_credentials VALUES ('alice', 'SHA-256', ?, 4096, ?, ?)",
        (b"salt" * 4, b"k" * 32, b"s" * 32),
    )
    conn.execute("INSERT INTO cert_fingerprints (sha256, username) VALUES (?, 'alice')", (FP,))
    conn.execute(
        "INSERT INTO roster_items VALUES ('alice', 'bob@example.org', 'Bob', 'both', 0, 1)"
    )
    conn.executemany(
        "INSERT INTO roster_groups VALUES ('alice', 'bob@example.org', ?, ?)",
        [(0, "Friends"), (1, "Work")],
    )
    conn.execute(
        "INSERT INTO pending_subscriptions (username, from_jid, stanza)"
        " VALUES ('alice', 'eve@example.net', '<presence type=''subscribe''/>')"
    )
    conn.execute(
        "INSERT INTO offline_messages (username, stanza, stamp)"
        " VALUES ('alice', '<message/>', 1700000000.5)"
    )


async def _check_v1(store: SQLiteStorage) -> None:
    cred = await store.get_credential("alice", "SHA-256")
    assert cred is not None
    assert (cred.salt, cred.iterations, cred.stored_key) == (b"salt" * 4, 4096, b"k" * 32)
    assert await store.account_for_fingerprint(FP) == "alice"
    bob = RosterItem("bob@example.org", "Bob", "both", False, True, ("Friends", "Work"))
    assert await store.get_roster("alice") == ("7", [bob])
    assert await store.list_pending_subscriptions("alice") == [
        ("eve@example.net", "<presence type='subscribe'/>")
    ]
    (message,) = await store.fetch_offline("alice")
    assert message == OfflineMessage(message.id, "<message/>", 1700000000.5)


def _seed_v2(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO account_data VALUES ('alice', 'jabber:iq:private', "
                 "'storage|storage:bookmarks', '<storage/>', 1700000000.5)")


async def _check_v2(store: SQLiteStorage) -> None:
    assert await store.list_data("alice", "jabber:iq:private") == [
        ("storage|storage:bookmarks", "<storage/>")]


def _seed_v3(conn: sqlite3.Connection) -> None:
    rows = [("alice", "a1", 1_700_000_000_000_001, "bob@example.org", "phone"),
            ("alice", "a2", 1_700_000_000_000_001, "bob@example.org", ""),
            ("lobby@rooms.example.org", "r1", 5, "lobby@rooms.example.org", "bob")]
    conn.executemany("INSERT INTO archive (owner, uid, stamp_us, with_bare, with_resource, "
                     "stanza) VALUES (?, ?, ?, ?, ?, '<message/>')", rows)
    # An account to delete in the check: its archive must go with it.
    conn.execute("INSERT INTO accounts (username) VALUES ('carol')")
    conn.execute("INSERT INTO roster_versions (username, version) VALUES ('carol', 0)")
    conn.execute("INSERT INTO archive (owner, uid, stamp_us, with_bare, stanza) "
                 "VALUES ('carol', 'c1', 1, 'bob@example.org', '<message/>')")


async def _check_v3(store: SQLiteStorage) -> None:
    page = await store.archive_query("alice", ArchiveFilter(with_jid="bob@example.org"),
                                     limit=10)
    assert [(m.id, m.stamp_us, m.with_jid) for m in page.messages] == [
        ("a1", 1_700_000_000_000_001, "bob@example.org/phone"),
        ("a2", 1_700_000_000_000_001, "bob@example.org")]
    assert await store.archive_get("lobby@rooms.example.org", "r1") == ArchivedMessage(
        "r1", 5, "lobby@rooms.example.org/bob", "<message/>")
    await store.delete_account("carol")
    assert await store.archive_count("carol") == 0


def _seed_v4(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO pubsub_nodes VALUES ('alice', 'urn:xmpp:avatar:metadata', "
                 "'{\"v\":1}', 1700000000.5)")
    conn.execute("INSERT INTO pubsub_items (username, node, item_id, payload, publisher, stamp) "
                 "VALUES ('alice', 'urn:xmpp:avatar:metadata', 'abc', "
                 "'<metadata xmlns=''urn:xmpp:avatar:metadata''/>', 'alice@example.org/a', 2.5)")


async def _check_v4(store: SQLiteStorage) -> None:
    node = await store.get_pubsub_node("alice", "urn:xmpp:avatar:metadata")
    assert node is not None and node.config == '{"v":1}'
    (item,) = await store.get_pubsub_items("alice", "urn:xmpp:avatar:metadata")
    assert (item.id, item.payload, item.publisher, item.stamp) == (
        "abc", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", "alice@example.org/a", 2.5)


def _seed_v5(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO muc_rooms VALUES ('coven@rooms.example.org', "
                 "'{\"persistent\":true}', 1700000000.5, 'Spells', 'crone', 1700000001.0)")
    conn.executemany("INSERT INTO muc_affiliations VALUES ('coven@rooms.example.org', ?, ?, "
                     "?, ?)", [("crone@example.org", "owner", "crone", None),
                               ("evil.example", "outcast", None, "spam")])


async def _check_v5(store: SQLiteStorage) -> None:
    assert await store.list_muc_rooms() == [StoredRoom(
        "coven@rooms.example.org", '{"persistent":true}', 1700000000.5, "Spells", "crone",
        1700000001.0, (StoredAffiliation("crone@example.org", "owner", "crone"),
                       StoredAffiliation("evil.example", "outcast", None, "spam")))]


def _seed_v6(conn: sqlite3.Connection) -> None:
    conn.executemany("INSERT INTO fast_tokens VALUES (?, 'phone-uuid', 'current', "
                     "'HT-SHA-256-NONE', ?, ?, 1700000000.5, 3)",
                     [("alice", b"v" * 32, b"r" * 32), ("carol", b"w" * 32, b"s" * 32)])


async def _check_v6(store: SQLiteStorage) -> None:
    assert await store.list_fast_tokens("alice") == [("phone-uuid", FastToken(
        "HT-SHA-256-NONE", b"v" * 32, b"r" * 32, 1700000000.5, "current", 3))]
    assert await store.list_fast_tokens("carol") == []  # deleted in _check_v3: cascaded
    # A password change revokes the tokens obtained with the old one (the trigger).
    await store.set_credentials("alice", [])
    assert await store.list_fast_tokens("alice") == []


UPLOAD_TOKEN = "t" * 32


def _seed_v7(conn: sqlite3.Connection) -> None:
    rows = [(UPLOAD_TOKEN, "alice", "cat.jpg", 1234, "image/jpeg", b"d" * 32, 10.0, None, 11.0),
            ("p" * 32, "alice", "draft.txt", 5, "text/plain", b"e" * 32, 20.0, 320.0, None),
            ("c" * 32, "carol", "gone.bin", 1, "application/octet-stream", b"f" * 32, 1.0,
             2.0, None)]
    conn.executemany("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


async def _check_v7(store: SQLiteStorage) -> None:
    done = StoredUpload(UPLOAD_TOKEN, "alice", "cat.jpg", 1234, "image/jpeg", b"d" * 32,
                        10.0, None, 11.0)
    assert await store.get_upload(UPLOAD_TOKEN) == done
    (pending,) = await store.list_pending_uploads()  # carol's went with her (_check_v3)
    assert (pending.token, pending.expires, pending.is_pending) == ("p" * 32, 320.0, True)
    assert [u.token for u in await store.list_uploads("alice")] == [UPLOAD_TOKEN, "p" * 32]
    assert await store.expired_uploads(1000.0, 10) == [pending]  # "never" does not expire
    assert await store.complete_upload("p" * 32, 30.0, 99.0, "text/plain")
    assert not await store.complete_upload("p" * 32, 31.0, 99.0, "text/html")  # once only
    assert await store.upload_tokens() == {UPLOAD_TOKEN, "p" * 32}


#: Rows to insert right after migration N, in the schema of version N.
SEEDS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _seed_v1, 2: _seed_v2, 3: _seed_v3, 4: _seed_v4, 5: _seed_v5, 6: _seed_v6,
    7: _seed_v7}
#: Checks, through the public API at the latest version, that they survived.
CHECKS: dict[int, Callable[[SQLiteStorage], Awaitable[None]]] = {
    1: _check_v1, 2: _check_v2, 3: _check_v3, 4: _check_v4, 5: _check_v5, 6: _check_v6,
    7: _check_v7}


def build_at(path: Path, version: int) -> None:
    """Create a database at ``version`` the way that release would have left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for migration in MIGRATIONS[:version]:
            apply_migrations(conn, MIGRATIONS[: migration.version])
            SEEDS[migration.version](conn)
    finally:
        conn.close()


def read_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return schema_version(conn)
    finally:
        conn.close()


# Packaged migrations -------------------------------------------------------------


def test_migrations_are_numbered_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert MIGRATIONS[0].name == "0001_initial.sql"


def test_every_version_has_seed_rows_and_checks() -> None:
    assert set(SEEDS) == set(CHECKS) == set(range(1, LATEST + 1))


@pytest.mark.parametrize("start", range(LATEST + 1))
async def test_upgrade_from_every_earlier_version(tmp_path: Path, start: int) -> None:
    path = tmp_path / "db.sqlite"
    build_at(path, start)
    async with SQLiteStorage(path) as store:
        for version in range(1, start + 1):
            await CHECKS[version](store)
        # The upgraded schema works for new data too.
        await store.create_account("newcomer", [])
        await store.store_offline("newcomer", "<message/>", 1.0)
    assert read_version(path) == LATEST


async def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    for _ in range(2):
        async with SQLiteStorage(path):
            pass
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    finally:
        conn.close()
    assert rows == [(v,) for v in range(1, LATEST + 1)]


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    build_at(path, LATEST)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST + 1,))
    conn.close()
    store = SQLiteStorage(path)
    with pytest.raises(UnsupportedSchemaVersion, match=f"version {LATEST + 1} .* up to {LATEST}"):
        await store.open()
    with pytest.raises(StorageError, match="not open"):
        await store.list_accounts()
    assert read_version(path) == LATEST + 1


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other-app.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(UnsupportedSchemaVersion, match="not a Stockade database"):
        await SQLiteStorage(path).open()
    conn = sqlite3.connect(path)
    try:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    assert tables == [("users",)]


# The runner, on synthetic migrations ----------------------------------------------

M1 = Migration(1, "0001_t.sql", "CREATE TABLE t (x TEXT NOT NULL);")


def _connect(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "runner.sqlite", isolation_level=None)


def test_runner_applies_only_missing_migrations(tmp_path: Path) -> None:
    conn = _connect(tmp_path)
    assert apply_migrations(conn, [M1]) == 1
    conn.execute("INSERT INTO t VALUES ('kept; really')")
    m2 = Migration(2, "0002_add.sql", "ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 5;")
    # M1 would fail if run again ("table t already exists").
    assert apply_migrations(conn, [M1, m2]) == 2
    assert conn.execute("SELECT x, y FROM t").fetchall() == [("kept; really", 5)]
    conn.close()


def test_failed_migration_is_rolled_back_whole(tmp_path: Path) -> None:
    conn = _connect(tmp_path)
    apply_migrations(conn, [M1])
    broken = Migration(2, "0002_broken.sql", "CREATE TABLE u (y);\nINSERT INTO missing VALUES (1);")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        apply_migrations(conn, [M1, broken])
    assert schema_version(conn) == 1
    assert not conn.in_transaction
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchone() is None
    conn.close()


def test_table_rebuild_keeps_rows_and_foreign_keys(tmp_path: Path) -> None:
    conn = _connect(tmp_path)
    conn.execute("PRAGMA foreign_keys = ON")
    parent_child = Migration(
        1,
        "0001_pc.sql",
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (p INTEGER NOT NULL REFERENCES p (id) ON DELETE CASCADE, v TEXT);",
    )
    apply_migrations(conn, [parent_child])
    conn.execute("INSERT INTO p VALUES (1)")
    conn.execute("INSERT INTO c VALUES (1, 'a;b')")
    # SQLite's 12-step rebuild: impossible with foreign keys on (DROP TABLE p
    # would cascade and empty c), so the runner turns them off around it.
    rebuild = Migration(
        2,
        "0002_rebuild.sql",
        "CREATE TABLE p_new (id INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '');"
        "INSERT INTO p_new (id) SELECT id FROM p;"
        "DROP TABLE p;"
        "ALTER TABLE p_new RENAME TO p;",
    )
    apply_migrations(conn, [parent_child, rebuild])
    assert conn.execute("SELECT p, v FROM c").fetchall() == [(1, "a;b")]
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    conn.close()


def test_migration_leaving_dangling_keys_is_refused(tmp_path: Path) -> None:
    conn = _connect(tmp_path)
    schema = Migration(
        1,
        "0001_pc.sql",
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (p INTEGER NOT NULL REFERENCES p (id));",
    )
    apply_migrations(conn, [schema])
    conn.execute("INSERT INTO p VALUES (1)")
    conn.execute("INSERT INTO c VALUES (1)")
    orphaning = Migration(2, "0002_orphan.sql", "DELETE FROM p;")
    with pytest.raises(StorageError, match="dangling foreign keys"):
        apply_migrations(conn, [schema, orphaning])
    assert schema_version(conn) == 1
    assert conn.execute("SELECT COUNT(*) FROM p").fetchone() == (1,)
    conn.close()


def test_statements_split_only_between_statements(tmp_path: Path) -> None:
    conn = _connect(tmp_path)
    script = Migration(
        1,
        "0001_split.sql",
        "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a;b'); INSERT INTO t VALUES ('c')"
        "; CREATE TRIGGER t_upper AFTER INSERT ON t BEGIN"
        " UPDATE t SET x = upper(x) WHERE rowid = new.rowid; END;"
        "\nINSERT INTO t VALUES ('d')\n-- trailing comment, no final semicolon\n",
    )
    apply_migrations(conn, [script])
    assert conn.execute("SELECT x FROM t ORDER BY rowid").fetchall() == [("a;b",), ("c",), ("D",)]
    conn.close()


def test_truncated_migration_is_rolled_back(tmp_path: Path) -> None:
    conn = _connect(tmp_path)
    truncated = Migration(1, "0001_cut.sql", "CREATE TABLE t (x TEXT); CREATE TABLE u (y")
    with pytest.raises(sqlite3.OperationalError, match=r"incomplete input|syntax error"):
        apply_migrations(conn, [truncated])
    assert schema_version(conn) == 0
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    conn.close()
