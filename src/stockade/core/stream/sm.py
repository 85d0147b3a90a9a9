"""Stream Management, XEP-0198 (urn:xmpp:sm:3): the counters and the unacknowledged queue.

Sans-I/O and owned by the *session*, not the connection: when a connection drops, the
same object waits (hibernated) for the client to resume on a new stream, and whatever it
still holds unacknowledged is either retransmitted there or handed back to the router.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

NS_SM = "urn:xmpp:sm:3"
_WRAP = 2**32  # XEP-0198 §4: h is an unsigned 32-bit counter that wraps


class AckError(ValueError):
    """The peer acknowledged more stanzas than were sent (XEP-0198 §4)."""

    def __init__(self, h: int, sent: int) -> None:
        super().__init__(f"h={h} but only {sent} stanzas were sent")
        self.h = h
        self.sent = sent


class SMState:
    """Counters of one stream-managed session and the stanzas the client has not acked."""

    __slots__ = ("_acked", "id", "inbound", "max_unacked", "request_pending", "resumable",
                 "sent", "unacked")

    def __init__(self, resumption_id: str, *, resumable: bool, max_unacked: int) -> None:
        self.id = resumption_id
        self.resumable = resumable
        self.max_unacked = max_unacked
        self.inbound = 0  # stanzas received from the client (its 'h' when we answer <r/>)
        self.sent = 0  # stanzas sent to the client, mod 2**32
        self._acked = 0  # the client's last 'h'
        self.unacked: deque[str] = deque()  # serialized, oldest first: sent - _acked of them
        self.request_pending = False  # an <r/> is out; at most one at a time

    def count_inbound(self) -> None:
        """One more stanza from the client was handled."""
        self.inbound = (self.inbound + 1) % _WRAP

    def record_outbound(self, stanza_xml: str) -> None:
        """One more stanza went to the client; keep it until the client acknowledges it."""
        self.sent = (self.sent + 1) % _WRAP
        self.unacked.append(stanza_xml)

    @property
    def overflowing(self) -> bool:
        """Whether the client leaves more unacknowledged than we keep (it must ack)."""
        return len(self.unacked) > self.max_unacked

    def acknowledge(self, h: int) -> None:
        """The client handled every stanza up to ``h``: forget those.

        Raises:
            AckError: ``h`` counts stanzas never sent.
        """
        newly = (h - self._acked) % _WRAP
        if newly > len(self.unacked):
            raise AckError(h, self.sent)
        for _ in range(newly):
            self.unacked.popleft()
        self._acked = h % _WRAP
        self.request_pending = False

    def take_unacked(self) -> Iterator[str]:
        """Empty the queue (to retransmit on resumption or hand back to the router)."""
        while self.unacked:
            yield self.unacked.popleft()
        self._acked = self.sent


def parse_h(value: str | None) -> int | None:
    """A valid 'h' attribute (0 ≤ h < 2**32), or None."""
    # ASCII only: str.isdigit() also accepts superscripts and other scripts' digits
    # (xs:unsignedInt does not).
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 10:
        return None
    h = int(value)
    return h if h < _WRAP else None
