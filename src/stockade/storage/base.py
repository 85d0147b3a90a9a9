"""Storage interface: the records and the async Protocol every backend implements.

Covers accounts and SCRAM credentials (RFC 5802 §3), client-certificate
fingerprints for SASL EXTERNAL (RFC 6120 §6.4 / XEP-0178), the roster with
versioning (RFC 6121 §2, §2.6), pending inbound subscription requests
(RFC 6121 §3.1.3) and offline messages (RFC 6121 §8.5.2.1.1, XEP-0160).

Usernames are passed already prepared (PRECIS UsernameCaseMapped, RFC 7622
§3.3); storage compares them byte for byte and never normalises them itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from stockade.core.errors import StockadeError
from stockade.core.sasl.credentials import ScramCredential

#: RFC 6121 §2.1.2.5: the values of the roster item ``subscription`` attribute
#: that are stored ("remove" is a request, never a state).
SUBSCRIPTION_STATES: frozenset[str] = frozenset({"none", "to", "from", "both"})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class StorageError(StockadeError):
    """Storage failed or was misused; base of every storage exception."""


class AccountExists(StorageError):
    """An account with this username already exists."""

    def __init__(self, username: str) -> None:
        super().__init__(f"account {username!r} already exists")
        self.username = username


class AccountNotFound(StorageError):
    """No account with this username exists."""

    def __init__(self, username: str) -> None:
        super().__init__(f"account {username!r} does not exist")
        self.username = username


class FingerprintInUse(StorageError):
    """The certificate fingerprint is already bound to another account."""

    def __init__(self, sha256_hex: str) -> None:
        super().__init__(f"certificate {sha256_hex} is bound to another account")
        self.sha256_hex = sha256_hex


class UnsupportedSchemaVersion(StorageError):
    """The database schema is newer than this code (or is not ours)."""


def normalize_fingerprint(sha256_hex: str) -> str:
    """Return a SHA-256 fingerprint as 64 lowercase hex digits.

    Accepts ``AB:CD:...`` (as openssl prints it) and plain hex in any case.

    Raises:
        ValueError: the result is not exactly 64 hex digits.
    """
    normal = sha256_hex.strip().replace(":", "").lower()
    if not _SHA256_HEX.fullmatch(normal):
        raise ValueError("a SHA-256 fingerprint is 64 hex digits (colons allowed)")
    return normal


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One contact in an account's roster (RFC 6121 §2.1.2).

    Attributes:
        jid: the contact's bare JID, already prepared.
        name: the user-assigned handle, or None.
        subscription: "none", "to", "from" or "both".
        ask: an outbound subscription request is pending (``ask='subscribe'``).
        approved: an inbound request is pre-approved (RFC 6121 §3.4).
        groups: group names in the order the client gave them.
    """

    jid: str
    name: str | None = None
    subscription: str = "none"
    ask: bool = False
    approved: bool = False
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.subscription not in SUBSCRIPTION_STATES:
            raise ValueError(f"invalid roster subscription {self.subscription!r}")
        # Storage keys items by bare JID; a resource here is a caller bug.
        if not self.jid or "/" in self.jid:
            raise ValueError(f"roster item needs a bare JID, got {self.jid!r}")
        # RFC 6121 §2.3.3: duplicate <group/> elements are a bad-request;
        # refusing them here keeps them out of the database too.
        if len(set(self.groups)) != len(self.groups):
            raise ValueError("roster item has duplicate groups")


@dataclass(frozen=True, slots=True)
class OfflineMessage:
    """A message stored for an offline account (RFC 6121 §8.5.2.1.1).

    Attributes:
        id: backend-assigned, unique, increasing in arrival order, never reused.
        stanza: the serialized ``<message/>``.
        stamp: unix time (seconds, sub-second precision) it was accepted.
    """

    id: int
    stanza: str
    stamp: float


