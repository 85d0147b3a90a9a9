"""Publish-subscribe rules for PEP (XEP-0060 subset, XEP-0163, XEP-0223) and entity
capabilities (XEP-0115): sans-I/O, so every decision is unit-tested without a server."""

from stockade.core.pubsub.access import (
           OWNER,
           Requester,
           access_error,
           check_access,
           check_owner,
           may_access,
)
from stockade.core.pubsub.caps import (
           CapsClaim,
           CapsMismatch,
           compute_ver,
           disco_query,
           notify_nodes,
           parse_caps,
           verified_features,
)
from stockade.core.pubsub.errors import (
           NS_PUBSUB,
           NS_PUBSUB_ERRORS,
           NS_PUBSUB_EVENT,
           NS_PUBSUB_OWNER,
           PubsubError,
)
from stockade.core.pubsub.node_config import DEFAULT_CONFIG, AccessModel, NodeConfig, SendLastItem

__all__ = ["DEFAULT_CONFIG", "NS_PUBSUB", "NS_PUBSUB_ERRORS", "NS_PUBSUB_EVENT",
           "NS_PUBSUB_OWNER", "OWNER", "AccessModel", "CapsClaim", "CapsMismatch",
           "NodeConfig", "PubsubError", "Requester", "SendLastItem", "access_error",
           "check_access", "check_owner", "compute_ver", "disco_query", "may_access",
           "notify_nodes", "parse_caps", "verified_features"]
