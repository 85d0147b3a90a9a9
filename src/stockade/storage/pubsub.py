"""Storage interface for PEP (XEP-0163) nodes and their items (XEP-0060 §7.1, §7.2, §8).

Each account owns its nodes; a node has an opaque configuration document (the core writes
and reads it) and items in publish order. Publishing replaces an item with the same id
(it becomes the newest) and trims the node to ``max_items`` in the same transaction, so a
node never holds more items than its limit, whatever runs concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .base import StorageError


@dataclass(frozen=True, slots=True)
class PubsubNode:
    """One node of an account: its name, configuration document and creation time."""

    name: str
    config: str
    created: float


@dataclass(frozen=True, slots=True)
class PubsubItem:
    """One published item: its id, serialized payload, publisher (full JID) and time."""

    id: str
    payload: str
    publisher: str
    stamp: float


@dataclass(frozen=True, slots=True)
class PubsubLimits:
    """Bounds a publish must stay within (all checked in the publishing transaction).

    Attributes:
        max_items: items the node keeps; older ones are deleted (oldest first).
        max_nodes: nodes the account may have (checked when a publish creates one).
        max_account_bytes: total payload characters of all the account's items.
    """

    max_items: int
    max_nodes: int
    max_account_bytes: int


class PubsubNodeNotFound(StorageError):
    """The node does not exist (and the call was not asked to create it)."""


class PubsubNodeLimit(StorageError):
    """Creating the node would exceed ``max_nodes``."""


class PubsubQuotaExceeded(StorageError):
    """The item would take the account's items over ``max_account_bytes``."""


class PubsubStorage(Protocol):
    """PEP nodes and items. Creating a node or publishing raises ``AccountNotFound`` for a
    missing account; every other call on a missing account or node answers None, False,
    zero or empty."""

    async def create_pubsub_node(self, username: str, node: str, config: str, *,
                                 max_nodes: int) -> bool:
        """Create a node; False if it exists already (nothing changes then).

        Raises:
            AccountNotFound: no such account.
            PubsubNodeLimit: the account has ``max_nodes`` nodes.
        """

    async def get_pubsub_node(self, username: str, node: str) -> PubsubNode | None:
        """The node, or None."""

    async def list_pubsub_nodes(self, username: str) -> list[PubsubNode]:
        """Every node of the account, by name."""

    async def configure_pubsub_node(self, username: str, node: str, config: str, *,
                                    max_items: int) -> list[str]:
        """Replace the node's configuration and trim it to ``max_items``; returns the ids
        of the items trimmed.

        Raises:
            PubsubNodeNotFound: no such node.
        """

    async def delete_pubsub_node(self, username: str, node: str) -> bool:
        """Delete the node and its items; False if there was none."""

    async def publish_pubsub_item(self, username: str, node: str, item: PubsubItem,
                                  limits: PubsubLimits, *,
                                  create_config: str | None = None) -> list[str]:
        """Store ``item`` as the node's newest (replacing one with its id), then delete the
        oldest beyond ``limits.max_items``; returns the ids deleted that way. A missing node
        is created with ``create_config`` if given.

        Raises:
            AccountNotFound: no such account.
            PubsubNodeNotFound: no node and no ``create_config``.
            PubsubNodeLimit: creating the node would exceed ``limits.max_nodes``.
            PubsubQuotaExceeded: over ``limits.max_account_bytes`` (nothing is stored).
        """

    async def get_pubsub_items(self, username: str, node: str, *,
                               ids: Sequence[str] | None = None,
                               last: int | None = None) -> list[PubsubItem]:
        """Items, oldest first: all, those with ``ids``, or the ``last`` newest."""

    async def retract_pubsub_items(self, username: str, node: str,
                                   ids: Sequence[str]) -> list[str]:
        """Delete items by id; returns the ids that existed (in the order given)."""

    async def purge_pubsub_node(self, username: str, node: str) -> int:
        """Delete every item of the node; returns how many went."""

    async def last_pubsub_items(self, usernames: Sequence[str], nodes: Sequence[str],
                                ) -> list[tuple[str, PubsubNode, PubsubItem]]:
        """For each account of ``usernames`` and each of its ``nodes`` that has items:
        (username, node, newest item), by username then node name. One call for a whole
        roster, so a login does not cost a query per contact."""
