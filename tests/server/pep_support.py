"""In-memory harness for the PEP and caps module tests: a real Host on real SQLite, with
connections that record what the server sends and clients that answer caps queries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stockade.core.jid import JID
from stockade.core.pubsub.caps import NS_CAPS, NS_DISCO_INFO, compute_ver
from stockade.core.pubsub.errors import NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT
from stockade.core.stanza import NS_CLIENT, parse_stanza
from stockade.core.xml import Element, XMLStreamParser
from stockade.server.host import Host
from stockade.server.session import Session
from stockade.storage import RosterItem, SQLiteStorage
from tests.conftest import make_config
from tests.server.fakes import FakeConn as _BaseConn

DOMAIN = "example.com"
HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")
USERS = ("alice", "bob", "carol")


class FakeConn(_BaseConn):
    """Collects what the server delivers to one client."""

    def __init__(self) -> None:
        super().__init__(close_on_terminate=True)

    def events(self, node: str | None = None) -> list[Element]:
        """The pubsub event notifications received (for ``node`` if given)."""
        found = []
        for el in self.received:
            event = el.find(NS_PUBSUB_EVENT, "event") if el.name == "message" else None
            if event is None:
                continue
            child = next(event.elements())
            if node is None or child.get("node") == node:
                found.append(el)
        return found

    def take(self, predicate: Callable[[Element], bool]) -> list[Element]:
        """Remove and return the received elements matching ``predicate``."""
        taken = [e for e in self.received if predicate(e)]
        self.received = [e for e in self.received if not predicate(e)]
        return taken


@contextlib.asynccontextmanager
async def make_host(tmp_path: Path, **pep: int) -> AsyncIterator[Host]:
    """A started host for USERS, with small PEP limits (``pep`` overrides them)."""
    storage = SQLiteStorage(tmp_path / "db.sqlite")
    await storage.open()
    for user in USERS:
        await storage.create_account(user, [])
    limits = {"max_items_per_node": 20, "max_nodes_per_account": 8, "max_item_bytes": 2048,
              **pep}
    config = make_config({"server": {"domains": [DOMAIN], "data_dir": str(tmp_path)},
                          "pep": limits})
    h = Host(DOMAIN, config, storage)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()
        await storage.close()


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with make_host(tmp_path) as h:
        yield h


def jid(user: str, resource: str | None = None) -> JID:
    return JID(user, DOMAIN, resource)


async def befriend(host: Host, a: str, b: str, a_sub: str = "both", b_sub: str = "both",
                   groups: tuple[str, ...] = ()) -> None:
    """Roster items both ways (``a_sub``: b's subscription state in a's roster)."""
    await host.storage.put_roster_item(a, RosterItem(str(jid(b)), None, a_sub, groups=groups))
    await host.storage.put_roster_item(b, RosterItem(str(jid(a)), None, b_sub))


async def send(host: Host, session: Session, el: Element) -> None:
    """Route ``el`` as if ``session`` had sent it (the c2s core stamps 'from')."""
    to = JID.parse(el.attrs["to"]) if "to" in el.attrs else None
    stanza = parse_stanza(el).with_addresses(to, session.jid)
    work = host.router.route(stanza, session)
    if work is not None:
        await work


async def eventually(check: Callable[[], bool], what: str, within: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let spawned tasks (caps lookups, last-item sends and their storage reads) finish."""
    for _ in range(10):
        await asyncio.sleep(0.003)


def disco_info(features: list[str]) -> Element:
    query = Element(NS_DISCO_INFO, "query")
    query.sub(NS_DISCO_INFO, "identity", {"category": "client", "type": "pc", "name": "test"})
    for var in features:
        query.sub(NS_DISCO_INFO, "feature", {"var": var})
    return query


def caps_presence(ver: str, node: str = "https://client.example") -> Element:
    presence = Element(NS_CLIENT, "presence")
    presence.sub(NS_CAPS, "c", {"hash": "sha-1", "node": node, "ver": ver})
    return presence


async def answer_caps_query(host: Host, session: Session, conn: FakeConn,
                            features: list[str]) -> Element:
    """Wait for the server's disco#info query and answer it with ``features``."""
    await eventually(lambda: any(e.name == "iq" and e.get("type") == "get"
                                 for e in conn.received), "caps query")
    (query,) = conn.take(lambda e: e.name == "iq" and e.get("type") == "get")
    reply = Element(NS_CLIENT, "iq", {"type": "result", "id": query.attrs["id"],
                                      "to": DOMAIN})
    inner = disco_info(features)
    inner.attrs["node"] = query.find(NS_DISCO_INFO, "query").attrs["node"]  # type: ignore[union-attr]
    reply.append(inner)
    await send(host, session, reply)
    return query


async def online(host: Host, user: str, resource: str, notify: list[str] | None = None,
                 ) -> tuple[Session, FakeConn]:
    """Bind a session and send initial presence; with ``notify``, caps whose features ask
    for those nodes (``node+notify``), answering the server's verification query."""
    conn = FakeConn()
    session = host.bind(user, resource, conn)
    assert isinstance(session, Session)
    if notify is None:
        await send(host, session, Element(NS_CLIENT, "presence"))
    else:
        features = [f"{n}+notify" for n in notify]
        ver = compute_ver(disco_info(features))
        await send(host, session, caps_presence(ver))
        if host.modules["xep0115_caps"]._cache.get(("sha-1", ver)) is None:  # type: ignore[attr-defined]
            await answer_caps_query(host, session, conn, features)
        await eventually(lambda: host.modules["xep0115_caps"].notify_nodes(session)  # type: ignore[attr-defined]
                         == frozenset(notify), f"{session.jid} caps")
    await settle()
    conn.take(lambda e: e.name == "presence")
    return session, conn


def iq(type_: str, payload: str, to: str | None = None, id_: str = "q1") -> Element:
    """An IQ with a payload given as XML text (jabber:client)."""
    parser = XMLStreamParser()
    parser.feed(HEADER)
    to_attr = f" to='{to}'" if to else ""
    (el,) = [e for e in parser.feed(
        f"<iq type='{type_}' id='{id_}'{to_attr}>{payload}</iq>".encode())
        if isinstance(e, Element)]
    return el


async def request(host: Host, session: Session, conn: FakeConn, el: Element) -> Element:
    """Send an IQ and return the answer to it."""
    await send(host, session, el)

    def answered(e: Element) -> bool:
        return e.name == "iq" and e.get("id") == el.get("id")

    await eventually(lambda: any(answered(e) for e in conn.received), f"answer to {el}")
    answers = conn.take(answered)
    assert len(answers) == 1, [a for a in conn.received]
    return answers[0]


def error_of(reply: Element) -> tuple[str, str | None]:
    """(defined condition, pubsub#errors condition) of an error IQ."""
    assert reply.get("type") == "error", reply
    error = reply.find(NS_CLIENT, "error")
    assert error is not None
    names = [c for c in error.elements() if c.name != "text"]
    app = next((c.name for c in names if c.ns == NS_PUBSUB_ERRORS), None)
    return names[0].name, app
