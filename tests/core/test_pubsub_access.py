"""Access decisions of XEP-0060 §6.5.2 / §6.5.9 for the PEP access models."""

from __future__ import annotations

import pytest

from stockade.core.pubsub.access import (
    OWNER,
    Requester,
    access_error,
    check_access,
    check_owner,
    may_access,
)
from stockade.core.pubsub.errors import PubsubError
from stockade.core.pubsub.node_config import AccessModel, NodeConfig

OPEN = NodeConfig(access_model=AccessModel.OPEN)
PRESENCE = NodeConfig(access_model=AccessModel.PRESENCE)
ROSTER = NodeConfig(access_model=AccessModel.ROSTER, roster_groups_allowed=("friends",))
WHITELIST = NodeConfig(access_model=AccessModel.WHITELIST)

STRANGER = Requester(False)
CONTACT_BOTH = Requester(False, "both", ("friends",))
CONTACT_FROM_WORK = Requester(False, "from", ("work",))
CONTACT_TO = Requester(False, "to")  # the owner sees its presence, not the other way
CONTACT_NONE = Requester(False, "none")


def condition(config: NodeConfig, requester: Requester) -> tuple[str, str | None] | None:
    error = access_error(config, requester)
    return None if error is None else (error.condition.value, error.pubsub_condition)


@pytest.mark.parametrize("config", [OPEN, PRESENCE, ROSTER, WHITELIST])
def test_the_owner_may_always_retrieve(config: NodeConfig) -> None:
    assert may_access(config, OWNER)


def test_open_is_anyone() -> None:
    for requester in (STRANGER, CONTACT_NONE, CONTACT_TO, CONTACT_BOTH):
        assert may_access(OPEN, requester)


def test_presence_needs_a_subscription_to_the_owner() -> None:
    assert may_access(PRESENCE, CONTACT_BOTH)
    assert may_access(PRESENCE, CONTACT_FROM_WORK)
    # §6.5.9.6: not-authorized with presence-subscription-required.
    for requester in (CONTACT_TO, CONTACT_NONE):
        assert condition(PRESENCE, requester) == (
            "not-authorized", "presence-subscription-required")


def test_roster_needs_an_allowed_group() -> None:
    assert may_access(ROSTER, CONTACT_BOTH)
    assert condition(ROSTER, CONTACT_FROM_WORK) == ("not-authorized", "not-in-roster-group")
    assert condition(ROSTER, CONTACT_TO) == ("not-authorized", "presence-subscription-required")


def test_whitelist_is_the_owner_only() -> None:
    # §6.5.9.8: not-allowed with closed-node.
    for requester in (CONTACT_BOTH, CONTACT_FROM_WORK, CONTACT_NONE):
        assert condition(WHITELIST, requester) == ("not-allowed", "closed-node")


@pytest.mark.parametrize("config", [PRESENCE, ROSTER, WHITELIST])
def test_strangers_cannot_tell_a_private_node_from_none(config: NodeConfig) -> None:
    assert condition(config, STRANGER) == ("item-not-found", None)


def test_only_the_owner_manages_nodes() -> None:
    check_owner(OWNER)
    with pytest.raises(PubsubError) as info:
        check_owner(CONTACT_BOTH)
    assert info.value.condition.value == "forbidden"
    with pytest.raises(PubsubError):
        check_access(WHITELIST, CONTACT_BOTH)
    check_access(OPEN, STRANGER)
