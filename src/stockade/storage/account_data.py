"""Small per-account documents: XEP-0049 private XML, XEP-0054 vCard, XEP-0191 block list,
XEP-0313 preferences, XEP-0012 last activity, ... keyed by (namespace, key).

One table for many features keeps each of them from needing a migration for a handful of
rows per account; features with real query needs (archive, pubsub, rooms) have their own.
"""

from __future__ import annotations

from typing import Protocol

#: Largest value accepted, in characters (features enforce their own, smaller limits).
MAX_VALUE_CHARS = 1024 * 1024


class AccountDataStorage(Protocol):
    """Per-account key/value documents. Raise ``AccountNotFound`` for a missing account on
    writes; reads of a missing account answer None / empty."""

    async def get_data(self, username: str, namespace: str, key: str) -> str | None:
        """The value stored under (namespace, key), or None."""

    async def put_data(self, username: str, namespace: str, key: str, value: str) -> None:
        """Store or replace a value.

        Raises:
            AccountNotFound: no such account.
            StorageError: the value is longer than MAX_VALUE_CHARS.
        """

    async def delete_data(self, username: str, namespace: str, key: str) -> bool:
        """Remove a value; True if there was one."""

    async def list_data(self, username: str, namespace: str) -> list[tuple[str, str]]:
        """Every (key, value) of a namespace, by key."""

    async def clear_data(self, username: str, namespace: str) -> int:
        """Remove a whole namespace of an account; returns how many values went."""
