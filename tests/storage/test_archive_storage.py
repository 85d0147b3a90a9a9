"""Contract tests for ``ArchiveStorage`` (message archives of users and rooms).

Run against every backend of the storage contract suite (``BACKENDS`` there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.storage.test_storage_contract import BACKENDS

from stockade.storage import AccountNotFound, Storage, StorageError, open_storage
from stockade.storage.archive import ArchivedMessage, ArchiveFilter, ArchiveIdNotFound

ROOM = "lobby@rooms.example.org"
ROMEO = "romeo@example.org"


@pytest.fixture(params=sorted(BACKENDS))
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty store, for each backend of the contract suite."""
    with BACKENDS[request.param](tmp_path) as url:
        yield url


@pytest.fixture
async def store(storage_url: str) -> AsyncIterator[Storage]:
    storage = open_storage(storage_url)
    await storage.open()
    for user in ("juliet", "romeo"):
        await storage.create_account(user, [])
    try:
        yield storage
    finally:
        await storage.close()


async def fill(store: Storage, owner: str, count: int, *, with_jid: str = ROMEO + "/orchard",
               stamp_us: int = 1_000_000, step_us: int = 1_000_000, prefix: str = "m",
               ) -> list[ArchivedMessage]:
    return [await store.archive_append(owner, f"{prefix}{i}", stamp_us + i * step_us, with_jid,
                                       f"<message xmlns='jabber:client'><body>{i}</body>"
                                       "</message>") for i in range(count)]


def ids(messages: list[ArchivedMessage]) -> list[str]:
    return [m.id for m in messages]


async def test_append_and_get(store: Storage) -> None:
    stored = await store.archive_append("juliet", "a1", 5, ROMEO + "/orchard", "<message/>")
    assert stored == ArchivedMessage("a1", 5, ROMEO + "/orchard", "<message/>")
    assert await store.archive_get("juliet", "a1") == stored
    assert await store.archive_get("juliet", "nope") is None
    assert await store.archive_get("romeo", "a1") is None  # per archive
    assert await store.archive_count("juliet") == 1


async def test_an_account_archive_needs_the_account_a_room_does_not(store: Storage) -> None:
    with pytest.raises(AccountNotFound):
        await store.archive_append("nobody", "a1", 1, ROMEO, "<message/>")
    await store.archive_append(ROOM, "a1", 1, ROOM + "/romeo", "<message/>")
    assert await store.archive_count(ROOM) == 1


async def test_ids_are_unique_per_archive_only(store: Storage) -> None:
    await store.archive_append("juliet", "same", 1, ROMEO, "<message/>")
    await store.archive_append("romeo", "same", 1, "juliet@example.org", "<message/>")
    with pytest.raises(StorageError):
        await store.archive_append("juliet", "same", 2, ROMEO, "<message/>")


async def test_order_is_append_order_even_with_equal_stamps(store: Storage) -> None:
    await fill(store, "juliet", 5, step_us=0)
    page = await store.archive_query("juliet", ArchiveFilter(), limit=10)
    assert ids(page.messages) == ["m0", "m1", "m2", "m3", "m4"]
    assert (page.complete, page.count) == (True, 5)


async def test_stamps_never_go_backwards_within_an_archive(store: Storage) -> None:
    await store.archive_append("juliet", "late", 2_000, ROMEO, "<message/>")
    # The clock stepped back: the stamp is raised so that order and stamps agree.
    earlier = await store.archive_append("juliet", "early", 1_000, ROMEO, "<message/>")
    assert earlier.stamp_us == 2_000
    # Other archives keep their own stamps.
    assert (await store.archive_append("romeo", "x", 1_000, ROMEO, "<message/>")).stamp_us == 1_000


async def test_forward_paging(store: Storage) -> None:
    await fill(store, "juliet", 7)
    first = await store.archive_query("juliet", ArchiveFilter(), limit=3)
    assert (ids(first.messages), first.complete, first.count) == (["m0", "m1", "m2"], False, 7)
    second = await store.archive_query("juliet", ArchiveFilter(), limit=3, after="m2")
    assert (ids(second.messages), second.complete) == (["m3", "m4", "m5"], False)
    third = await store.archive_query("juliet", ArchiveFilter(), limit=3, after="m5")
    assert (ids(third.messages), third.complete, third.count) == (["m6"], True, 7)
    exact = await store.archive_query("juliet", ArchiveFilter(), limit=4, after="m2")
    assert (ids(exact.messages), exact.complete) == (["m3", "m4", "m5", "m6"], True)


