"""XEP-0363 HTTP File Upload: slots and the files uploaded into them (migration 0007).

A slot is created pending (``completed`` None) with a PUT deadline in ``expires``; the PUT
that fills it sets ``completed`` and the file's own expiry. Rows go with their account; the
files on disk are the module's (xep0363_upload), which removes those without a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """One upload slot.

    Attributes:
        token: the unguessable part of the URL (URL-safe base64, at least 128 bits).
        username: the owning account.
        filename: the sanitised file name (as shown in the URL, before percent-encoding).
        size: bytes promised in the slot request (the PUT's Content-Length must equal it).
        content_type: pending: the media type promised ("" for none: the PUT's
            Content-Type decides); completed: the type the file was stored as.
        put_digest: SHA-256 of the secret the PUT must present (Authorization header).
        created: unix time the slot was handed out.
        expires: pending: the PUT deadline; completed: when the file goes (None: never).
        completed: unix time the file was stored, None while pending.
    """

    token: str
    username: str
    filename: str
    size: int
    content_type: str
    put_digest: bytes
    created: float
    expires: float | None
    completed: float | None = None

    @property
    def is_pending(self) -> bool:
        """No file has been uploaded into the slot yet."""
        return self.completed is None


class UploadStorage(Protocol):
    """Stored upload slots."""

    async def add_upload(self, upload: StoredUpload) -> None:
        """Store a new slot.

        Raises:
            AccountNotFound: no such account.
            StorageError: the token is already taken.
        """

    async def get_upload(self, token: str) -> StoredUpload | None:
        """The slot with this token, or None."""

    async def list_uploads(self, username: str) -> list[StoredUpload]:
        """Every slot of an account (pending or completed), oldest first."""

    async def list_pending_uploads(self) -> list[StoredUpload]:
        """Every slot still waiting for its PUT, oldest first."""

    async def complete_upload(self, token: str, completed: float, expires: float | None,
                              content_type: str) -> bool:
        """Mark a pending slot as filled with a file of ``content_type``; False if it is not
        pending (used or gone)."""

    async def expired_uploads(self, now: float, limit: int) -> list[StoredUpload]:
        """Up to ``limit`` slots whose ``expires`` is at or before ``now``, soonest first."""

    async def delete_upload(self, token: str) -> bool:
        """Forget a slot; True if there was one."""

    async def upload_tokens(self) -> set[str]:
        """The token of every stored slot (to find files left without one)."""
