"""Storage interface for XEP-0045 persistent rooms: configuration, affiliations, subject.

A room's messages are not here: they live in the message archive (``archive.py``) under
the room's bare JID as owner, which serves both its MAM queries and its history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: XEP-0045 §5.2: the affiliations stored ("none" is the absence of a row).
STORED_AFFILIATIONS: frozenset[str] = frozenset({"owner", "admin", "member", "outcast"})
#: Largest configuration document accepted, in characters.
MAX_CONFIG_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoredAffiliation:
    """One user's (or domain's) affiliation with a room.

    Attributes:
        jid: a bare JID or a domain, prepared.
        affiliation: "owner", "admin", "member" or "outcast".
        nick: the nickname reserved for them in the room, or None.
        reason: why (kept for bans), or None.
    """

    jid: str
    affiliation: str
    nick: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.affiliation not in STORED_AFFILIATIONS:
            raise ValueError(f"invalid room affiliation {self.affiliation!r}")


@dataclass(frozen=True, slots=True)
class StoredRoom:
    """A persistent room as kept across restarts.

    Attributes:
        jid: the room's bare JID, prepared.
        config: its configuration as a JSON document (the core's ``RoomConfig.to_dict``).
        created: unix time it was created.
        subject, subject_nick, subject_stamp: the subject, who set it (None: the room) and
            when; all None when no subject was ever set.
        affiliations: every affiliation, one per JID.
    """

    jid: str
    config: str
    created: float
    subject: str | None = None
    subject_nick: str | None = None
    subject_stamp: float | None = None
    affiliations: tuple[StoredAffiliation, ...] = ()

    def __post_init__(self) -> None:
        if "@" not in self.jid or "/" in self.jid:
            raise ValueError(f"a room is stored by its bare JID, got {self.jid!r}")
        if len({a.jid for a in self.affiliations}) != len(self.affiliations):
            raise ValueError("one affiliation per JID")


class MucStorage(Protocol):
    """Persistent rooms. Each method is one transaction."""

    async def put_muc_room(self, room: StoredRoom) -> None:
        """Store a room, replacing what was stored for it (affiliations included).

        Raises:
            StorageError: the configuration document is larger than MAX_CONFIG_CHARS.
        """
        ...

    async def get_muc_room(self, jid: str) -> StoredRoom | None:
        """The stored room, or None."""
        ...

    async def list_muc_rooms(self) -> list[StoredRoom]:
        """Every stored room, by JID."""
        ...

    async def delete_muc_room(self, jid: str) -> bool:
        """Forget a room and its affiliations (not its archive); True if it was stored."""
        ...
