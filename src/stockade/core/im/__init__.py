"""Instant messaging and presence, RFC 6121: sans-I/O rules the server applies to rosters."""

from __future__ import annotations

from stockade.core.im.subscription import (
    DefinedState,
    InboundResult,
    OutboundResult,
    PresenceNotice,
    Subscription,
    SubscriptionKind,
    SubState,
    process_inbound,
    process_outbound,
)

__all__ = [
    "DefinedState",
    "InboundResult",
    "OutboundResult",
    "PresenceNotice",
    "SubState",
    "Subscription",
    "SubscriptionKind",
    "process_inbound",
    "process_outbound",
]
