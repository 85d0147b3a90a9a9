"""Storage interface for the XEP-0313 message archive (and XEP-0045 room archives)."""

from __future__ import annotations

from typing import Protocol


class ArchiveStorage(Protocol):
    """What the XEP-0313 message archive (and XEP-0045 room archives) needs persisted."""