async def test_backward_paging_gives_the_last_pages_oldest_first(store: Storage) -> None:
    await fill(store, "juliet", 7)
    last = await store.archive_query("juliet", ArchiveFilter(), limit=3, backwards=True)
    assert (ids(last.messages), last.complete) == (["m4", "m5", "m6"], False)
    before = await store.archive_query("juliet", ArchiveFilter(), limit=3, before="m4",
                                       backwards=True)
    assert (ids(before.messages), before.complete) == (["m1", "m2", "m3"], False)
    start = await store.archive_query("juliet", ArchiveFilter(), limit=3, before="m1",
                                      backwards=True)
    assert (ids(start.messages), start.complete) == (["m0"], True)


async def test_limit_zero_counts_only(store: Storage) -> None:
    await fill(store, "juliet", 4)
    page = await store.archive_query("juliet", ArchiveFilter(), limit=0)
    assert (page.messages, page.complete, page.count) == ([], False, 4)
    with pytest.raises(ValueError):
        await store.archive_query("juliet", ArchiveFilter(), limit=-1)


async def test_unknown_cursor_or_id_is_item_not_found(store: Storage) -> None:
    await fill(store, "juliet", 2)
    await fill(store, "romeo", 1, prefix="r")
    for kwargs in ({"after": "r0"}, {"before": "zz", "backwards": True}):
        with pytest.raises(ArchiveIdNotFound):
            await store.archive_query("juliet", ArchiveFilter(), limit=5, **kwargs)
    for selection in (ArchiveFilter(after_id="r0"), ArchiveFilter(before_id="x"),
                      ArchiveFilter(ids=("m0", "missing"))):
        with pytest.raises(ArchiveIdNotFound):
            await store.archive_query("juliet", selection, limit=5)
    # Even when a time filter matches nothing, a bad cursor is still reported.
    with pytest.raises(ArchiveIdNotFound):
        await store.archive_query("juliet", ArchiveFilter(start_us=10**15), limit=5,
                                  after="r0")


async def test_with_filter_bare_matches_all_resources_full_matches_exactly(
        store: Storage) -> None:
    await fill(store, "juliet", 2, with_jid=ROMEO + "/orchard", prefix="o")
    await fill(store, "juliet", 2, with_jid=ROMEO + "/garden", prefix="g", stamp_us=10**8)
    await fill(store, "juliet", 1, with_jid="nurse@example.org", prefix="n", stamp_us=10**9)
    bare = await store.archive_query("juliet", ArchiveFilter(with_jid=ROMEO), limit=10)
    assert ids(bare.messages) == ["o0", "o1", "g0", "g1"] and bare.count == 4
    full = await store.archive_query("juliet", ArchiveFilter(with_jid=ROMEO + "/garden"),
                                     limit=10)
    assert ids(full.messages) == ["g0", "g1"]
    assert full.messages[0].with_jid == ROMEO + "/garden"
    nurse = await store.archive_query("juliet", ArchiveFilter(with_jid="nurse@example.org"),
                                      limit=10)
    assert ids(nurse.messages) == ["n0"]
    assert nurse.messages[0].with_jid == "nurse@example.org"


async def test_time_filters_are_inclusive(store: Storage) -> None:
    await fill(store, "juliet", 6)  # stamps 1, 2, ... 6 s
    page = await store.archive_query("juliet", ArchiveFilter(start_us=2_000_000,
                                                             end_us=4_000_000), limit=10)
    assert (ids(page.messages), page.count) == (["m1", "m2", "m3"], 3)
    after = await store.archive_query("juliet", ArchiveFilter(start_us=5_500_000), limit=10)
    assert ids(after.messages) == ["m5"]
    none = await store.archive_query("juliet", ArchiveFilter(start_us=7_000_000), limit=10)
    assert (none.messages, none.count, none.complete) == ([], 0, True)
    none = await store.archive_query("juliet", ArchiveFilter(end_us=10), limit=10)
    assert none.messages == []
    backwards = await store.archive_query("juliet", ArchiveFilter(end_us=4_000_000), limit=2,
                                          backwards=True)
    assert (ids(backwards.messages), backwards.complete) == (["m2", "m3"], False)


async def test_id_bounds_and_id_lists(store: Storage) -> None:
    await fill(store, "juliet", 6)
    between = await store.archive_query(
        "juliet", ArchiveFilter(after_id="m1", before_id="m4"), limit=10)
    assert (ids(between.messages), between.count) == (["m2", "m3"], 2)
    picked = await store.archive_query("juliet", ArchiveFilter(ids=("m4", "m0")), limit=10)
    assert ids(picked.messages) == ["m0", "m4"]  # archive order, not request order
    combined = await store.archive_query(
        "juliet", ArchiveFilter(ids=("m4", "m0"), start_us=3_000_000), limit=10)
    assert ids(combined.messages) == ["m4"]


