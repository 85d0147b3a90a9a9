"""The MUC module on a real host with real SQLite and in-memory connections: sessions that
end, effects carried out in order, persistence, archive cleanup, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stockade.core.errors import NS_STANZAS, ConfigError, StreamErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, parse_stanza
from stockade.core.xml import Element, XMLStreamParser
from stockade.server.host import Host
from stockade.server.modules.xep0045_muc import MUC
from stockade.server.session import Session
from stockade.storage import SQLiteStorage
from stockade.storage.archive import ArchiveFilter
from stockade.storage.muc import StoredRoom
from tests.conftest import make_config

DOMAIN = "example.com"
ROOM = "coven@rooms.example.com"
HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_OWNER = "http://jabber.org/protocol/muc#owner"


class Conn:
    """What the server delivers to one client."""

    peer = "test"
    is_open = True

    def __init__(self) -> None:
        self.received: list[Element] = []

    def deliver(self, el: Element) -> None:
        self.received.append(el)

    def deliver_raw(self, text: str) -> None:
        parser = XMLStreamParser()
        parser.feed(HEADER)
        self.received.extend(e for e in parser.feed(text.encode()) if isinstance(e, Element))

    def terminate(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        self.is_open = False

    def bodies(self) -> list[str]:
        return [b.text for e in self.received if e.name == "message"
                for b in e.find_all(NS_CLIENT, "body")]

    def from_room(self, kind: str) -> list[Element]:
        return [e for e in self.received if e.name == kind
                and e.get("from", "").startswith(ROOM)]


def parse(xml: str) -> Element:
    parser = XMLStreamParser()
    parser.feed(HEADER)
    (element,) = [e for e in parser.feed(xml.encode()) if isinstance(e, Element)]
    return element


async def make_host(storage: SQLiteStorage, tmp_path: Path) -> Host:
    host = Host(DOMAIN, make_config({"server": {"domains": [DOMAIN],
                                                "data_dir": str(tmp_path)}}), storage)
    await host.start()
    return host


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "db.sqlite") as store:
        for user in ("crone", "hag", "eve"):
            await store.create_account(user, [])
        yield store


@pytest.fixture
async def host(storage: SQLiteStorage, tmp_path: Path) -> AsyncIterator[Host]:
    running = await make_host(storage, tmp_path)
    yield running
    await running.stop()


def online(host: Host, user: str) -> tuple[Session, Conn]:
    conn = Conn()
    session = host.bind(user, "r", conn)
    assert isinstance(session, Session)
    return session, conn


async def send(host: Host, session: Session, xml: str) -> None:
    element = parse(xml)
    stanza = parse_stanza(element).with_addresses(
        JID.parse(element.attrs["to"]) if "to" in element.attrs else None, session.jid)
    work = host.router.route(stanza, session)
    if work is not None:
        await work


async def enter(host: Host, session: Session, nick: str) -> None:
    await send(host, session, f"<presence to='{ROOM}/{nick}'><x xmlns='{NS_MUC}'/></presence>")


async def configure(host: Host, owner: Session, **fields: str) -> None:
    values = "".join(f"<field var='muc#roomconfig_{k}'><value>{v}</value></field>"
                     for k, v in fields.items())
    await send(host, owner, f"<iq to='{ROOM}' type='set' id='c'><query xmlns='{NS_OWNER}'>"
                            f"<x xmlns='jabber:x:data' type='submit'>{values}</x></query></iq>")


def muc_of(host: Host) -> MUC:
    module = host.modules["xep0045_muc"]
    assert isinstance(module, MUC)
    return module


def codes(el: Element) -> set[str]:
    x = el.find(NS_MUC_USER, "x")
    return {s.attrs["code"] for s in x.find_all(NS_MUC_USER, "status")} if x else set()


async def room_with(host: Host, **fields: str) -> tuple[Session, Conn, Session, Conn]:
    crone, crone_conn = online(host, "crone")
    hag, hag_conn = online(host, "hag")
    await enter(host, crone, "crone")
    await configure(host, crone, **fields)
    await enter(host, hag, "hag")
    crone_conn.received.clear()
    hag_conn.received.clear()
    return crone, crone_conn, hag, hag_conn


# ---------------------------------------------------------------------- sessions


async def test_general_unavailable_presence_leaves_every_room(host: Host) -> None:
    _crone, crone_conn, hag, _ = await room_with(host)
    await send(host, hag, "<presence type='unavailable'/>")  # no 'to': to everyone (§7.14)
    (gone,) = crone_conn.from_room("presence")
    assert gone.get("from") == f"{ROOM}/hag" and gone.get("type") == "unavailable"
    assert muc_of(host).service.rooms_of(hag.jid) == []


async def test_a_session_that_ends_leaves_the_room(host: Host) -> None:
    _crone, crone_conn, hag, _ = await room_with(host)
    await host.unbind(hag)
    (gone,) = crone_conn.from_room("presence")
    assert gone.get("type") == "unavailable"


async def test_shutdown_tells_occupants_332(host: Host) -> None:
    _crone, crone_conn, _hag, hag_conn = await room_with(host)
    await host.stop()
    for conn in (crone_conn, hag_conn):
        assert [codes(p) for p in conn.from_room("presence")] == [{"110", "332"}]


# ---------------------------------------------------------------------- ordering


async def test_a_slow_archive_write_does_not_let_a_later_message_overtake(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    crone, _, hag, hag_conn = await room_with(host, enablearchiving="1")
    release = asyncio.Event()
    original = host.storage.archive_append
    calls: list[str] = []

    async def slow_first(owner: str, archive_id: str, *args: Any) -> Any:
        calls.append(archive_id)
        if len(calls) == 1:
            await release.wait()
        return await original(owner, archive_id, *args)

    monkeypatch.setattr(host.storage, "archive_append", slow_first)
    first = asyncio.ensure_future(send(host, crone, f"<message to='{ROOM}' type='groupchat' "
                                                    "id='1'><body>first</body></message>"))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(send(host, hag, f"<message to='{ROOM}' type='groupchat' "
                                                   "id='2'><body>second</body></message>"))
    await asyncio.sleep(0.05)
    try:
        assert hag_conn.bodies() == []  # both wait for the first archive write
    finally:
        release.set()
    await asyncio.gather(first, second)
    assert hag_conn.bodies() == ["first", "second"]
    page = await host.storage.archive_query(ROOM, ArchiveFilter(), limit=10)
    assert [m.id for m in page.messages] == calls


async def test_an_invitation_to_a_room_jid_is_dropped_not_looped(host: Host) -> None:
    crone, crone_conn, _, _ = await room_with(host)
    await asyncio.wait_for(send(host, crone, f"<message to='{ROOM}'><x xmlns='{NS_MUC_USER}'>"
                                             "<invite to='other@rooms.example.com'/></x>"
                                             "</message>"), 2)
    assert [e for e in crone_conn.received if e.get("type") == "error"] == []


async def test_a_failing_rule_answers_internal_server_error(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    crone, crone_conn, _, _ = await room_with(host)

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(muc_of(host).service, "_dispatch", broken)
    await send(host, crone, f"<iq to='{ROOM}' type='get' id='x'><query "
                            "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    (reply,) = crone_conn.received
    error = reply.find(NS_CLIENT, "error")
    assert error is not None
    assert [c.name for c in error.elements() if c.ns == NS_STANZAS] == [
        "internal-server-error"]


# ---------------------------------------------------------------------- persistence


async def test_persistent_rooms_are_stored_and_destroyed_rooms_forgotten(host: Host) -> None:
    crone, _, _, _ = await room_with(host, persistentroom="1", enablearchiving="1")
    await send(host, crone, f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    stored = await host.storage.get_muc_room(ROOM)
    assert stored is not None and stored.affiliations[0].jid == "crone@example.com"
    assert await host.storage.archive_count(ROOM) == 1
    await send(host, crone, f"<iq to='{ROOM}' type='set' id='d'><query xmlns='{NS_OWNER}'>"
                            "<destroy/></query></iq>")
    assert await host.storage.get_muc_room(ROOM) is None
    assert await host.storage.archive_count(ROOM) == 0


async def test_a_room_made_temporary_is_no_longer_stored(host: Host) -> None:
    crone, _, _, _ = await room_with(host, persistentroom="1")
    assert await host.storage.get_muc_room(ROOM) is not None
    await configure(host, crone, persistentroom="0")
    assert await host.storage.get_muc_room(ROOM) is None


async def test_stored_rooms_load_at_start_and_unreadable_ones_are_skipped(
        storage: SQLiteStorage, tmp_path: Path) -> None:
    first = await make_host(storage, tmp_path)
    crone, _ = online(first, "crone")
    await enter(first, crone, "crone")
    await configure(first, crone, persistentroom="1", roomname="Cave")
    await first.stop()
    await storage.put_muc_room(StoredRoom("broken@rooms.example.com", "not json", 1.0))
    again = await make_host(storage, tmp_path)
    try:
        rooms = muc_of(again).service.rooms
        assert [str(j) for j in rooms] == [ROOM]
        assert rooms[JID.parse(ROOM)].config.name == "Cave"
    finally:
        await again.stop()


async def test_muc_can_be_switched_off(storage: SQLiteStorage, tmp_path: Path) -> None:
    host = Host(DOMAIN, make_config({"server": {"domains": [DOMAIN], "data_dir": str(tmp_path)},
                                     "muc": {"enabled": False}}), storage)
    assert "xep0045_muc" not in host.modules
    assert "rooms.example.com" not in host.components


async def test_room_traffic_reaches_a_session_still_receiving_offline_messages(
        host: Host) -> None:
    crone, _, hag, hag_conn = await room_with(host)
    # Right after initial presence a session takes its offline messages first; the router
    # bounces groupchat to a full JID it cannot write to now, which would lose it.
    hag.draining = True
    try:
        await send(host, crone, f"<message to='{ROOM}' type='groupchat'><body>live</body>"
                                "</message>")
    finally:
        hag.draining = False
    assert hag_conn.bodies() == ["live"]


async def test_room_archive_query_filters_by_occupant_and_pages(host: Host) -> None:
    crone, crone_conn, hag, _ = await room_with(host, enablearchiving="1")
    for who, text in ((crone, "c1"), (hag, "h1"), (crone, "c2"), (crone, "c3")):
        await send(host, who, f"<message to='{ROOM}' type='groupchat'><body>{text}</body>"
                              "</message>")
    crone_conn.received.clear()
    await send(host, crone, f"<iq to='{ROOM}' type='set' id='mam'><query xmlns='urn:xmpp:mam:2' "
                            "queryid='f1'><x xmlns='jabber:x:data' type='submit'><field "
                            "var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field "
                            f"var='with'><value>{ROOM}/crone</value></field></x><set xmlns="
                            "'http://jabber.org/protocol/rsm'><max>2</max></set></query></iq>")
    *results, fin_iq = crone_conn.received
    texts = []
    for result in results:
        assert result.get("from") == ROOM  # XEP-0313 §4.2: from the archive's JID
        mam = result.find("urn:xmpp:mam:2", "result")
        assert mam is not None and mam.get("queryid") == "f1"
        forwarded = mam.find("urn:xmpp:forward:0", "forwarded")
        message = forwarded.find(NS_CLIENT, "message")
        assert message.get("from") == f"{ROOM}/crone"
        texts.append(message.find(NS_CLIENT, "body").text)
    assert texts == ["c1", "c2"]
    fin = fin_iq.find("urn:xmpp:mam:2", "fin")
    assert fin_iq.get("type") == "result" and fin.get("complete") == "false"
    count = fin.find("http://jabber.org/protocol/rsm", "set").find(
        "http://jabber.org/protocol/rsm", "count")
    assert count.text == "3"


async def test_the_service_label_is_configurable_and_checked(storage: SQLiteStorage,
                                                             tmp_path: Path) -> None:
    host = Host(DOMAIN, make_config({"server": {"domains": [DOMAIN], "data_dir": str(tmp_path)},
                                     "muc": {"subdomain": "conference"}}), storage)
    assert "conference.example.com" in host.components
    with pytest.raises(ConfigError, match=r"muc\.subdomain"):
        make_config({"muc": {"subdomain": "two.labels"}})


async def test_new_rooms_archive_by_default_and_say_so(host: Host) -> None:
    crone, crone_conn = online(host, "crone")
    await enter(host, crone, "crone")
    own = [p for p in crone_conn.from_room("presence") if "110" in codes(p)]
    assert [codes(p) for p in own] == [{"110", "170", "201"}]  # §7.2.12: logged
    await configure(host, crone)
    await send(host, crone, f"<message to='{ROOM}' type='groupchat'><body>kept</body>"
                            "</message>")
    assert await host.storage.archive_count(ROOM) == 1
    crone_conn.received.clear()
    await configure(host, crone, enablearchiving="0")
    (notice,) = [m for m in crone_conn.received if m.name == "message"]
    assert codes(notice) == {"171"}  # §10.2.1
    await send(host, crone, f"<message to='{ROOM}' type='groupchat'><body>not kept</body>"
                            "</message>")
    assert await host.storage.archive_count(ROOM) == 1
