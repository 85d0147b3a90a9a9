"""Contract tests for the ``Storage`` Protocol, run against every backend.

Backends are named by a storage URL (what ``open_storage`` accepts), so one
test body serves all of them and a crash test can reopen the store from a
child process. To add PostgreSQL, add a context manager to ``BACKENDS`` that
creates a throw-away database, yields its URL and drops it afterwards (and
skips when no server is configured). SQLite-only checks are at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import stat
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from stockade.core.errors import ConfigError
from stockade.core.sasl.credentials import ScramCredential
from stockade.storage import (
    AccountExists,
    AccountNotFound,
    FingerprintInUse,
    OfflineMessage,
    RosterItem,
    SQLiteStorage,
    Storage,
    StorageError,
    normalize_fingerprint,
    open_storage,
)

# Backends ---------------------------------------------------------------------


@contextlib.contextmanager
def _sqlite_backend(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite://{tmp_path / 'stockade.sqlite'}"


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractContextManager[str]]] = {
    "sqlite": _sqlite_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty store for one test."""
    with BACKENDS[request.param](tmp_path) as url:
        yield url


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """An opened, empty store."""
    async with open_storage(storage_url) as store:
        yield store


# Helpers ----------------------------------------------------------------------


def credential(hash_name: str = "SHA-256", iterations: int = 4096) -> ScramCredential:
    size = {"SHA-1": 20, "SHA-256": 32, "SHA-512": 64}[hash_name]
    return ScramCredential(
        hash_name,
        secrets.token_bytes(16),
        iterations,
        secrets.token_bytes(size),
        secrets.token_bytes(size),
    )


FP_A = "ab" * 32
FP_B = "cd" * 32
FP_A_COLONS_UPPER = ":".join(["AB"] * 32)
HOSTILE = "<message><body>h\u00e9llo ' \" ; DROP TABLE accounts; --</body></message>"


async def populate(storage: Storage, username: str = "alice") -> None:
    """Give an account one of everything."""
    await storage.create_account(username, [credential("SHA-256"), credential("SHA-512")])
    await storage.add_cert_fingerprint(username, FP_A)
    await storage.put_roster_item(username, RosterItem("bob@example.org", "Bob", "both"))
    await storage.store_pending_subscription(username, "eve@example.net", "<presence/>")
    await storage.store_offline(username, HOSTILE, 1_700_000_000.25)


# Accounts -----------------------------------------------------------------------


async def test_create_account(storage: Storage) -> None:
    assert not await storage.account_exists("alice")
    await storage.create_account("alice", [credential()])
    assert await storage.account_exists("alice")
    assert await storage.list_accounts() == ["alice"]


async def test_create_existing_account_raises_and_keeps_credentials(storage: Storage) -> None:
    original = credential()
    await storage.create_account("alice", [original])
    with pytest.raises(AccountExists):
        await storage.create_account("alice", [credential()])
    assert await storage.get_credential("alice", "SHA-256") == original


async def test_account_without_credentials(storage: Storage) -> None:
    await storage.create_account("cert-only", [])
    assert await storage.get_credential("cert-only", "SHA-256") is None


async def test_duplicate_hash_names_rejected(storage: Storage) -> None:
    with pytest.raises(ValueError, match="one SCRAM credential per hash"):
        await storage.create_account("alice", [credential(), credential()])
    assert not await storage.account_exists("alice")
    await storage.create_account("alice", [credential()])
    with pytest.raises(ValueError, match="one SCRAM credential per hash"):
        await storage.set_credentials("alice", [credential(), credential()])


async def test_get_credential_round_trips_every_hash(storage: Storage) -> None:
    creds = {name: credential(name) for name in ("SHA-1", "SHA-256", "SHA-512")}
    await storage.create_account("alice", list(creds.values()))
    for name, cred in creds.items():
        assert await storage.get_credential("alice", name) == cred


async def test_get_credential_missing_is_none(storage: Storage) -> None:
    await storage.create_account("alice", [credential("SHA-256")])
    assert await storage.get_credential("alice", "SHA-512") is None
    assert await storage.get_credential("nobody", "SHA-256") is None


async def test_set_credentials_replaces_all(storage: Storage) -> None:
    await storage.create_account("alice", [credential("SHA-1"), credential("SHA-256")])
    new = credential("SHA-512", iterations=10_000)
    await storage.set_credentials("alice", [new])
    assert await storage.get_credential("alice", "SHA-1") is None
    assert await storage.get_credential("alice", "SHA-256") is None
    assert await storage.get_credential("alice", "SHA-512") == new


