"""SQLite side of ``ArchiveStorage``."""

from __future__ import annotations

from .sqlite_base import SQLiteBase


class SQLiteArchive(SQLiteBase):
    """See ``ArchiveStorage``."""