class CoreStorage(Protocol):
    """What the core server (RFC 6120/6121) needs to persist.

    Every method is one transaction. Per-account methods raise
    ``AccountNotFound`` when the account does not exist, except three lookups
    that answer None instead: ``get_credential`` and ``account_for_fingerprint``
    (authentication must fail alike for a wrong user and a wrong key) and
    ``get_roster_item`` (presence probes and disco ask "is X in Y's roster?"
    about any local JID, and must answer alike whether or not Y exists).
    Backend failures surface as ``StorageError``.
    """

    async def open(self) -> None:
        """Connect and bring the schema up to date.

        Raises:
            UnsupportedSchemaVersion: the database is newer than this code.
            StorageError: already open, or the backend could not be opened.
        """
        ...

    async def close(self) -> None:
        """Finish pending calls and disconnect; further calls raise StorageError."""
        ...

    async def __aenter__(self) -> Self:
        """Open, for ``async with open_storage(...) as storage:``."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close."""
        ...

    # Accounts -----------------------------------------------------------------

    async def create_account(self, username: str, credentials: Sequence[ScramCredential]) -> None:
        """Create an account with at most one credential per hash.

        Raises:
            AccountExists: the username is taken.
            ValueError: two credentials share a hash name.
        """
        ...

    async def set_credentials(self, username: str, credentials: Sequence[ScramCredential]) -> None:
        """Replace all credentials of an account (a password change).

        Raises:
            AccountNotFound: no such account.
            ValueError: two credentials share a hash name.
        """
        ...

    async def delete_account(self, username: str) -> None:
        """Delete an account and everything it owns.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def account_exists(self, username: str) -> bool:
        """Whether the account exists."""
        ...

    async def list_accounts(self) -> list[str]:
        """All usernames, sorted by code point."""
        ...

    async def get_credential(self, username: str, hash_name: str) -> ScramCredential | None:
        """The account's credential for ``hash_name``, or None (also for no account)."""
        ...

    # Client certificates (SASL EXTERNAL) ----------------------------------------

    async def add_cert_fingerprint(self, username: str, sha256_hex: str) -> None:
        """Let the certificate with this SHA-256 fingerprint log in as the account.

        Adding a fingerprint the account already has is a no-op.

        Raises:
            AccountNotFound: no such account.
            FingerprintInUse: the fingerprint belongs to another account.
            ValueError: not a SHA-256 fingerprint.
        """
        ...

    async def remove_cert_fingerprint(self, username: str, sha256_hex: str) -> None:
        """Unbind the fingerprint from the account; a no-op if it is not bound to it.

        Raises:
            AccountNotFound: no such account.
            ValueError: not a SHA-256 fingerprint.
        """
        ...

    async def account_for_fingerprint(self, sha256_hex: str) -> str | None:
        """The username bound to the fingerprint, or None.

        Raises:
            ValueError: not a SHA-256 fingerprint.
        """
        ...

    async def list_cert_fingerprints(self, username: str) -> list[str]:
        """The account's fingerprints, normalised and sorted.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    # Roster -----------------------------------------------------------------------

    async def get_roster(self, username: str) -> tuple[str, list[RosterItem]]:
        """The roster version and all items, sorted by JID.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def get_roster_item(self, username: str, jid: str) -> RosterItem | None:
        """The item for a contact's bare JID, or None (also for no account)."""
        ...

    async def put_roster_item(self, username: str, item: RosterItem) -> str:
        """Insert or replace the item for ``item.jid``; return the new roster version.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def remove_roster_item(self, username: str, jid: str) -> str:
        """Remove the item; return the new version (the current one if there was none).

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def roster_version(self, username: str) -> str:
        """The current roster version: a decimal integer, "0" for a new account.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    # Pending inbound subscription requests ----------------------------------------

    async def store_pending_subscription(self, username: str, from_jid: str, stanza: str) -> None:
        """Keep an inbound subscribe request; a newer one from the same JID replaces it.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def list_pending_subscriptions(self, username: str) -> list[tuple[str, str]]:
        """``(from_jid, stanza)`` pairs in the order they (last) arrived.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def remove_pending_subscription(self, username: str, from_jid: str) -> None:
        """Forget the request from ``from_jid``; a no-op if there is none.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    # Offline messages ------------------------------------------------------------

    async def store_offline(self, username: str, stanza: str, stamp: float) -> int:
        """Durably store a message; return its id. Committed before returning.

        Raises:
            AccountNotFound: no such account.
            ValueError: ``stamp`` is not a finite number.
        """
        ...

    async def fetch_offline(self, username: str, limit: int = 1000) -> list[OfflineMessage]:
        """Up to ``limit`` stored messages, oldest (first stored) first.

        Raises:
            AccountNotFound: no such account.
            ValueError: ``limit`` is less than 1.
        """
        ...

    async def delete_offline(self, username: str, ids: Sequence[int]) -> None:
        """Delete the account's messages with these ids; others' ids are ignored.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    async def count_offline(self, username: str) -> int:
        """How many messages are stored for the account.

        Raises:
            AccountNotFound: no such account.
        """
        ...


from .account_data import AccountDataStorage  # noqa: E402
from .archive import ArchiveStorage  # noqa: E402
from .fast import FastTokenStorage  # noqa: E402
from .muc import MucStorage  # noqa: E402
from .pubsub import PubsubStorage  # noqa: E402
from .upload import UploadStorage  # noqa: E402


class Storage(CoreStorage, AccountDataStorage, ArchiveStorage, PubsubStorage, MucStorage,
              FastTokenStorage, UploadStorage, Protocol):
    """Everything the server persists: the core plus one interface per feature (each in its
    own file, with its SQLite side in ``sqlite_<feature>.py``)."""
