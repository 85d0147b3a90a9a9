"""Discussion history sent on entering a room (XEP-0045 §7.2.13, §7.2.14)."""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.muc._ns import NS_DELAY
from stockade.core.xml import Element, serialize

SEC = StanzaErrorCondition


def xep0082_stamp(stamp: float) -> str:
    """An XEP-0082 DateTime in UTC, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_xep0082(text: str) -> float:
    """Unix time of an XEP-0082 DateTime (a time zone is required).

    Raises:
        ValueError: not an XEP-0082 DateTime.
    """
    if len(text) > 40:
        raise ValueError("not an XEP-0082 DateTime")
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("XEP-0082 DateTime without a time zone")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message as the room reflected it: ``element`` has from=room/nick and no 'to'."""

    stanza_id: str
    stamp: float
    nick: str
    element: Element

    @property
    def chars(self) -> int:
        """Characters of the XML stanza (the unit of 'maxchars', §7.2.14)."""
        return len(serialize(self.element))


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """The <history/> attributes of a join presence (§7.2.14); None: not given."""

    maxchars: int | None = None
    maxstanzas: int | None = None
    seconds: int | None = None
    since: float | None = None

    @classmethod
    def from_element(cls, history: Element | None) -> HistoryRequest:
        """Read <history/>.

        Raises:
            StanzaError: ``bad-request`` for an attribute that is not a non-negative
                integer (or an XEP-0082 DateTime for 'since').
        """
        if history is None:
            return cls()
        numbers: dict[str, int | None] = {}
        for name in ("maxchars", "maxstanzas", "seconds"):
            value = history.get(name)
            if value is not None and (not value.isdigit() or len(value) > 12):
                raise StanzaError(SEC.BAD_REQUEST, f"history '{name}' is not a number")
            numbers[name] = int(value) if value is not None else None
        since = history.get("since")
        try:
            since_stamp = parse_xep0082(since) if since is not None else None
        except ValueError:
            raise StanzaError(SEC.BAD_REQUEST, "history 'since' is not a DateTime") from None
        return cls(numbers["maxchars"], numbers["maxstanzas"], numbers["seconds"],
                   since_stamp)


class History:
    """The most recent messages of a room, at most ``limit`` of them."""

    def __init__(self, limit: int, entries: Iterable[HistoryEntry] = ()) -> None:
        self._entries: deque[HistoryEntry] = deque(entries, maxlen=max(limit, 0))

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self._entries)

    def add(self, entry: HistoryEntry) -> None:
        """Keep ``entry``, dropping the oldest one if full."""
        if self._entries.maxlen:
            self._entries.append(entry)

    def resize(self, limit: int) -> None:
        """Keep at most ``limit`` entries from now on (the newest ones)."""
        self._entries = deque(self._entries, maxlen=max(limit, 0))

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def select(self, request: HistoryRequest, offer: int, now: float) -> list[HistoryEntry]:
        """The entries to send, oldest first: the smallest amount meeting every criterion
        (§7.2.14: "The service MUST send the smallest amount of traffic that meets any
        combination of the above criteria"), at most ``offer`` of them, whole stanzas only.
        """
        limit = offer if request.maxstanzas is None else min(offer, request.maxstanzas)
        oldest = max(request.since if request.since is not None else float("-inf"),
                     now - request.seconds if request.seconds is not None else float("-inf"))
        chosen: list[HistoryEntry] = []
        chars = 0
        for entry in reversed(self._entries):
            if len(chosen) >= limit or entry.stamp < oldest:
                break
            if request.maxchars is not None:
                chars += entry.chars
                if chars > request.maxchars:
                    break
            chosen.append(entry)
        chosen.reverse()
        return chosen


def history_message(entry: HistoryEntry, to: JID, room: JID) -> Element:
    """``entry`` as delivered on join: to the occupant, with a delay from the room (§7.2.13:
    "The 'from' attribute MUST be set to the JID of the room itself")."""
    attrs = dict(entry.element.attrs)
    attrs["to"] = str(to)
    message = Element(entry.element.ns, entry.element.name, attrs, list(entry.element.children))
    message.sub(NS_DELAY, "delay", {"from": str(room), "stamp": xep0082_stamp(entry.stamp)})
    return message
