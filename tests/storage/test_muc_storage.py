"""Persistent rooms in SQLite (storage/muc.py, migration 0005)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.storage import SQLiteStorage, StorageError
from stockade.storage.muc import MAX_CONFIG_CHARS, StoredAffiliation, StoredRoom

ROOM = "coven@rooms.example.org"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "db.sqlite") as storage:
        yield storage


def room(*affiliations: StoredAffiliation, subject: str | None = None) -> StoredRoom:
    return StoredRoom(ROOM, '{"persistent":true}', 1.5, subject, "crone" if subject else None,
                      2.5 if subject else None, affiliations)


async def test_a_room_round_trips(store: SQLiteStorage) -> None:
    stored = room(StoredAffiliation("crone@example.org", "owner", "crone"),
                  StoredAffiliation("evil.example", "outcast", None, "spam"), subject="Spells")
    await store.put_muc_room(stored)
    assert await store.get_muc_room(ROOM) == stored
    assert await store.list_muc_rooms() == [stored]
    assert await store.get_muc_room("other@rooms.example.org") is None


async def test_putting_again_replaces_affiliations_and_keeps_created(store: SQLiteStorage
                                                                     ) -> None:
    await store.put_muc_room(room(StoredAffiliation("crone@example.org", "owner"),
                                  StoredAffiliation("hag@example.org", "member")))
    later = StoredRoom(ROOM, '{"persistent":true,"name":"Cave"}', 99.0, None, None, None,
                       (StoredAffiliation("crone@example.org", "owner"),))
    await store.put_muc_room(later)
    got = await store.get_muc_room(ROOM)
    assert got is not None
    assert got.affiliations == later.affiliations
    assert got.config == later.config
    assert got.created == 1.5  # the creation time is the first one


async def test_rooms_are_listed_by_jid_with_their_own_affiliations(store: SQLiteStorage
                                                                    ) -> None:
    b = StoredRoom("b@rooms.example.org", "{}", 1.0,
                   affiliations=(StoredAffiliation("x@example.org", "owner"),))
    a = StoredRoom("a@rooms.example.org", "{}", 1.0,
                   affiliations=(StoredAffiliation("y@example.org", "owner"),))
    await store.put_muc_room(b)
    await store.put_muc_room(a)
    assert await store.list_muc_rooms() == [a, b]


async def test_deleting_forgets_the_room_and_its_affiliations(store: SQLiteStorage) -> None:
    await store.put_muc_room(room(StoredAffiliation("crone@example.org", "owner")))
    assert await store.delete_muc_room(ROOM) is True
    assert await store.get_muc_room(ROOM) is None
    assert await store.delete_muc_room(ROOM) is False
    await store.put_muc_room(room())  # no affiliation rows were left behind
    got = await store.get_muc_room(ROOM)
    assert got is not None and got.affiliations == ()


async def test_an_oversized_configuration_is_refused(store: SQLiteStorage) -> None:
    huge = StoredRoom(ROOM, "x" * (MAX_CONFIG_CHARS + 1), 1.0)
    with pytest.raises(StorageError, match="too large"):
        await store.put_muc_room(huge)


def test_records_are_checked_on_construction() -> None:
    with pytest.raises(ValueError, match="invalid room affiliation"):
        StoredAffiliation("x@example.org", "none")
    with pytest.raises(ValueError, match="bare JID"):
        StoredRoom("coven@rooms.example.org/nick", "{}", 1.0)
    with pytest.raises(ValueError, match="one affiliation per JID"):
        room(StoredAffiliation("x@example.org", "owner"),
             StoredAffiliation("x@example.org", "member"))
