"""Who may do what on a PEP node: XEP-0060 §4.5 access models and §6.5.2 (retrieval
permissions), with XEP-0163 §2.2: the account owner is the only publisher and owner.

Decisions take the requester's relation to the owner as data (its roster item in the
owner's roster), so they are pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockade.core.errors import StanzaErrorCondition
from stockade.core.pubsub.errors import PubsubError, item_not_found
from stockade.core.pubsub.node_config import AccessModel, NodeConfig

SEC = StanzaErrorCondition
_SUBSCRIBED = frozenset({"from", "both"})  # the contact receives the owner's presence


@dataclass(frozen=True, slots=True)
class Requester:
    """The requesting entity as the owner's account sees it.

    ``subscription`` is the requester's item in the owner's roster ("none", "to", "from",
    "both"), or None when the owner's roster does not list it.
    """

    is_owner: bool
    subscription: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def is_known(self) -> bool:
        """The owner has the requester in the roster (in any subscription state)."""
        return self.is_owner or self.subscription is not None

    @property
    def has_presence_subscription(self) -> bool:
        """The requester is subscribed to the owner's presence (XEP-0163 §2.4)."""
        return self.is_owner or self.subscription in _SUBSCRIBED


OWNER = Requester(is_owner=True)


def check_owner(requester: Requester) -> None:
    """Publishing, retracting, creating, configuring, deleting and purging are the owner's.

    Raises:
        PubsubError: forbidden (XEP-0060 §7.1.3.1, §8.1.1, §8.2.3.2, §8.4.3.1, §8.5.3.2).
    """
    if not requester.is_owner:
        raise PubsubError(SEC.FORBIDDEN)


def access_error(config: NodeConfig, requester: Requester) -> PubsubError | None:
    """Why ``requester`` may not retrieve items of the node, or None if it may."""
    if requester.is_owner:
        return None  # §6.5.2: "a service MUST always allow the node owner"
    model = config.access_model
    if model is AccessModel.OPEN:
        return None
    if model is AccessModel.WHITELIST:
        error = PubsubError(SEC.NOT_ALLOWED, "closed-node")  # §6.5.9.8
    elif not requester.has_presence_subscription:
        error = PubsubError(SEC.NOT_AUTHORIZED, "presence-subscription-required")  # §6.5.9.6
    elif model is AccessModel.ROSTER and not set(requester.groups) & set(
            config.roster_groups_allowed):
        error = PubsubError(SEC.NOT_AUTHORIZED, "not-in-roster-group")  # §6.5.9.7
    else:
        return None
    if not requester.is_known:
        # SECURITY: to someone the owner does not know, a node it may not read looks like
        # one that does not exist, so a stranger cannot tell accounts (or their private
        # nodes) from nonexistent ones; the owner's contacts get the XEP-0060 error.
        return item_not_found()
    return error


def may_access(config: NodeConfig, requester: Requester) -> bool:
    """Whether ``requester`` may retrieve items (and so receive notifications)."""
    return access_error(config, requester) is None


def check_access(config: NodeConfig, requester: Requester) -> None:
    """Raises:
        PubsubError: the error of ``access_error``.
    """
    error = access_error(config, requester)
    if error is not None:
        raise error