async def test_list_accounts_sorted_by_code_point(storage: Storage) -> None:
    names = ["zoe", "alice", "\u00e9mile", "bob", "Zed", "\u4e2d\u6587"]
    for name in names:
        await storage.create_account(name, [])
    assert await storage.list_accounts() == sorted(names)


async def test_usernames_compare_exactly(storage: Storage) -> None:
    # Preparation (case mapping) is the caller's job; storage must not fold.
    await storage.create_account("alice", [])
    assert not await storage.account_exists("Alice")
    await storage.create_account("Alice", [])
    assert await storage.list_accounts() == ["Alice", "alice"]


async def test_delete_unknown_account_raises(storage: Storage) -> None:
    with pytest.raises(AccountNotFound):
        await storage.delete_account("nobody")


async def test_delete_account_removes_everything(storage: Storage) -> None:
    await populate(storage, "alice")
    await storage.create_account("carol", [credential()])
    await storage.put_roster_item("carol", RosterItem("alice@example.org"))
    await storage.store_offline("carol", "<message/>", 1.0)

    await storage.delete_account("alice")

    assert not await storage.account_exists("alice")
    assert await storage.get_credential("alice", "SHA-256") is None
    assert await storage.account_for_fingerprint(FP_A) is None
    # A new account of the same name inherits nothing.
    await storage.create_account("alice", [])
    assert await storage.get_roster("alice") == ("0", [])
    assert await storage.list_cert_fingerprints("alice") == []
    assert await storage.list_pending_subscriptions("alice") == []
    assert await storage.count_offline("alice") == 0
    # Other accounts are untouched.
    assert await storage.count_offline("carol") == 1
    assert len((await storage.get_roster("carol"))[1]) == 1


UNKNOWN_ACCOUNT_CALLS: dict[str, Callable[[Storage], Awaitable[object]]] = {
    "set_credentials": lambda s: s.set_credentials("nobody", [credential()]),
    "delete_account": lambda s: s.delete_account("nobody"),
    "add_cert_fingerprint": lambda s: s.add_cert_fingerprint("nobody", FP_A),
    "remove_cert_fingerprint": lambda s: s.remove_cert_fingerprint("nobody", FP_A),
    "list_cert_fingerprints": lambda s: s.list_cert_fingerprints("nobody"),
    "get_roster": lambda s: s.get_roster("nobody"),
    "put_roster_item": lambda s: s.put_roster_item("nobody", RosterItem("bob@example.org")),
    "remove_roster_item": lambda s: s.remove_roster_item("nobody", "bob@example.org"),
    "roster_version": lambda s: s.roster_version("nobody"),
    "store_pending_subscription": lambda s: s.store_pending_subscription(
        "nobody", "bob@example.org", "<presence/>"
    ),
    "list_pending_subscriptions": lambda s: s.list_pending_subscriptions("nobody"),
    "remove_pending_subscription": lambda s: s.remove_pending_subscription(
        "nobody", "bob@example.org"
    ),
    "store_offline": lambda s: s.store_offline("nobody", "<message/>", 1.0),
    "fetch_offline": lambda s: s.fetch_offline("nobody"),
    "delete_offline": lambda s: s.delete_offline("nobody", [1]),
    "count_offline": lambda s: s.count_offline("nobody"),
}


@pytest.mark.parametrize("method", sorted(UNKNOWN_ACCOUNT_CALLS))
async def test_unknown_account_raises(storage: Storage, method: str) -> None:
    await storage.create_account("somebody", [])
    with pytest.raises(AccountNotFound) as excinfo:
        await UNKNOWN_ACCOUNT_CALLS[method](storage)
    assert excinfo.value.username == "nobody"


async def test_lookups_answer_none_for_unknown_account(storage: Storage) -> None:
    # SECURITY: callers use these to answer peers; an exception here would
    # give an unknown account a different answer from a known one.
    assert await storage.get_credential("nobody", "SHA-256") is None
    assert await storage.get_roster_item("nobody", "bob@example.org") is None


async def test_unknown_account_call_creates_nothing(storage: Storage) -> None:
    with pytest.raises(AccountNotFound):
        await storage.store_offline("nobody", "<message/>", 1.0)
    assert await storage.list_accounts() == []


# Client certificates ---------------------------------------------------------------


