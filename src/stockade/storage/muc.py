"""Storage interface for the XEP-0045 persistent rooms: configuration and affiliations."""

from __future__ import annotations

from typing import Protocol


class MucStorage(Protocol):
    """What the XEP-0045 persistent rooms: configuration and affiliations needs persisted."""
