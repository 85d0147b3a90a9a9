"""SQLite side of ``MucStorage``."""

from __future__ import annotations

from .sqlite_base import SQLiteBase


class SQLiteMuc(SQLiteBase):
    """See ``MucStorage``."""
