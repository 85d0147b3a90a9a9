"""Persistent state of a Stockade server: the ``Storage`` Protocol and its backends."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from stockade.core.errors import ConfigError

from .base import (
    SUBSCRIPTION_STATES,
    AccountExists,
    AccountNotFound,
    FingerprintInUse,
    OfflineMessage,
    RosterItem,
    Storage,
    StorageError,
    UnsupportedSchemaVersion,
    normalize_fingerprint,
)
from .sqlite import SQLiteStorage

__all__ = [
    "SUBSCRIPTION_STATES",
    "AccountExists",
    "AccountNotFound",
    "FingerprintInUse",
    "OfflineMessage",
    "RosterItem",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "UnsupportedSchemaVersion",
    "normalize_fingerprint",
    "open_storage",
]


def open_storage(url_or_path: str | os.PathLike[str]) -> Storage:
    """Return the (not yet opened) storage a config value names.

    Accepts a filesystem path or a ``sqlite:`` URL. The URL's path is the
    file's path, as in ``file:`` URLs: ``sqlite:///var/lib/stockade/db.sqlite``
    is ``/var/lib/stockade/db.sqlite`` (four slashes, SQLAlchemy's absolute
    form, mean the same). Use a plain path for a relative location.

    Raises:
        ConfigError: an unsupported scheme, a host part, or an empty path.
    """
    text = os.fspath(url_or_path)
    if "://" not in text:
        if not text:
            raise ConfigError("storage: empty database path")
        return SQLiteStorage(text)
    url = urlsplit(text)
    if url.scheme != "sqlite":
        raise ConfigError(f"storage: unsupported URL scheme {url.scheme!r} (supported: sqlite)")
    if url.netloc or url.query or url.fragment:
        raise ConfigError("storage: a sqlite URL is sqlite:///path, with no host or query")
    # Collapse "//var/..." (four slashes): POSIX leaves a leading "//" open to
    # a special meaning, and pathlib keeps it.
    path = "/" + unquote(url.path).lstrip("/")
    if path == "/":
        raise ConfigError("storage: the sqlite URL names no file")
    return SQLiteStorage(path)
