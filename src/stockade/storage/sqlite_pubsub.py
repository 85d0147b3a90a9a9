"""SQLite side of ``PubsubStorage``."""

from __future__ import annotations

from .sqlite_base import SQLiteBase


class SQLitePubsub(SQLiteBase):
    """See ``PubsubStorage``."""
