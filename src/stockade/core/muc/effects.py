"""What the MUC core asks its caller to do, in order: send, store, forget, answer MAM."""

from __future__ import annotations

from dataclasses import dataclass

from stockade.core.jid import JID
from stockade.core.muc.history import HistoryEntry
from stockade.core.stanza import Stanza
from stockade.core.xml import Element


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``element`` (a message, presence or iq with from/to set) to ``to``."""

    to: JID
    element: Element


@dataclass(frozen=True, slots=True)
class SaveRoom:
    """Bring storage in line with the room: store its snapshot (configuration, affiliations,
    subject) if it is persistent, forget the snapshot (not the archive) if it is not."""

    room: JID


@dataclass(frozen=True, slots=True)
class DeleteRoom:
    """Forget everything stored for the room (snapshot and archive)."""

    room: JID


@dataclass(frozen=True, slots=True)
class ArchiveMessage:
    """Store a reflected groupchat message in the room's archive (before it is sent)."""

    room: JID
    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class QueryArchive:
    """An allowed XEP-0313 query to the room's archive: the caller reads storage and answers
    ``iq`` itself."""

    room: JID
    iq: Stanza


Effect = Send | SaveRoom | DeleteRoom | ArchiveMessage | QueryArchive