async def test_filters_and_paging_combine(store: Storage) -> None:
    for i in range(6):
        with_jid = ROMEO if i % 2 else "nurse@example.org"
        await store.archive_append("juliet", f"m{i}", i, with_jid, "<message/>")
    selection = ArchiveFilter(with_jid=ROMEO)
    first = await store.archive_query("juliet", selection, limit=2)
    assert (ids(first.messages), first.complete, first.count) == (["m1", "m3"], False, 3)
    # The cursor may be any id of the archive, even one the filter does not select.
    rest = await store.archive_query("juliet", selection, limit=2, after="m2")
    assert (ids(rest.messages), rest.complete) == (["m3", "m5"], True)


async def test_archives_are_separate(store: Storage) -> None:
    await fill(store, "juliet", 2)
    await fill(store, ROOM, 3, prefix="r")
    assert ids((await store.archive_query(ROOM, ArchiveFilter(), limit=10)).messages) == [
        "r0", "r1", "r2"]
    assert (await store.archive_query("romeo", ArchiveFilter(), limit=10)).count == 0


async def test_bounds(store: Storage) -> None:
    assert await store.archive_bounds("juliet") is None
    made = await fill(store, "juliet", 3)
    assert await store.archive_bounds("juliet") == (made[0], made[2])


async def test_expiry_deletes_the_oldest_in_bounded_batches(store: Storage) -> None:
    await fill(store, "juliet", 5)  # stamps 1..5 s
    await fill(store, ROOM, 3, prefix="r", stamp_us=500_000)  # 0.5, 1.5, 2.5 s
    assert await store.archive_delete_expired(3_000_000, limit=3) == 3
    assert await store.archive_delete_expired(3_000_000, limit=3) == 2
    assert await store.archive_delete_expired(3_000_000, limit=3) == 0
    assert ids((await store.archive_query("juliet", ArchiveFilter(), limit=10)).messages) == [
        "m2", "m3", "m4"]
    assert await store.archive_count(ROOM) == 0
    with pytest.raises(ValueError):
        await store.archive_delete_expired(1, limit=0)


async def test_deleting_an_account_deletes_its_archive(store: Storage) -> None:
    await fill(store, "juliet", 3)
    await fill(store, "romeo", 2)
    await fill(store, ROOM, 2)
    await store.delete_account("juliet")
    assert await store.archive_count("juliet") == 0
    # A new account of the same name starts with an empty archive.
    await store.create_account("juliet", [])
    assert await store.archive_bounds("juliet") is None
    assert await store.archive_count("romeo") == 2
    assert await store.archive_count(ROOM) == 2


async def test_deleting_a_room_archive(store: Storage) -> None:
    await fill(store, ROOM, 3)
    await fill(store, "juliet", 1)
    assert await store.archive_delete_owner(ROOM) == 3
    assert await store.archive_count(ROOM) == 0
    assert await store.archive_count("juliet") == 1


async def test_archive_survives_reopen(storage_url: str) -> None:
    first = open_storage(storage_url)
    async with first:
        await first.create_account("juliet", [])
        made = await fill(first, "juliet", 2)
    async with open_storage(storage_url) as second:
        page = await second.archive_query("juliet", ArchiveFilter(), limit=10)
        assert page.messages == made


async def test_concurrent_appends_commit_together_and_fail_alone(store: Storage) -> None:
    await store.archive_append("juliet", "taken", 1, ROMEO, "<message/>")
    outcomes = await asyncio.gather(
        *(store.archive_append("juliet", f"c{i}", 2, ROMEO, "<message/>") for i in range(50)),
        store.archive_append("nobody", "n1", 2, ROMEO, "<message/>"),
        store.archive_append("juliet", "taken", 2, ROMEO, "<message/>"),
        store.archive_append(ROOM, "r1", 2, ROOM + "/romeo", "<message/>"),
        return_exceptions=True)
    assert all(isinstance(o, ArchivedMessage) for o in outcomes[:50])
    assert isinstance(outcomes[50], AccountNotFound)
    assert isinstance(outcomes[51], StorageError)
    assert isinstance(outcomes[52], ArchivedMessage)
    page = await store.archive_query("juliet", ArchiveFilter(), limit=100)
    assert ids(page.messages) == ["taken"] + [f"c{i}" for i in range(50)]  # in call order


async def test_a_cancelled_append_is_still_written(store: Storage) -> None:
    task = asyncio.ensure_future(store.archive_append("juliet", "a1", 1, ROMEO, "<message/>"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if await store.archive_get("juliet", "a1") is not None:
            break
        await asyncio.sleep(0.01)
    assert await store.archive_get("juliet", "a1") is not None
