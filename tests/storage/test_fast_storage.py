"""FAST token storage (storage/fast.py) on SQLite: slots, rotation, replay counter, revocation
(by the CLI's call, a password change, account deletion)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.sasl import derive_credential
from stockade.core.sasl.ht import FastToken, choose_token, initiator_proof, issue_token
from stockade.storage import AccountNotFound, SQLiteStorage
from stockade.storage.fast import TokenChooser

NOW = 1_750_000_000.0
MECH = "HT-SHA-256-NONE"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "db.sqlite") as storage:
        await storage.create_account("alice", [derive_credential("pw-pw-pw-pw", "SHA-256", 4096)])
        yield storage


def chooser(token: str, *, count: int | None = None, invalidate: bool = False,
            now: float = NOW) -> TokenChooser:
    return functools.partial(choose_token, mechanism=MECH, proof=initiator_proof(MECH, token, b""),
                             count=count, invalidate=invalidate, now=now)


async def issue(store: SQLiteStorage, client: str = "phone", lifetime: float = 100) -> str:
    token, record = issue_token(MECH, b"", now=NOW, lifetime_s=lifetime)
    await store.store_fast_token("alice", client, record)
    return token


async def slots(store: SQLiteStorage, client: str = "phone") -> dict[str, FastToken]:
    return {t.slot: t for c, t in await store.list_fast_tokens("alice") if c == client}


async def test_a_new_token_waits_in_the_new_slot_until_used(store: SQLiteStorage) -> None:
    first = await issue(store)
    assert set(await slots(store)) == {"new"}
    use = await store.use_fast_token("alice", "phone", chooser(first))
    assert use is not None and use.token.slot == "new"
    assert set(await slots(store)) == {"current"}


async def test_rotation_keeps_the_old_token_until_the_new_one_is_used(
        store: SQLiteStorage) -> None:
    old = await issue(store)
    await store.use_fast_token("alice", "phone", chooser(old))
    new = await issue(store, lifetime=200)
    # XEP-0484 §3.5: "MUST NOT invalidate the existing token until the new token is used".
    assert await store.use_fast_token("alice", "phone", chooser(old)) is not None
    assert set(await slots(store)) == {"current", "new"}
    assert await store.use_fast_token("alice", "phone", chooser(new)) is not None
    assert await store.use_fast_token("alice", "phone", chooser(old)) is None  # gone now
    assert set(await slots(store)) == {"current"}


async def test_an_unused_new_token_is_replaced_by_a_newer_one(store: SQLiteStorage) -> None:
    unused = await issue(store)
    newer = await issue(store)
    assert await store.use_fast_token("alice", "phone", chooser(unused)) is None
    assert await store.use_fast_token("alice", "phone", chooser(newer)) is not None


async def test_using_the_current_token_drops_new_tokens_expiring_earlier(
        store: SQLiteStorage) -> None:
    current = await issue(store, lifetime=500)
    await store.use_fast_token("alice", "phone", chooser(current))
    await issue(store, lifetime=100)  # expires before the current one
    await store.use_fast_token("alice", "phone", chooser(current))
    assert set(await slots(store)) == {"current"}


async def test_invalidate_revokes_every_token_of_the_client(store: SQLiteStorage) -> None:
    old = await issue(store)
    await store.use_fast_token("alice", "phone", chooser(old))
    await issue(store)
    other = await issue(store, client="laptop")
    use = await store.use_fast_token("alice", "phone", chooser(old, invalidate=True))
    assert use is not None and use.invalidate
    assert await slots(store) == {}
    assert await store.use_fast_token("alice", "laptop", chooser(other)) is not None


async def test_the_replay_counter_is_kept_and_checked_atomically(store: SQLiteStorage) -> None:
    token = await issue(store)
    results = await asyncio.gather(*(
        store.use_fast_token("alice", "phone", chooser(token, count=5)) for _ in range(4)))
    assert sum(r is not None for r in results) == 1  # one transaction each: one wins
    assert (await slots(store))["current"].last_count == 5
    assert await store.use_fast_token("alice", "phone", chooser(token, count=6)) is not None
    # No count (not 0-RTT): accepted, and the counter stays.
    assert await store.use_fast_token("alice", "phone", chooser(token)) is not None
    assert (await slots(store))["current"].last_count == 6


async def test_a_refused_check_changes_nothing(store: SQLiteStorage) -> None:
    token = await issue(store)
    assert await store.use_fast_token("alice", "phone", chooser(token, now=NOW + 1000)) is None
    assert set(await slots(store)) == {"new"}


async def test_revocation_by_client_or_account(store: SQLiteStorage) -> None:
    await issue(store, "phone")
    await issue(store, "laptop")
    assert await store.revoke_fast_tokens("alice", "phone") == 1
    assert [c for c, _ in await store.list_fast_tokens("alice")] == ["laptop"]
    assert await store.revoke_fast_tokens("alice") == 1
    assert await store.list_fast_tokens("alice") == []


async def test_password_change_and_account_deletion_revoke_tokens(store: SQLiteStorage) -> None:
    token = await issue(store)
    await store.set_credentials("alice", [derive_credential("new-pw-new", "SHA-256", 4096)])
    assert await store.use_fast_token("alice", "phone", chooser(token)) is None
    await issue(store)
    await store.delete_account("alice")
    assert await store.list_fast_tokens("alice") == []


async def test_bad_arguments(store: SQLiteStorage) -> None:
    _, record = issue_token(MECH, b"", now=NOW, lifetime_s=1)
    with pytest.raises(AccountNotFound):
        await store.store_fast_token("nobody", "phone", record)
    with pytest.raises(ValueError, match="client id"):
        await store.store_fast_token("alice", "x" * 129, record)
    current = FastToken(MECH, record.verifier, record.responder, 1, "current")
    with pytest.raises(ValueError, match="'new' slot"):
        await store.store_fast_token("alice", "phone", current)
