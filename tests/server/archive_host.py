"""A real host on real SQLite with in-memory connections, for the archive and carbons tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from stockade.core.errors import NS_STANZAS
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT, parse_stanza
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.session import Session
from stockade.storage import SQLiteStorage
from tests.conftest import make_config
from tests.server.fakes import FakeConn as _BaseConn

DOMAIN = "example.com"
HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


class FakeConn(_BaseConn):
    """Collects what the server delivers to one client (raw stanzas parsed like a client)."""

    def __init__(self) -> None:
        super().__init__(close_on_terminate=True)

    def take_messages(self) -> list[Element]:
        """The messages received so far (and forget everything: presence is not checked)."""
        return [e for e in self.take() if e.name == "message"]


@asynccontextmanager
async def running_host(tmp_path: Path, users: tuple[str, ...] = ("juliet", "romeo", "nurse"),
                       **sections: dict[str, object]) -> AsyncIterator[Host]:
    """A started host with these accounts; ``sections`` override configuration."""
    storage = SQLiteStorage(tmp_path / "db.sqlite")
    await storage.open()
    for user in users:
        await storage.create_account(user, [])
    raw: dict[str, dict[str, object]] = {"server": {"domains": [DOMAIN],
                                                    "data_dir": str(tmp_path)}}
    raw.update(sections)
    host = Host(DOMAIN, make_config(raw), storage)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await storage.close()


async def online(host: Host, user: str, resource: str, *, available: bool = True,
                 ) -> tuple[Session, FakeConn]:
    conn = FakeConn()
    session = host.bind(user, resource, conn)
    assert isinstance(session, Session)
    if available:
        await send(host, session, Element(NS_CLIENT, "presence"))
    conn.received.clear()
    return session, conn


async def send(host: Host, session: Session, el: Element) -> None:
    """What the stream does with a stanza from the client: stamp 'from', route, wait."""
    stanza = parse_stanza(el).with_addresses(
        JID.parse(el.attrs["to"]) if "to" in el.attrs else None, session.jid)
    work = host.router.route(stanza, session)
    if work is not None:
        await work


def chat(to: str, body: str | None = "hi", type_: str = "chat",
         extra: Callable[[Element], object] | None = None) -> Element:
    el = Element(NS_CLIENT, "message", {"to": to, "type": type_, "id": "m1"})
    if body is not None:
        el.sub(NS_CLIENT, "body", text=body)
    if extra is not None:
        extra(el)
    return el


def iq(type_: str, payload: Element, to: str | None = None, id_: str = "q1") -> Element:
    attrs = {"type": type_, "id": id_}
    if to is not None:
        attrs["to"] = to
    el = Element(NS_CLIENT, "iq", attrs)
    el.append(payload)
    return el


def error_condition(el: Element) -> str | None:
    """The defined condition of an error stanza, or None if it is not one."""
    if el.get("type") != "error":
        return None
    error = el.find(NS_CLIENT, "error")
    assert error is not None, el
    return next(c.name for c in error.elements() if c.ns == NS_STANZAS and c.name != "text")


def body_of(el: Element) -> str | None:
    body = el.find(el.ns, "body")
    return body.text if body is not None else None
