"""Support for the unit tests of the small modules (XEP-0012/0049/0054/0077/0191/0202/0352):
a real host on SQLite in a temporary directory, and IQ round trips over in-memory sessions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from stockade.core.sasl import derive_credential
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.session import Session
from stockade.storage import SQLiteStorage
from stockade.storage.base import RosterItem
from tests.conftest import make_config
from tests.server.test_routing import FakeConn, send

DOMAIN = "example.com"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@contextlib.asynccontextmanager
async def open_host(tmp_path: Path, *users: str,
                    config: dict[str, dict[str, object]] | None = None) -> AsyncIterator[Host]:
    """A host for example.com with these accounts (password "secret-pass")."""
    storage = SQLiteStorage(tmp_path / "db.sqlite")
    await storage.open()
    creds = [derive_credential("secret-pass", "SHA-256", 4096)]
    for user in users:
        await storage.create_account(user, creds)
    raw: dict[str, dict[str, object]] = {
        "server": {"domains": [DOMAIN], "data_dir": str(tmp_path)}}
    raw.update(config or {})
    host = Host(DOMAIN, make_config(raw), storage)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await storage.close()


async def subscribe(host: Host, owner: str, contact: str, subscription: str = "both") -> None:
    """Put ``contact`` in ``owner``'s roster with ``subscription``."""
    await host.storage.put_roster_item(owner, RosterItem(f"{contact}@{DOMAIN}",
                                                         subscription=subscription))


async def query(host: Host, session: Session, conn: FakeConn, type_: str, payload: Element,
                to: str | None = None) -> Element:
    """Send an IQ with ``payload`` and return the answer the session got."""
    attrs = {"type": type_, "id": f"q{len(conn.received)}"}
    if to is not None:
        attrs["to"] = to
    iq = Element(NS_CLIENT, "iq", attrs)
    iq.append(payload)
    await send(host, session, iq)
    answers = [e for e in conn.received if e.name == "iq" and e.get("id") == attrs["id"]]
    assert len(answers) == 1, conn.received
    return answers[0]


def condition(reply: Element) -> str | None:
    """The stanza error condition of an error reply, or None for a result."""
    if reply.get("type") != "error":
        return None
    error = reply.find(NS_CLIENT, "error")
    assert error is not None
    return next(c.name for c in error.elements() if c.ns == NS_STANZAS and c.name != "text")


def error_text(reply: Element) -> str:
    """The human-readable text of an error reply."""
    error = reply.find(NS_CLIENT, "error")
    text = error.find(NS_STANZAS, "text") if error is not None else None
    return text.text if text is not None else ""
