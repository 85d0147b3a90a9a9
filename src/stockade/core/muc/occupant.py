"""Occupants and the small records a room keeps (XEP-0045 §5, §7)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from stockade.core.errors import JIDError, StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.muc import _ns as ns
from stockade.core.muc.config import MucLimits, RoomConfig
from stockade.core.muc.roles import Affiliation, Role
from stockade.core.stanza import Stanza
from stockade.core.xml import Element

SEC = StanzaErrorCondition
_INVISIBLE = frozenset({"Zs", "Cc", "Cf", "Zl", "Zp", "Mn"})


def nick_key(nick: str) -> str:
    """What two nicks are compared by: compatibility-normalised and case-folded, so "Alice",
    "alice" and its fullwidth form are one nick (XEP-0045 §7.2.8 leaves the rule to the service;
    SECURITY: this stops look-alike nicks impersonating an occupant, §14.6 item 7)."""
    return unicodedata.normalize("NFKC", nick).casefold()


def check_nick(nick: str | None, limits: MucLimits) -> str:
    """A usable room nickname (already PRECIS-prepared as a resourcepart).

    Raises:
        StanzaError: ``jid-malformed`` for no nick (§7.2.1), one that is only invisible
            characters (§17.1: "MUST NOT allow empty or invisible Room Nicknames") or one
            longer than the service allows.
    """
    if nick is None:
        raise StanzaError(SEC.JID_MALFORMED, "a room nickname is required")
    if all(unicodedata.category(ch) in _INVISIBLE for ch in nick):
        raise StanzaError(SEC.JID_MALFORMED, "the nickname is invisible")
    if len(nick) > limits.max_nick_chars:
        raise StanzaError(SEC.JID_MALFORMED, "the nickname is too long")
    return nick


@dataclass(frozen=True, slots=True)
class AffiliationRecord:
    """A stored affiliation (never NONE: no record means none) and its reserved nick."""

    affiliation: Affiliation
    nick: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """The room subject, who set it (occupant nick, None for the room) and when."""

    text: str
    nick: str | None
    stamp: float


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """What a persistent room keeps across restarts."""

    jid: JID
    config: RoomConfig
    affiliations: dict[str, AffiliationRecord]
    subject: Subject | None
    created: float


class Occupant:
    """An occupant: one nick of one user, with one or more sessions (§7.2.8: "the service
    SHOULD allow entry to the user, so that the user has two (or more) in-room sessions")."""

    __slots__ = ("bare", "current", "nick", "role", "sessions")

    def __init__(self, nick: str, bare: JID, role: Role, session: JID, presence: Element
                 ) -> None:
        self.nick = nick
        self.bare = bare
        self.role = role
        self.sessions: dict[JID, Element] = {session: presence}
        self.current = session  # the session whose presence others see

    @property
    def presence(self) -> Element:
        """The presence shown for this occupant."""
        return self.sessions[self.current]


@dataclass(slots=True)
class PendingIQ:
    asker: JID  # the full JID that asked
    asker_nick: str
    original_id: str
    answerer: JID  # the full JID the request went to
    answerer_nick: str


@dataclass(slots=True)
class PresenceOptions:
    """How one occupant's presence is written in a broadcast."""

    unavailable: bool = False
    codes: tuple[str, ...] = ()
    self_codes: tuple[str, ...] = ()  # only in the occupant's own copy (with 110)
    nick: str | None = None  # the new nick (303)
    actor: str | None = None
    reason: str | None = None
    status: list[Element | str] = field(default_factory=list)  # exit message
    destroy: Element | None = None
    presence_id: str | None = None  # reflected in the self-presence (§7.2.2)


def sanitize_presence(element: Element) -> Element:
    """The client's presence minus MUC payloads: §17.3 rule 6, "If a MUC service receives
    such extended presence information from an occupant, it MUST NOT reflect it"."""
    kept: list[Element | str] = [c for c in element.children
            if isinstance(c, Element) and c.ns not in (ns.NS_MUC, ns.NS_MUC_USER)]
    return Element(element.ns, "presence", {}, kept)


def sender_of(stanza: Stanza) -> JID:
    """The sender's full JID (the client's server always stamps it, RFC 6120 §8.1.2.1).

    Raises:
        StanzaError: ``bad-request`` without a full 'from'.
    """
    if stanza.from_ is None or stanza.from_.resource is None:
        raise StanzaError(SEC.BAD_REQUEST, "no sender")
    return stanza.from_


def parse_jid(value: str | None) -> JID:
    """A JID from an attribute.

    Raises:
        StanzaError: ``bad-request`` if missing, ``jid-malformed`` if invalid.
    """
    if not value:
        raise StanzaError(SEC.BAD_REQUEST, "a JID is required")
    try:
        return JID.parse(value)
    except JIDError:
        raise StanzaError(SEC.JID_MALFORMED) from None
