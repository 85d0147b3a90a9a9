"""A bound client session (RFC 6120 §7) and its presence state (RFC 6121 §4)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stockade.core.errors import StreamErrorCondition
from stockade.core.jid import JID
from stockade.core.stanza import NS_CLIENT
from stockade.core.stream.sm import SMState
from stockade.core.xml import Element, serialize


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

    def hand_over(self) -> Awaitable[None] | None:
        """The client resumed this session on another connection (XEP-0198): stop, but
        finish routing what was already read. Returns what to wait for, if anything."""


class Session:
    """One resource of one account, online on one connection."""

    __slots__ = (
        "available",
        "conn",
        "data",
        "directed",
        "draining",
        "hibernation",
        "interested",
        "jid",
        "presence",
        "priority",
        "redrain",
        "screen",
        "sm",
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
        self.sm: SMState | None = None  # XEP-0198 state, kept across resumption
        self.hibernation: asyncio.TimerHandle | None = None  # set while awaiting resumption

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


class Detached:
    """The connection of a session whose client dropped with XEP-0198 resumption enabled.

    Messages are not routed here (``is_open`` is False: they go to another resource or to
    offline storage); anything else delivered meanwhile (presence, pushes) joins the unacked
    queue, bounded, so a resumed client sees it.
    """

    def __init__(self, peer: str, sm: SMState, on_terminate: Callable[[], None]) -> None:
        self.peer = peer
        self._sm = sm
        self._on_terminate = on_terminate

    @property
    def is_open(self) -> bool:
        """Nothing can be written until the client resumes."""
        return False

    def deliver(self, el: Element) -> None:
        """Keep the stanza for a resumed stream (bounded like a live one)."""
        self.deliver_raw(serialize(el, NS_CLIENT))

    def deliver_raw(self, text: str) -> None:
        """Keep already-serialized stanza XML for a resumed stream."""
        if len(self._sm.unacked) < self._sm.max_unacked:
            self._sm.record_outbound(text)

    def terminate(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        """End the hibernated session now (e.g. replaced by a new login to its resource)."""
        self._on_terminate()

    def hand_over(self) -> Awaitable[None] | None:
        """Nothing is in flight on a connection that is gone."""
        return None
