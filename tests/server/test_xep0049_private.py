"""XEP-0049 private XML storage on a real host: round trip, reserved namespaces, only one's
own account, bounded size and count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0049_private import NS_PRIVATE
from tests.server.small_modules import condition, error_text, open_host, query
from tests.server.test_routing import online


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host(tmp_path, "hamlet", "macbeth",
                         config={"private": {"max_item_bytes": 1024, "max_items": 2}}) as h:
        yield h


def private(*children: Element) -> Element:
    q = Element(NS_PRIVATE, "query")
    for child in children:
        q.append(child)
    return q


def prefs(nick: str | None = None, ns: str = "exodus:prefs", name: str = "exodus") -> Element:
    el = Element(ns, name)
    if nick is not None:
        el.sub(ns, "defaultnick", {"lang": "en"}, text=nick)
    return el


async def test_store_then_retrieve(host: Host) -> None:
    hamlet, conn = await online(host, "hamlet", "denmark")
    assert condition(await query(host, hamlet, conn, "set", private(prefs("Hamlet")))) is None
    reply = await query(host, hamlet, conn, "get", private(prefs()))
    q = reply.find(NS_PRIVATE, "query")
    assert q is not None
    assert list(q.elements()) == [prefs("Hamlet")]  # namespaces and attributes kept
    # A later set replaces it; another name is kept beside it.
    await query(host, hamlet, conn, "set", private(prefs("Prince")))
    await query(host, hamlet, conn, "set", private(prefs("x", ns="storage:bookmarks",
                                                        name="storage")))
    reply = await query(host, hamlet, conn, "get", private(prefs()))
    assert list(reply.find(NS_PRIVATE, "query").elements()) == [prefs("Prince")]  # type: ignore[union-attr]


async def test_nothing_stored_returns_the_empty_element(host: Host) -> None:
    hamlet, conn = await online(host, "hamlet", "denmark")
    reply = await query(host, hamlet, conn, "get", private(prefs()))
    assert reply.get("type") == "result"
    assert list(reply.find(NS_PRIVATE, "query").elements()) == [prefs()]  # type: ignore[union-attr]


async def test_reserved_and_missing_namespaces_are_not_acceptable(host: Host) -> None:
    hamlet, conn = await online(host, "hamlet", "denmark")
    for child in (prefs("x", ns="jabber:client", name="message"),
                  prefs(ns="jabber:iq:private", name="query")):
        for type_ in ("get", "set"):
            assert condition(await query(host, hamlet, conn, type_, private(child))) == \
                "not-acceptable"
    assert condition(await query(host, hamlet, conn, "get", private())) == "not-acceptable"
    two = private(prefs(), prefs(ns="other:ns"))
    assert condition(await query(host, hamlet, conn, "get", two)) == "bad-request"


async def test_someone_elses_storage_is_forbidden(host: Host) -> None:
    macbeth, conn = await online(host, "macbeth", "castle")
    for type_ in ("get", "set"):
        reply = await query(host, macbeth, conn, type_, private(prefs("Macbeth")),
                            to="hamlet@example.com")
        assert condition(reply) == "forbidden"
    assert await host.storage.list_data("hamlet", NS_PRIVATE) == []


async def test_size_and_count_are_bounded(host: Host) -> None:
    hamlet, conn = await online(host, "hamlet", "denmark")
    reply = await query(host, hamlet, conn, "set", private(prefs("x" * 2000)))
    assert condition(reply) == "not-acceptable" and "1024 bytes" in error_text(reply)
    for n in range(2):
        await query(host, hamlet, conn, "set", private(prefs("a", ns=f"urn:n{n}")))
    third = await query(host, hamlet, conn, "set", private(prefs("a", ns="urn:n2")))
    assert condition(third) == "resource-constraint"
    again = await query(host, hamlet, conn, "set", private(prefs("b", ns="urn:n0")))
    assert condition(again) is None  # replacing a kept element needs no room
