"""XEP-0012 last activity on a real host: off by default, uptime, and an account's last logout
only for contacts subscribed to its presence."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0012_last import NS_LAST
from tests.server.small_modules import condition, open_host, query, subscribe
from tests.server.test_routing import online, send


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host(tmp_path, "juliet", "romeo", "nurse",
                         config={"last": {"enabled": True}}) as h:
        yield h


def last() -> Element:
    return Element(NS_LAST, "query")


def seconds(reply: Element) -> int:
    q = reply.find(NS_LAST, "query")
    assert reply.get("type") == "result" and q is not None, reply
    return int(q.get("seconds") or "-1")


async def test_off_by_default(tmp_path: Path) -> None:
    async with open_host(tmp_path, "juliet") as host:
        juliet, conn = await online(host, "juliet", "balcony")
        reply = await query(host, juliet, conn, "get", last(), to="example.com")
    assert condition(reply) == "service-unavailable"


async def test_server_uptime(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    host.modules["xep0012_last"].started -= 42  # type: ignore[attr-defined]
    assert seconds(await query(host, juliet, conn, "get", last(), to="example.com")) == 42


async def test_online_contact_is_zero_then_time_since_logout(host: Host) -> None:
    await subscribe(host, "juliet", "romeo", "from")  # Romeo may see Juliet's presence
    juliet, _ = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    online_reply = await query(host, romeo, rconn, "get", last(), to="juliet@example.com")
    assert seconds(online_reply) == 0
    assert online_reply.find(NS_LAST, "query").text == ""  # type: ignore[union-attr]
    bye = Element(NS_CLIENT, "presence", {"type": "unavailable"})
    bye.sub(NS_CLIENT, "status", text="gone to bed")
    await send(host, juliet, bye)
    await host.unbind(juliet)
    record = json.loads(await host.storage.get_data("juliet", NS_LAST, "logout") or "{}")
    assert abs(record["stamp"] - time.time()) < 5 and record["status"] == "gone to bed"
    record["stamp"] -= 100
    await host.storage.put_data("juliet", NS_LAST, "logout", json.dumps(record))
    reply = await query(host, romeo, rconn, "get", last(), to="juliet@example.com")
    assert 100 <= seconds(reply) <= 102
    assert reply.find(NS_LAST, "query").text == "gone to bed"  # type: ignore[union-attr]


async def test_only_when_the_last_resource_leaves(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    await online(host, "juliet", "chamber")
    await host.unbind(juliet)
    assert await host.storage.get_data("juliet", NS_LAST, "logout") is None


async def test_strangers_and_missing_accounts_are_forbidden(host: Host) -> None:
    await subscribe(host, "juliet", "romeo", "to")  # Juliet sees Romeo, not the reverse
    nurse, nconn = await online(host, "nurse", "kitchen")
    romeo, rconn = await online(host, "romeo", "orchard")
    for session, conn, target in ((romeo, rconn, "juliet@example.com"),
                                  (nurse, nconn, "juliet@example.com"),
                                  (nurse, nconn, "nobody@example.com")):
        assert condition(await query(host, session, conn, "get", last(), to=target)) == \
            "forbidden"


async def test_no_record_yet(host: Host) -> None:
    await subscribe(host, "juliet", "romeo", "both")
    romeo, rconn = await online(host, "romeo", "orchard")
    reply = await query(host, romeo, rconn, "get", last(), to="juliet@example.com")
    assert condition(reply) == "item-not-found"
