"""What every SQLite feature mixin relies on: one transaction on the storage's worker thread.

``SQLiteStorage`` (sqlite.py) implements ``_run``; the per-feature mixins
(``sqlite_<feature>.py``) only declare their SQL against it, so each XEP's tables and
queries live in one file beside its interface (``<feature>.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class SQLiteBase:
    """Base of ``SQLiteStorage`` and its feature mixins."""

    async def _run(
        self,
        write: bool,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` as one transaction (write: take the write lock first)."""
        raise NotImplementedError
