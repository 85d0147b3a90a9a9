"""Multi-User Chat, XEP-0045, sans-I/O: rooms, their rules, and what to send to whom.

``MucService.handle(stanza, now)`` returns effects (``Send``, ``SaveRoom``, ``DeleteRoom``,
``ArchiveMessage``, ``QueryArchive``) that the server carries out in order.
"""

from __future__ import annotations

from stockade.core.muc._ns import NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER
from stockade.core.muc.config import MucLimits, RoomConfig
from stockade.core.muc.effects import (
    ArchiveMessage,
    DeleteRoom,
    Effect,
    QueryArchive,
    SaveRoom,
    Send,
)
from stockade.core.muc.history import HistoryEntry, parse_xep0082, xep0082_stamp
from stockade.core.muc.occupant import AffiliationRecord, RoomSnapshot, Subject
from stockade.core.muc.roles import Affiliation, Role
from stockade.core.muc.room import Room
from stockade.core.muc.service import MucService

__all__ = [
    "NS_MUC",
    "NS_MUC_ADMIN",
    "NS_MUC_OWNER",
    "NS_MUC_USER",
    "Affiliation",
    "AffiliationRecord",
    "ArchiveMessage",
    "DeleteRoom",
    "Effect",
    "HistoryEntry",
    "MucLimits",
    "MucService",
    "QueryArchive",
    "Role",
    "Room",
    "RoomConfig",
    "RoomSnapshot",
    "SaveRoom",
    "Send",
    "Subject",
    "parse_xep0082",
    "xep0082_stamp",
]
