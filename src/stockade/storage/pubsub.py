"""Storage interface for the XEP-0060/XEP-0163 PEP nodes and items."""

from __future__ import annotations

from typing import Protocol


class PubsubStorage(Protocol):
    """What the XEP-0060/XEP-0163 PEP nodes and items needs persisted."""
