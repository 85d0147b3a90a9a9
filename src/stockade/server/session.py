"""A bound client session (RFC 6120 §7) and its presence state (RFC 6121 §4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from stockade.core.errors import StreamErrorCondition
from stockade.core.jid import JID
from stockade.core.xml import Element


class Connection(Protocol):
    """What a session needs from its transport."""

    peer: str

    @property
    def is_open(self) -> bool:
        """Whether stanzas handed over now can still reach the client (not closing, not
        backed up behind a client that stopped reading)."""

    def deliver(self, el: Element) -> None:
        """Queue a stanza for the client."""

    def deliver_raw(self, text: str) -> None:
        """Queue an already-serialized stanza (jabber:client namespace)."""

    def terminate(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        """Close the stream with a stream error."""


class Session:
    """One resource of one account, online on one connection."""

    __slots__ = (
        "available",
        "conn",
        "data",
        "directed",
        "draining",
        "interested",
        "jid",
        "presence",
        "priority",
        "redrain",
        "screen",
    )

    def __init__(self, jid: JID, conn: Connection) -> None:
        self.jid = jid
        self.conn = conn
        self.available = False  # has sent available presence (RFC 6121 §4.2)
        self.priority = 0
        self.presence: Element | None = None  # last available presence broadcast
        self.interested = False  # requested the roster (RFC 6121 §2.1.6: gets pushes)
        self.directed: set[JID] = set()  # directed presence recipients (RFC 6121 §4.6)
        # Offline messages are being handed over: new messages queue behind them in storage,
        # so the client sees them in order.
        self.draining = False
        self.redrain = False  # a message was stored during the drain: run another pass
        self.data: dict[str, Any] = {}  # per-session state of feature modules, by module name
        # Set by modules that hide stanzas from this client (XEP-0191 blocking): returns True
        # for an element that must not be delivered. Checked on every delivery.
        self.screen: Callable[[Element], bool] | None = None

    @property
    def username(self) -> str:
        """The account's localpart."""
        assert self.jid.local is not None
        return self.jid.local

    def deliver(self, el: Element) -> None:
        """Send a stanza to this resource (unless a module screens it out)."""
        if self.screen is not None and self.screen(el):
            return
        self.conn.deliver(el)

    @property
    def is_reachable(self) -> bool:
        """Whether a message routed now may go straight to the connection."""
        return self.conn.is_open and not self.draining
