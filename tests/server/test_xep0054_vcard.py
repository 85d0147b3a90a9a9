"""XEP-0054 vcard-temp on a real host: own and other accounts' vCards, set only one's own,
size limit, and no account enumeration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0054_vcard import NS_VCARD
from tests.server.small_modules import condition, error_text, open_host, query
from tests.server.test_routing import online


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host(tmp_path, "juliet", "romeo", config={"vcard": {"max_bytes": 2048}}) as h:
        yield h


def vcard(fn: str | None = None, photo: str | None = None) -> Element:
    card = Element(NS_VCARD, "vCard")
    if fn is not None:
        card.sub(NS_VCARD, "FN", text=fn)
    if photo is not None:
        card.sub(NS_VCARD, "PHOTO").sub(NS_VCARD, "BINVAL", text=photo)
    return card


async def test_set_own_and_read_from_another_account(host: Host) -> None:
    juliet, jconn = await online(host, "juliet", "balcony")
    romeo, rconn = await online(host, "romeo", "orchard")
    assert condition(await query(host, juliet, jconn, "set", vcard("Juliet Capulet"))) is None
    own = await query(host, juliet, jconn, "get", vcard())
    assert own.find(NS_VCARD, "vCard") == vcard("Juliet Capulet")
    other = await query(host, romeo, rconn, "get", vcard(), to="juliet@example.com")
    assert other.get("from") == "juliet@example.com"  # answered for her bare JID
    assert other.find(NS_VCARD, "vCard") == vcard("Juliet Capulet")


async def test_no_vcard_and_no_account_look_alike(host: Host) -> None:
    romeo, conn = await online(host, "romeo", "orchard")
    for target in ("juliet@example.com", "nobody@example.com"):
        reply = await query(host, romeo, conn, "get", vcard(), to=target)
        assert reply.get("type") == "result" and reply.find(NS_VCARD, "vCard") == vcard()


async def test_only_your_own_vcard_can_be_set(host: Host) -> None:
    romeo, conn = await online(host, "romeo", "orchard")
    for target in ("juliet@example.com", "example.com"):
        reply = await query(host, romeo, conn, "set", vcard("Not Juliet"), to=target)
        assert condition(reply) == "forbidden"
    assert await host.storage.get_data("juliet", NS_VCARD, "vcard") is None


async def test_size_limit_has_a_clear_text(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    reply = await query(host, juliet, conn, "set", vcard("J", photo="A" * 4000))
    assert condition(reply) == "not-acceptable"
    assert "2048 bytes" in error_text(reply)
    assert await host.storage.get_data("juliet", NS_VCARD, "vcard") is None


async def test_an_empty_vcard_clears_it(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    await query(host, juliet, conn, "set", vcard("Juliet"))
    await query(host, juliet, conn, "set", vcard())
    assert await host.storage.get_data("juliet", NS_VCARD, "vcard") is None
    assert (await query(host, juliet, conn, "get", vcard())).find(NS_VCARD, "vCard") == vcard()