def test_normalize_fingerprint() -> None:
    assert normalize_fingerprint(FP_A_COLONS_UPPER) == FP_A
    assert normalize_fingerprint(FP_A.upper()) == FP_A
    for bad in ("", "ab" * 31, "ab" * 33, "zz" * 32, FP_A[:-1] + "-", " ".join(["ab"] * 32)):
        with pytest.raises(ValueError, match="64 hex digits"):
            normalize_fingerprint(bad)


async def test_fingerprints_are_normalised(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.add_cert_fingerprint("alice", FP_A_COLONS_UPPER)
    assert await storage.list_cert_fingerprints("alice") == [FP_A]
    assert await storage.account_for_fingerprint(FP_A) == "alice"
    assert await storage.account_for_fingerprint(FP_A_COLONS_UPPER) == "alice"
    await storage.remove_cert_fingerprint("alice", FP_A.upper())
    assert await storage.list_cert_fingerprints("alice") == []


async def test_fingerprints_listed_sorted_and_added_once(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.add_cert_fingerprint("alice", FP_B)
    await storage.add_cert_fingerprint("alice", FP_A)
    await storage.add_cert_fingerprint("alice", FP_A_COLONS_UPPER)  # same cert again: no-op
    assert await storage.list_cert_fingerprints("alice") == [FP_A, FP_B]


async def test_fingerprint_belongs_to_one_account(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.create_account("mallory", [])
    await storage.add_cert_fingerprint("alice", FP_A)
    with pytest.raises(FingerprintInUse):
        await storage.add_cert_fingerprint("mallory", FP_A)
    # SECURITY: another account cannot unbind alice's certificate either.
    await storage.remove_cert_fingerprint("mallory", FP_A)
    assert await storage.account_for_fingerprint(FP_A) == "alice"
    assert await storage.list_cert_fingerprints("mallory") == []


async def test_unknown_fingerprint(storage: Storage) -> None:
    await storage.create_account("alice", [])
    assert await storage.account_for_fingerprint(FP_B) is None
    await storage.remove_cert_fingerprint("alice", FP_B)  # no-op


async def test_invalid_fingerprint_rejected(storage: Storage) -> None:
    await storage.create_account("alice", [])
    with pytest.raises(ValueError, match="64 hex digits"):
        await storage.add_cert_fingerprint("alice", "deadbeef")
    with pytest.raises(ValueError, match="64 hex digits"):
        await storage.account_for_fingerprint("' OR 1=1 --")


# Roster ---------------------------------------------------------------------------


def test_roster_item_validation() -> None:
    with pytest.raises(ValueError, match="subscription"):
        RosterItem("bob@example.org", subscription="remove")
    with pytest.raises(ValueError, match="bare JID"):
        RosterItem("bob@example.org/phone")
    with pytest.raises(ValueError, match="bare JID"):
        RosterItem("")
    with pytest.raises(ValueError, match="duplicate groups"):
        RosterItem("bob@example.org", groups=("Friends", "Friends"))


async def test_new_roster_is_empty_at_version_zero(storage: Storage) -> None:
    await storage.create_account("alice", [])
    assert await storage.get_roster("alice") == ("0", [])
    assert await storage.roster_version("alice") == "0"


async def test_put_roster_item_bumps_version(storage: Storage) -> None:
    await storage.create_account("alice", [])
    bob = RosterItem("bob@example.org", "Bob", "to", ask=False, approved=True, groups=("B", "A"))
    carol = RosterItem("carol@example.org", None, "none", ask=True)
    assert await storage.put_roster_item("alice", carol) == "1"
    assert await storage.put_roster_item("alice", bob) == "2"
    assert await storage.get_roster("alice") == ("2", [bob, carol])  # sorted by JID
    assert await storage.get_roster_item("alice", "bob@example.org") == bob
    assert await storage.roster_version("alice") == "2"


async def test_put_roster_item_replaces(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.put_roster_item("alice", RosterItem("bob@example.org", "Bob", groups=("A", "B")))
    new = RosterItem("bob@example.org", None, "both", groups=("C",))
    assert await storage.put_roster_item("alice", new) == "2"
    assert await storage.get_roster("alice") == ("2", [new])


async def test_roster_groups_keep_their_order(storage: Storage) -> None:
    await storage.create_account("alice", [])
    item = RosterItem("bob@example.org", groups=("zeta", "Alpha", "\u00e9t\u00e9", "beta"))
    await storage.put_roster_item("alice", item)
    assert await storage.get_roster_item("alice", "bob@example.org") == item


async def test_remove_roster_item(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.put_roster_item("alice", RosterItem("bob@example.org", groups=("A",)))
    assert await storage.remove_roster_item("alice", "bob@example.org") == "2"
    assert await storage.get_roster_item("alice", "bob@example.org") is None
    assert await storage.get_roster("alice") == ("2", [])


async def test_removing_absent_roster_item_keeps_version(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.put_roster_item("alice", RosterItem("bob@example.org"))
    assert await storage.remove_roster_item("alice", "nobody@example.org") == "1"
    assert await storage.roster_version("alice") == "1"


async def test_rosters_are_per_account(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.create_account("bob", [])
    await storage.put_roster_item("alice", RosterItem("carol@example.org"))
    assert await storage.get_roster("bob") == ("0", [])
    assert await storage.get_roster_item("bob", "carol@example.org") is None
    assert await storage.remove_roster_item("bob", "carol@example.org") == "0"
    assert len((await storage.get_roster("alice"))[1]) == 1


# Pending subscription requests ------------------------------------------------------


async def test_pending_subscriptions(storage: Storage) -> None:
    await storage.create_account("alice", [])
    assert await storage.list_pending_subscriptions("alice") == []
    await storage.store_pending_subscription("alice", "bob@example.org", "<presence id='1'/>")
    await storage.store_pending_subscription("alice", "carol@example.org", "<presence id='2'/>")
    assert await storage.list_pending_subscriptions("alice") == [
        ("bob@example.org", "<presence id='1'/>"),
        ("carol@example.org", "<presence id='2'/>"),
    ]
    await storage.remove_pending_subscription("alice", "bob@example.org")
    await storage.remove_pending_subscription("alice", "nobody@example.org")  # no-op
    assert await storage.list_pending_subscriptions("alice") == [
        ("carol@example.org", "<presence id='2'/>")
    ]


async def test_latest_pending_subscription_wins(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.store_pending_subscription("alice", "bob@example.org", "<presence id='1'/>")
    await storage.store_pending_subscription("alice", "carol@example.org", "<presence id='2'/>")
    await storage.store_pending_subscription("alice", "bob@example.org", HOSTILE)
    assert await storage.list_pending_subscriptions("alice") == [
        ("carol@example.org", "<presence id='2'/>"),
        ("bob@example.org", HOSTILE),
    ]


async def test_pending_subscriptions_are_per_account(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.create_account("bob", [])
    await storage.store_pending_subscription("alice", "eve@example.net", "<presence/>")
    await storage.remove_pending_subscription("bob", "eve@example.net")
    assert await storage.list_pending_subscriptions("bob") == []
    assert len(await storage.list_pending_subscriptions("alice")) == 1


# Offline messages -------------------------------------------------------------------


async def test_offline_round_trip(storage: Storage) -> None:
    await storage.create_account("alice", [])
    stamp = 1_700_000_000.123456
    msg_id = await storage.store_offline("alice", HOSTILE, stamp)
    assert await storage.fetch_offline("alice") == [OfflineMessage(msg_id, HOSTILE, stamp)]
    assert await storage.count_offline("alice") == 1


async def test_offline_oldest_first_by_arrival(storage: Storage) -> None:
    await storage.create_account("alice", [])
    # Stamps out of order (a clock stepped back): arrival order still rules.
    stamps = [100.5, 300.0, 200.25, 50.0]
    ids = [await storage.store_offline("alice", f"<m n='{i}'/>", s) for i, s in enumerate(stamps)]
    assert ids == sorted(ids)
    fetched = await storage.fetch_offline("alice")
    assert [m.id for m in fetched] == ids
    assert [m.stamp for m in fetched] == stamps
    assert [m.stanza for m in fetched] == [f"<m n='{i}'/>" for i in range(4)]


async def test_fetch_offline_limit(storage: Storage) -> None:
    await storage.create_account("alice", [])
    ids = [await storage.store_offline("alice", f"<m n='{i}'/>", float(i)) for i in range(5)]
    assert [m.id for m in await storage.fetch_offline("alice", limit=2)] == ids[:2]
    assert await storage.count_offline("alice") == 5  # fetching does not delete
    with pytest.raises(ValueError, match="limit"):
        await storage.fetch_offline("alice", limit=0)


async def test_store_offline_rejects_non_finite_stamp(storage: Storage) -> None:
    await storage.create_account("alice", [])
    for stamp in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            await storage.store_offline("alice", "<message/>", stamp)
    assert await storage.count_offline("alice") == 0


async def test_delete_offline(storage: Storage) -> None:
    await storage.create_account("alice", [])
    ids = [await storage.store_offline("alice", f"<m n='{i}'/>", float(i)) for i in range(4)]
    await storage.delete_offline("alice", [ids[0], ids[2], 999_999])
    await storage.delete_offline("alice", [])
    assert [m.id for m in await storage.fetch_offline("alice")] == [ids[1], ids[3]]
    assert await storage.count_offline("alice") == 2


async def test_delete_offline_only_touches_own_messages(storage: Storage) -> None:
    await storage.create_account("alice", [])
    await storage.create_account("mallory", [])
    alice_id = await storage.store_offline("alice", "<message/>", 1.0)
    # SECURITY: ids are guessable; deletion must be scoped to the account.
    await storage.delete_offline("mallory", [alice_id])
    assert await storage.count_offline("alice") == 1
    assert await storage.fetch_offline("mallory") == []


async def test_offline_ids_never_reused(storage: Storage) -> None:
    await storage.create_account("alice", [])
    first = await storage.store_offline("alice", "<m n='1'/>", 1.0)
    await storage.delete_offline("alice", [first])
    second = await storage.store_offline("alice", "<m n='2'/>", 2.0)
    assert second > first


async def test_concurrent_store_offline(storage: Storage) -> None:
    await storage.create_account("alice", [])
    ids = await asyncio.gather(
        *(storage.store_offline("alice", f"<m n='{i}'/>", float(i)) for i in range(200))
    )
    assert len(set(ids)) == 200
    assert await storage.count_offline("alice") == 200
    fetched = await storage.fetch_offline("alice")
    assert [m.id for m in fetched] == sorted(ids)
    assert {m.stanza for m in fetched} == {f"<m n='{i}'/>" for i in range(200)}


# Lifecycle and durability ---------------------------------------------------------


async def test_data_survives_reopen(storage_url: str) -> None:
    cred = credential("SHA-512")
    item = RosterItem("bob@example.org", "Bob", "from", ask=True, approved=False, groups=("x",))
    async with open_storage(storage_url) as store:
        await store.create_account("alice", [cred])
        await store.add_cert_fingerprint("alice", FP_A)
        await store.put_roster_item("alice", item)
        await store.store_pending_subscription("alice", "eve@example.net", "<presence/>")
        msg_id = await store.store_offline("alice", HOSTILE, 12.5)

    async with open_storage(storage_url) as store:
        assert await store.list_accounts() == ["alice"]
        assert await store.get_credential("alice", "SHA-512") == cred
        assert await store.account_for_fingerprint(FP_A) == "alice"
        assert await store.get_roster("alice") == ("1", [item])
        assert await store.list_pending_subscriptions("alice") == [
            ("eve@example.net", "<presence/>")
        ]
        assert await store.fetch_offline("alice") == [OfflineMessage(msg_id, HOSTILE, 12.5)]


_CRASH_SCRIPT = """
import asyncio, os, sys
from stockade.storage import open_storage

async def main():
    store = open_storage(sys.argv[1])
    await store.open()
    print(await store.store_offline("alice", "<message>kept</message>", 42.0), flush=True)
    os._exit(0)  # die right after the acknowledgement: no close(), no cleanup

asyncio.run(main())
"""


async def test_acknowledged_message_survives_crash(storage_url: str) -> None:
    async with open_storage(storage_url) as store:
        await store.create_account("alice", [])
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASH_SCRIPT, storage_url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    msg_id = int(out)
    async with open_storage(storage_url) as store:
        assert await store.fetch_offline("alice") == [
            OfflineMessage(msg_id, "<message>kept</message>", 42.0)
        ]


async def test_calls_need_an_open_store(storage_url: str) -> None:
    store = open_storage(storage_url)
    with pytest.raises(StorageError, match="not open"):
        await store.account_exists("alice")
    await store.open()
    with pytest.raises(StorageError, match="already open"):
        await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageError, match="not open"):
        await store.list_accounts()
    await store.open()  # the same object can be reopened
    assert await store.list_accounts() == []
    await store.close()


async def test_close_finishes_calls_already_made(storage_url: str) -> None:
    store = open_storage(storage_url)
    await store.open()
    await store.create_account("alice", [])
    pending = [
        asyncio.ensure_future(store.store_offline("alice", "<m/>", float(i))) for i in range(20)
    ]
    await asyncio.sleep(0)  # let every task reach the store before closing
    await store.close()
    assert all(task.done() and not task.exception() for task in pending)
    async with open_storage(storage_url) as reopened:
        assert await reopened.count_offline("alice") == 20


# SQLite backend specifics -------------------------------------------------------


class _Spy:
    """Wraps sqlite3.connect to see which thread runs each statement."""

    def __init__(self) -> None:
        self.statements: list[tuple[int, str]] = []
        self.connections: list[sqlite3.Connection] = []


@pytest.fixture
def sqlite_spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    spy = _Spy()
    real_connect = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        # check_same_thread=False only so the test can read PRAGMAs afterwards.
        conn = real_connect(*args, **kwargs, check_same_thread=False)  # type: ignore[call-overload]
        conn.set_trace_callback(lambda sql: spy.statements.append((threading.get_ident(), sql)))
        spy.connections.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    return spy


async def test_sqlite_runs_every_statement_on_one_worker_thread(
    tmp_path: Path, sqlite_spy: _Spy
) -> None:
    async with SQLiteStorage(tmp_path / "db.sqlite") as store:
        await populate(store)
        await asyncio.gather(*(store.count_offline("alice") for _ in range(20)))
        await store.fetch_offline("alice")
    threads = {ident for ident, _ in sqlite_spy.statements}
    assert len(sqlite_spy.statements) > 50
    assert threads.isdisjoint({threading.get_ident()})  # never the event loop's thread
    assert len(threads) == 1


async def test_sqlite_loop_runs_while_storage_waits(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SQLiteStorage(path) as store:
        await store.create_account("alice", [])
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            task = asyncio.ensure_future(store.store_offline("alice", "<m/>", 1.0))
            # If the call blocked the loop, this sleep would only end after
            # busy_timeout, with the task already failed.
            await asyncio.sleep(0.2)
            assert not task.done()
            other.execute("COMMIT")
        finally:
            other.close()
        assert await task > 0


async def test_sqlite_calls_made_while_opening_wait_for_it(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "db.sqlite")
    opening = asyncio.ensure_future(store.open())
    await asyncio.sleep(0)  # open() has started and handed its work to the worker
    with pytest.raises(StorageError, match="already open"):
        await store.open()
    assert await store.list_accounts() == []
    await opening
    await store.close()


async def test_sqlite_pragmas(tmp_path: Path, sqlite_spy: _Spy) -> None:
    async with SQLiteStorage(tmp_path / "db.sqlite"):
        (conn,) = sqlite_spy.connections

        def pragma(name: str) -> object:
            return conn.execute(f"PRAGMA {name}").fetchone()[0]

        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 5000
        assert pragma("secure_delete") == 1
        assert pragma("trusted_schema") == 0


async def test_sqlite_file_is_private_and_directory_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "db.sqlite"
    async with SQLiteStorage(path) as store:
        await populate(store)
        files = [path, *(p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())]
        assert len(files) == 3  # WAL is in use while open
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_sqlite_errors_surface_as_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SQLiteStorage(path) as store:
        await store.create_account("alice", [])
        vandal = sqlite3.connect(path, isolation_level=None)
        vandal.execute("DROP TABLE offline_messages")
        vandal.close()
        with pytest.raises(StorageError, match="no such table") as excinfo:
            await store.store_offline("alice", "<m/>", 1.0)
        assert isinstance(excinfo.value.__cause__, sqlite3.Error)
        # The failed transaction was rolled back; the store keeps working.
        assert await store.account_exists("alice")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/var/lib/stockade/db.sqlite", "/var/lib/stockade/db.sqlite"),
        ("relative/db.sqlite", "relative/db.sqlite"),
        ("sqlite:///var/lib/stockade/db.sqlite", "/var/lib/stockade/db.sqlite"),
        ("sqlite:////var/lib/stockade/db.sqlite", "/var/lib/stockade/db.sqlite"),
        ("sqlite:///tmp/with%20space.sqlite", "/tmp/with space.sqlite"),
    ],
)
def test_open_storage_accepts_paths_and_urls(spec: str, expected: str) -> None:
    store = open_storage(spec)
    assert isinstance(store, SQLiteStorage)
    assert store.path == Path(expected)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "postgresql://db/stockade",
        "sqlite://host/db.sqlite",
        "sqlite:///",
        "sqlite:///x?mode=ro",
    ],
)
def test_open_storage_rejects(spec: str) -> None:
    with pytest.raises(ConfigError):
        open_storage(spec)
