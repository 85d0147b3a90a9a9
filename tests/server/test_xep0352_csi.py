"""XEP-0352 client state indication on a real host: presence held back while inactive (latest
per sender, bounded), flushed before anything important and on <active/>."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.stanza import NS_CLIENT
from stockade.core.stream.sm import SMState
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules import xep0352_csi
from stockade.server.modules.xep0191_blocking import NS_BLOCKING
from stockade.server.modules.xep0352_csi import NS_CSI
from stockade.server.session import Detached, Session
from tests.server.small_modules import open_host, subscribe
from tests.server.test_routing import FakeConn, message, online, send


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host(tmp_path, "juliet", "romeo", "nurse") as h:
        yield h


def state(host: Host, session: Session, name: str) -> None:
    """What the stream core does with an <active/> or <inactive/> nonza."""
    result = host.nonzas[(NS_CSI, name)].handler(Element(NS_CSI, name), session)
    assert result is None


def presence(sender: str, show: str | None = None, type_: str | None = None) -> Element:
    el = Element(NS_CLIENT, "presence", {"from": sender, "to": "juliet@example.com/balcony"})
    if type_:
        el.attrs["type"] = type_
    if show:
        el.sub(NS_CLIENT, "show", text=show)
    return el


def shows(conn: FakeConn) -> list[tuple[str, str | None, str]]:
    out = []
    for el in conn.received:
        show = el.find(NS_CLIENT, "show")
        out.append((el.name, el.get("from"), show.text if show is not None else ""))
    return out


async def test_feature_is_offered_beside_binding(host: Host) -> None:
    assert f"<csi xmlns='{NS_CSI}'/>" in host.stream_features["bind"]


async def test_presence_waits_latest_per_sender_until_a_message(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    state(host, juliet, "inactive")
    juliet.deliver(presence("romeo@example.com/orchard", "away"))
    juliet.deliver(presence("nurse@example.com/kitchen", "dnd"))
    juliet.deliver(presence("romeo@example.com/orchard", "xa"))
    assert conn.received == []
    juliet.deliver(message("juliet@example.com/balcony"))
    assert shows(conn) == [("presence", "nurse@example.com/kitchen", "dnd"),
                           ("presence", "romeo@example.com/orchard", "xa"),
                           ("message", None, "")]


async def test_active_flushes_and_stops_holding(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    state(host, juliet, "inactive")
    juliet.deliver(presence("romeo@example.com/orchard", type_="unavailable"))
    assert conn.received == []
    state(host, juliet, "active")
    assert [e.get("type") for e in conn.received] == ["unavailable"]
    juliet.deliver(presence("romeo@example.com/orchard"))
    assert len(conn.received) == 2  # delivered at once while active
    state(host, juliet, "active")  # active twice: nothing to do
    assert len(conn.received) == 2


async def test_subscription_requests_are_not_held(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    state(host, juliet, "inactive")
    juliet.deliver(presence("nurse@example.com/kitchen", "away"))
    juliet.deliver(presence("romeo@example.com", type_="subscribe"))
    assert [e.get("type") for e in conn.received] == [None, "subscribe"]


async def test_holding_is_bounded(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xep0352_csi, "MAX_HELD", 2)
    juliet, conn = await online(host, "juliet", "balcony")
    state(host, juliet, "inactive")
    for n in range(3):
        juliet.deliver(presence(f"c{n}@example.com/r"))
    assert len(conn.received) == 3  # the third sender let everything out
    juliet.deliver(presence("c9@example.com/r"))
    assert len(conn.received) == 3  # and holding goes on


async def test_routed_presence_is_held_and_blocked_stays_hidden(host: Host) -> None:
    await subscribe(host, "juliet", "romeo")
    await subscribe(host, "romeo", "juliet")
    await subscribe(host, "juliet", "nurse")
    await subscribe(host, "nurse", "juliet")
    juliet, conn = await online(host, "juliet", "balcony")
    romeo, _ = await online(host, "romeo", "orchard")
    nurse, _ = await online(host, "nurse", "kitchen")
    block = Element(NS_CLIENT, "iq", {"type": "set", "id": "b"})
    block.sub(NS_BLOCKING, "block").sub(NS_BLOCKING, "item", {"jid": "nurse@example.com"})
    await send(host, juliet, block)
    state(host, juliet, "inactive")
    conn.received.clear()
    for sender in (romeo, nurse):
        away = Element(NS_CLIENT, "presence")
        away.sub(NS_CLIENT, "show", text="away")
        await send(host, sender, away)
    assert conn.received == []
    state(host, juliet, "active")
    assert shows(conn) == [("presence", "romeo@example.com/orchard", "away")]


async def test_a_closed_connection_gets_nothing_on_flush(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    state(host, juliet, "inactive")
    juliet.deliver(presence("romeo@example.com/orchard"))
    conn.is_open = False
    state(host, juliet, "active")
    assert conn.received == []


async def test_a_hibernated_session_keeps_what_was_held(host: Host) -> None:
    """XEP-0198: while the client is away the held presence joins the unacked queue."""
    juliet, _ = await online(host, "juliet", "balcony")
    state(host, juliet, "inactive")
    juliet.deliver(presence("romeo@example.com/orchard", "away"))
    sm = SMState("id1", resumable=True, max_unacked=10)
    juliet.conn = Detached("test", sm, lambda: None)
    juliet.deliver(message("juliet@example.com/balcony"))
    assert ["<show>away</show>" in text for text in sm.unacked] == [True, False]
