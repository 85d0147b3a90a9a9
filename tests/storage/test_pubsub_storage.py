"""Contract tests for ``PubsubStorage`` (PEP nodes and items), on every storage backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_storage_contract import BACKENDS

from stockade.storage import AccountNotFound, Storage, open_storage
from stockade.storage.pubsub import (
    PubsubItem,
    PubsubLimits,
    PubsubNodeLimit,
    PubsubNodeNotFound,
    PubsubQuotaExceeded,
)

LIMITS = PubsubLimits(max_items=10, max_nodes=5, max_account_bytes=10_000)
NODE = "urn:xmpp:omemo:2:bundles"


@pytest.fixture(params=sorted(BACKENDS))
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with BACKENDS[request.param](tmp_path) as url:
        yield url


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    async with open_storage(storage_url) as store:
        for user in ("alice", "bob"):
            await store.create_account(user, [])
        yield store


def item(item_id: str, payload: str = "<x xmlns='urn:t'/>", stamp: float = 1.0) -> PubsubItem:
    return PubsubItem(item_id, payload, "alice@example.org/phone", stamp)


async def publish(store: Storage, item_id: str, *, node: str = NODE, user: str = "alice",
                  limits: PubsubLimits = LIMITS, payload: str = "<x xmlns='urn:t'/>",
                  ) -> list[str]:
    return await store.publish_pubsub_item(user, node, item(item_id, payload), limits,
                                           create_config="{}")


async def ids(store: Storage, node: str = NODE, user: str = "alice", **kwargs: object,
              ) -> list[str]:
    return [i.id for i in await store.get_pubsub_items(user, node, **kwargs)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- nodes


async def test_create_get_and_list_nodes(storage: Storage) -> None:
    assert await storage.create_pubsub_node("alice", "b", '{"v":1}', max_nodes=5)
    assert await storage.create_pubsub_node("alice", "a", "{}", max_nodes=5)
    assert not await storage.create_pubsub_node("alice", "a", "changed", max_nodes=5)
    node = await storage.get_pubsub_node("alice", "b")
    assert node is not None and (node.name, node.config) == ("b", '{"v":1}')
    assert [n.name for n in await storage.list_pubsub_nodes("alice")] == ["a", "b"]
    assert (await storage.get_pubsub_node("alice", "a")).config == "{}"  # type: ignore[union-attr]
    assert await storage.list_pubsub_nodes("bob") == []


async def test_node_limit(storage: Storage) -> None:
    for name in ("n1", "n2"):
        await storage.create_pubsub_node("alice", name, "{}", max_nodes=2)
    with pytest.raises(PubsubNodeLimit):
        await storage.create_pubsub_node("alice", "n3", "{}", max_nodes=2)
    with pytest.raises(PubsubNodeLimit):
        await storage.publish_pubsub_item("alice", "n3", item("i"),
                                          PubsubLimits(10, 2, 10_000), create_config="{}")
    assert await storage.get_pubsub_node("alice", "n3") is None
    assert await storage.create_pubsub_node("bob", "n1", "{}", max_nodes=2)  # per account


async def test_missing_account(storage: Storage) -> None:
    with pytest.raises(AccountNotFound):
        await storage.create_pubsub_node("nobody", "n", "{}", max_nodes=5)
    with pytest.raises(AccountNotFound):
        await publish(storage, "i", user="nobody")
    assert await storage.get_pubsub_node("nobody", "n") is None
    assert await storage.list_pubsub_nodes("nobody") == []
    assert await storage.get_pubsub_items("nobody", "n") == []


async def test_delete_node_takes_its_items(storage: Storage) -> None:
    await publish(storage, "i1")
    assert await storage.delete_pubsub_node("alice", NODE)
    assert not await storage.delete_pubsub_node("alice", NODE)
    assert await storage.get_pubsub_node("alice", NODE) is None
    await storage.create_pubsub_node("alice", NODE, "{}", max_nodes=5)
    assert await ids(storage) == []  # the old items did not come back


async def test_configure_replaces_config_and_trims(storage: Storage) -> None:
    for i in range(4):
        await publish(storage, f"i{i}")
    trimmed = await storage.configure_pubsub_node("alice", NODE, '{"new":1}', max_items=1)
    assert trimmed == ["i0", "i1", "i2"]
    assert await ids(storage) == ["i3"]
    assert (await storage.get_pubsub_node("alice", NODE)).config == '{"new":1}'  # type: ignore[union-attr]
    with pytest.raises(PubsubNodeNotFound):
        await storage.configure_pubsub_node("alice", "missing", "{}", max_items=1)


async def test_deleting_the_account_deletes_nodes_and_items(storage: Storage) -> None:
    await publish(storage, "i1")
    await storage.delete_account("alice")
    await storage.create_account("alice", [])
    assert await storage.list_pubsub_nodes("alice") == []
    assert await storage.get_pubsub_items("alice", NODE) == []


# ---------------------------------------------------------------------------- items


async def test_publish_needs_a_node_or_a_config(storage: Storage) -> None:
    with pytest.raises(PubsubNodeNotFound):
        await storage.publish_pubsub_item("alice", "n", item("i"), LIMITS)
    assert await storage.publish_pubsub_item("alice", "n", item("i"), LIMITS,
                                             create_config='{"c":1}') == []
    node = await storage.get_pubsub_node("alice", "n")
    assert node is not None and node.config == '{"c":1}'
    # An existing node keeps its configuration.
    await storage.publish_pubsub_item("alice", "n", item("j"), LIMITS, create_config="other")
    assert (await storage.get_pubsub_node("alice", "n")).config == '{"c":1}'  # type: ignore[union-attr]


async def test_items_round_trip_in_publish_order(storage: Storage) -> None:
    payload = "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk></bundle>"
    await storage.publish_pubsub_item("alice", NODE, item("b", payload, 5.5), LIMITS,
                                      create_config="{}")
    await publish(storage, "a")
    first, second = await storage.get_pubsub_items("alice", NODE)
    assert first == PubsubItem("b", payload, "alice@example.org/phone", 5.5)
    assert second.id == "a"


async def test_republishing_an_id_replaces_it_as_newest(storage: Storage) -> None:
    for item_id in ("a", "b", "c"):
        await publish(storage, item_id)
    await publish(storage, "a", payload="<new xmlns='urn:t'/>")
    assert await ids(storage) == ["b", "c", "a"]
    (last,) = await storage.get_pubsub_items("alice", NODE, last=1)
    assert (last.id, last.payload) == ("a", "<new xmlns='urn:t'/>")


async def test_trimming_to_max_items_oldest_first(storage: Storage) -> None:
    limits = PubsubLimits(max_items=2, max_nodes=5, max_account_bytes=10_000)
    assert await publish(storage, "a", limits=limits) == []
    assert await publish(storage, "b", limits=limits) == []
    assert await publish(storage, "c", limits=limits) == ["a"]
    assert await ids(storage) == ["b", "c"]
    # Republishing the oldest id keeps the count and trims nothing else.
    assert await publish(storage, "b", limits=limits) == []
    assert await ids(storage) == ["c", "b"]


async def test_get_items_by_id_and_last(storage: Storage) -> None:
    for item_id in ("a", "b", "c", "d"):
        await publish(storage, item_id)
    assert await ids(storage, ids=["d", "a", "missing"]) == ["a", "d"]
    assert await ids(storage, ids=[]) == []
    assert await ids(storage, last=2) == ["c", "d"]
    assert await ids(storage, last=10) == ["a", "b", "c", "d"]
    assert await ids(storage, node="other") == []


async def test_quota_rolls_the_publish_back(storage: Storage) -> None:
    limits = PubsubLimits(max_items=10, max_nodes=5, max_account_bytes=100)
    await publish(storage, "small", limits=limits, payload="x" * 60)
    with pytest.raises(PubsubQuotaExceeded):
        await publish(storage, "big", node="new-node", limits=limits, payload="y" * 50)
    assert await storage.get_pubsub_node("alice", "new-node") is None
    assert await ids(storage) == ["small"]
    # Replacing the item with one of the same size fits: the old one no longer counts.
    await publish(storage, "small", limits=limits, payload="z" * 60)
    assert (await storage.get_pubsub_items("alice", NODE))[0].payload == "z" * 60


async def test_retract_and_purge(storage: Storage) -> None:
    for item_id in ("a", "b", "c"):
        await publish(storage, item_id)
    assert await storage.retract_pubsub_items("alice", NODE, ["c", "missing", "a"]) == ["c", "a"]
    assert await ids(storage) == ["b"]
    assert await storage.purge_pubsub_node("alice", NODE) == 1
    assert await ids(storage) == []
    assert await storage.get_pubsub_node("alice", NODE) is not None  # purge keeps the node


async def test_items_are_per_account_and_node(storage: Storage) -> None:
    await publish(storage, "same")
    await publish(storage, "same", user="bob")
    await publish(storage, "same", node="other")
    await storage.retract_pubsub_items("alice", NODE, ["same"])
    assert await ids(storage, user="bob") == ["same"]
    assert await ids(storage, node="other") == ["same"]


async def test_last_items_per_account_and_node(storage: Storage) -> None:
    await publish(storage, "old", node="n1")
    await publish(storage, "new", node="n1")
    await publish(storage, "only", node="n2")
    await publish(storage, "bobs", node="n1", user="bob")
    await publish(storage, "other", node="n3", user="bob")
    await storage.create_pubsub_node("alice", "empty", "{}", max_nodes=5)
    found = await storage.last_pubsub_items(["bob", "alice", "nobody", "alice"],
                                            ["n2", "n1", "empty", "missing", "n1"])
    assert [(user, node.name, it.id) for user, node, it in found] == [
        ("alice", "n1", "new"), ("alice", "n2", "only"), ("bob", "n1", "bobs")]
    assert found[0][2].payload == "<x xmlns='urn:t'/>"
    assert await storage.last_pubsub_items(["bob"], ["n2"]) == []
    assert await storage.last_pubsub_items([], ["n1"]) == []
    assert await storage.last_pubsub_items(["alice"], []) == []


async def test_last_items_for_a_large_roster(storage: Storage) -> None:
    many = [f"user{i}" for i in range(1000)]
    await publish(storage, "i", node="n1")
    found = await storage.last_pubsub_items([*many, "alice"], ["n1"])
    assert [(user, it.id) for user, _, it in found] == [("alice", "i")]
