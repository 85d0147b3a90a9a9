"""Presence subscription state machine, RFC 6121 §3 and Appendix A.

Pure and synchronous. For one contact's entry in one user's roster and one subscription-related
presence stanza (outbound: sent by the user; inbound: addressed to the user), the functions
say what the user's server does: the new state, whether to route or deliver the stanza, whether
to push the roster item, what to answer on the user's behalf and what presence to send the
contact. Storing the state, routing, the roster push and the presence broadcast are the
caller's.

Whose server: Appendix A always speaks as "the user's server", the owner of the roster, and so
does this module. The prose of §3.1.3, §3.1.5, §3.2.2 and §3.3.3 calls that same roster owner
"the contact", because there the stanza travels the other way. The quotations below keep the
RFC's words; read "contact's server" in them as the server this module decides for.

The Appendix A tables are written out row by row in ``_OUTBOUND`` and ``_INBOUND``; a missing
key is the error path (STYLE.md, default deny).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeVar

from stockade.core.errors import LocalProtocolError

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


class Subscription(enum.Enum):
    """RFC 6121 §2.1.2.5: the roster item's 'subscription' attribute ("remove" is not a state)."""

    NONE = "none"
    TO = "to"
    FROM = "from"
    BOTH = "both"


class SubscriptionKind(enum.Enum):
    """RFC 6121 §3: the presence 'type' values that manage subscriptions."""

    SUBSCRIBE = "subscribe"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBE = "unsubscribe"
    UNSUBSCRIBED = "unsubscribed"


class DefinedState(enum.Enum):
    """RFC 6121 §A.1: the nine defined subscription states; value = the RFC's own name."""

    NONE = "None"
    NONE_PENDING_OUT = "None + Pending Out"
    NONE_PENDING_IN = "None + Pending In"
    NONE_PENDING_OUT_IN = "None + Pending Out+In"
    TO = "To"
    TO_PENDING_IN = "To + Pending In"
    FROM = "From"
    FROM_PENDING_OUT = "From + Pending Out"
    BOTH = "Both"


class PresenceNotice(enum.Enum):
    """Presence the user's server sends the contact from each of the user's available resources.

    Value = the presence the contact receives: the user's current (available) presence, or
    presence of type "unavailable".
    """

    CURRENT = "available"
    UNAVAILABLE = "unavailable"


# RFC 6121 §A.1, one line per defined state: (subscription, pending out, pending in).
# "Pending Out" is what the roster shows as ask='subscribe'; "Pending In" is not shown in the
# roster item at all ("To + Pending In" is "reflected in the user's roster by subscription='to'").
_DEFINED: Final[dict[tuple[Subscription, bool, bool], DefinedState]] = {
    (Subscription.NONE, False, False): DefinedState.NONE,
    (Subscription.NONE, True, False): DefinedState.NONE_PENDING_OUT,
    (Subscription.NONE, False, True): DefinedState.NONE_PENDING_IN,
    (Subscription.NONE, True, True): DefinedState.NONE_PENDING_OUT_IN,
    (Subscription.TO, False, False): DefinedState.TO,
    (Subscription.TO, False, True): DefinedState.TO_PENDING_IN,
    (Subscription.FROM, False, False): DefinedState.FROM,
    (Subscription.FROM, True, False): DefinedState.FROM_PENDING_OUT,
    (Subscription.BOTH, False, False): DefinedState.BOTH,
}
_COMPONENTS: Final[dict[DefinedState, tuple[Subscription, bool, bool]]] = {
    state: parts for parts, state in _DEFINED.items()
}

# RFC 6121 §3.4.2 steps 3 and 4: the states in which an outbound "subscribed" is noted as a
# pre-approval ("To", "None", "None + Pending Out", or not in the roster, which is "None").
# The 'approved' flag exists only here: in every other state the contact is already
# subscribed or has already asked, and "subscribed" is ignored or is a normal approval.
_PRE_APPROVABLE: Final[frozenset[DefinedState]] = frozenset(
    {DefinedState.NONE, DefinedState.NONE_PENDING_OUT, DefinedState.TO}
)


@dataclass(frozen=True, slots=True)
class SubState:
    """One contact's entry in one user's roster: an RFC 6121 §A.1 state plus pre-approval.

    ``SubState()`` is "None", which includes a contact that is not in the roster at all.

    Attributes:
        subscription: The roster item's 'subscription' attribute.
        pending_out: The user asked the contact and has no answer yet (ask='subscribe').
        pending_in: The contact asked the user and the user has not answered. The caller keeps
            the request stanza itself (§3.1.3) and MUST NOT create a roster item only for it
            (§A.1, "None + Pending In").
        approved: The user pre-approved the contact (§3.4, the roster's approved='true').

    Raises:
        LocalProtocolError: The combination is none of the nine §A.1 states (such as
            "To + Pending Out" or "Both + Pending In"), or ``approved`` is set in a state
            where §3.4.2 never notes a pre-approval.
    """

    subscription: Subscription = Subscription.NONE
    pending_out: bool = False
    pending_in: bool = False
    approved: bool = False

    def __post_init__(self) -> None:
        """Refuse combinations that are not RFC 6121 §A.1 states."""
        parts = (self.subscription, self.pending_out, self.pending_in)
        if parts not in _DEFINED:
            raise LocalProtocolError(f"not an RFC 6121 A.1 subscription state: {parts!r}")
        if self.approved and _DEFINED[parts] not in _PRE_APPROVABLE:
            raise LocalProtocolError(f"pre-approval is not possible in {_DEFINED[parts].value!r}")

    @classmethod
    def of(cls, state: DefinedState, *, approved: bool = False) -> SubState:
        """Build the entry for a §A.1 state, e.g. ``SubState.of(DefinedState.TO)``."""
        subscription, pending_out, pending_in = _COMPONENTS[state]
        return cls(subscription, pending_out, pending_in, approved)

    @property
    def defined_state(self) -> DefinedState:
        """The RFC 6121 §A.1 state, e.g. ``DefinedState.NONE_PENDING_OUT_IN``."""
        return _DEFINED[(self.subscription, self.pending_out, self.pending_in)]


@dataclass(frozen=True, slots=True)
class OutboundResult:
    """What the user's server does with a subscription stanza the user sent (RFC 6121 §A.2).

    Attributes:
        state: The entry after the stanza.
        route: Route (or locally deliver) the stanza to the contact, stamped with the user's
            bare JID (§3).
        push: Send a roster push to the user's interested resources: the roster item
            (subscription, ask, approved) changed.
        presence_to_contact: Presence to send the contact from each of the user's available
            resources. ``CURRENT`` goes after the routed "subscribed" (§3.1.5); ``UNAVAILABLE``
            MUST go before the routed "unsubscribed" (§3.2.2).
    """

    state: SubState
    route: bool
    push: bool
    presence_to_contact: PresenceNotice | None


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What the user's server does with a subscription stanza from the contact (RFC 6121 §A.3).

    Attributes:
        state: The entry after the stanza.
        deliver: Deliver the stanza to the user. For "subscribe" this means every available
            resource, or, with none, keep it and deliver it when one becomes available
            (§3.1.3); for the others the user's interested resources. ``False`` with no
            ``auto_reply``: the stanza is silently ignored.
        auto_reply: Send this type from the user's bare JID to the contact on the user's behalf.
        push: Send a roster push to the user's interested resources, after the delivery
            (§3.1.6): the roster item (subscription, ask, approved) changed.
        presence_to_contact: Presence to send the contact from each of the user's available
            resources, after the stanza and any ``auto_reply``.
    """

    state: SubState
    deliver: bool
    auto_reply: SubscriptionKind | None
    push: bool
    presence_to_contact: PresenceNotice | None


class _Out(NamedTuple):
    """One row of an RFC 6121 §A.2 table; ``new`` is None for "no state change"."""

    route: bool
    new: DefinedState | None
    presence: PresenceNotice | None = None


class _In(NamedTuple):
    """One row of an RFC 6121 §A.3 table; ``new`` is None for "no state change"."""

    deliver: bool
    new: DefinedState | None
    auto_reply: SubscriptionKind | None = None
    presence: PresenceNotice | None = None


# Spelled as in the RFC's tables.
YES: Final = True
NO: Final = False
NO_STATE_CHANGE: Final = None

_S = DefinedState
_K = SubscriptionKind
_CURRENT: Final = PresenceNotice.CURRENT
_UNAVAILABLE: Final = PresenceNotice.UNAVAILABLE

# RFC 6121 §A.2, one entry per table row: (existing state, stanza) -> (ROUTE?, NEW STATE).
# Presence columns come from the prose sections named per table.
_OUTBOUND: Final[dict[tuple[DefinedState, SubscriptionKind], _Out]] = {
    # A.2.1 Outbound "subscribe" (§3.1.2)
    (_S.NONE, _K.SUBSCRIBE): _Out(YES, _S.NONE_PENDING_OUT),
    (_S.NONE_PENDING_OUT, _K.SUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.NONE_PENDING_IN, _K.SUBSCRIBE): _Out(YES, _S.NONE_PENDING_OUT_IN),
    (_S.NONE_PENDING_OUT_IN, _K.SUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.TO, _K.SUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.TO_PENDING_IN, _K.SUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.FROM, _K.SUBSCRIBE): _Out(YES, _S.FROM_PENDING_OUT),
    (_S.FROM_PENDING_OUT, _K.SUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.BOTH, _K.SUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    # A.2.2 Outbound "unsubscribe" (§3.3.2)
    (_S.NONE, _K.UNSUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT, _K.UNSUBSCRIBE): _Out(YES, _S.NONE),
    (_S.NONE_PENDING_IN, _K.UNSUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT_IN, _K.UNSUBSCRIBE): _Out(YES, _S.NONE_PENDING_IN),
    (_S.TO, _K.UNSUBSCRIBE): _Out(YES, _S.NONE),
    (_S.TO_PENDING_IN, _K.UNSUBSCRIBE): _Out(YES, _S.NONE_PENDING_IN),
    (_S.FROM, _K.UNSUBSCRIBE): _Out(YES, NO_STATE_CHANGE),
    (_S.FROM_PENDING_OUT, _K.UNSUBSCRIBE): _Out(YES, _S.FROM),
    (_S.BOTH, _K.UNSUBSCRIBE): _Out(YES, _S.FROM),
    # A.2.3 Outbound "subscribed" (§3.1.5; pre-approval in None, None + Pending Out, To: §3.4.2)
    (_S.NONE, _K.SUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT, _K.SUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_IN, _K.SUBSCRIBED): _Out(YES, _S.FROM, _CURRENT),
    (_S.NONE_PENDING_OUT_IN, _K.SUBSCRIBED): _Out(YES, _S.FROM_PENDING_OUT, _CURRENT),
    (_S.TO, _K.SUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.TO_PENDING_IN, _K.SUBSCRIBED): _Out(YES, _S.BOTH, _CURRENT),
    (_S.FROM, _K.SUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.FROM_PENDING_OUT, _K.SUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.BOTH, _K.SUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    # A.2.4 Outbound "unsubscribed" (§3.2.2; unavailable first wherever the contact was subscribed)
    (_S.NONE, _K.UNSUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT, _K.UNSUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_IN, _K.UNSUBSCRIBED): _Out(YES, _S.NONE),
    (_S.NONE_PENDING_OUT_IN, _K.UNSUBSCRIBED): _Out(YES, _S.NONE_PENDING_OUT),
    (_S.TO, _K.UNSUBSCRIBED): _Out(NO, NO_STATE_CHANGE),
    (_S.TO_PENDING_IN, _K.UNSUBSCRIBED): _Out(YES, _S.TO),
    (_S.FROM, _K.UNSUBSCRIBED): _Out(YES, _S.NONE, _UNAVAILABLE),
    (_S.FROM_PENDING_OUT, _K.UNSUBSCRIBED): _Out(YES, _S.NONE_PENDING_OUT, _UNAVAILABLE),
    (_S.BOTH, _K.UNSUBSCRIBED): _Out(YES, _S.TO, _UNAVAILABLE),
}

# RFC 6121 §A.3, one entry per table row: (existing state, stanza) -> (DELIVER?, NEW STATE).
# The "*" of A.3.1 is the auto-reply column; presence columns come from the prose sections.
_INBOUND: Final[dict[tuple[DefinedState, SubscriptionKind], _In]] = {
    # A.3.1 Inbound "subscribe" (§3.1.3; "no *": auto-reply "subscribed"). Sending current
    # presence after that auto-reply is Stockade's choice, not the RFC's: the contact's server
    # asked because it holds no subscription, so it has no presence of the user either.
    (_S.NONE, _K.SUBSCRIBE): _In(YES, _S.NONE_PENDING_IN),
    (_S.NONE_PENDING_OUT, _K.SUBSCRIBE): _In(YES, _S.NONE_PENDING_OUT_IN),
    (_S.NONE_PENDING_IN, _K.SUBSCRIBE): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT_IN, _K.SUBSCRIBE): _In(NO, NO_STATE_CHANGE),
    (_S.TO, _K.SUBSCRIBE): _In(YES, _S.TO_PENDING_IN),
    (_S.TO_PENDING_IN, _K.SUBSCRIBE): _In(NO, NO_STATE_CHANGE),
    (_S.FROM, _K.SUBSCRIBE): _In(NO, NO_STATE_CHANGE, _K.SUBSCRIBED, _CURRENT),
    (_S.FROM_PENDING_OUT, _K.SUBSCRIBE): _In(NO, NO_STATE_CHANGE, _K.SUBSCRIBED, _CURRENT),
    (_S.BOTH, _K.SUBSCRIBE): _In(NO, NO_STATE_CHANGE, _K.SUBSCRIBED, _CURRENT),
    # A.3.2 Inbound "unsubscribe" (§3.3.3: deliver, roster push, then unavailable presence
    # wherever the contact was subscribed; no auto-reply)
    (_S.NONE, _K.UNSUBSCRIBE): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT, _K.UNSUBSCRIBE): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_IN, _K.UNSUBSCRIBE): _In(YES, _S.NONE),
    (_S.NONE_PENDING_OUT_IN, _K.UNSUBSCRIBE): _In(YES, _S.NONE_PENDING_OUT),
    (_S.TO, _K.UNSUBSCRIBE): _In(NO, NO_STATE_CHANGE),
    (_S.TO_PENDING_IN, _K.UNSUBSCRIBE): _In(YES, _S.TO),
    (_S.FROM, _K.UNSUBSCRIBE): _In(YES, _S.NONE, presence=_UNAVAILABLE),
    (_S.FROM_PENDING_OUT, _K.UNSUBSCRIBE): _In(YES, _S.NONE_PENDING_OUT, presence=_UNAVAILABLE),
    (_S.BOTH, _K.UNSUBSCRIBE): _In(YES, _S.TO, presence=_UNAVAILABLE),
    # A.3.3 Inbound "subscribed" (§3.1.6)
    (_S.NONE, _K.SUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT, _K.SUBSCRIBED): _In(YES, _S.TO),
    (_S.NONE_PENDING_IN, _K.SUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT_IN, _K.SUBSCRIBED): _In(YES, _S.TO_PENDING_IN),
    (_S.TO, _K.SUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.TO_PENDING_IN, _K.SUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.FROM, _K.SUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.FROM_PENDING_OUT, _K.SUBSCRIBED): _In(YES, _S.BOTH),
    (_S.BOTH, _K.SUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    # A.3.4 Inbound "unsubscribed" (§3.2.3)
    (_S.NONE, _K.UNSUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT, _K.UNSUBSCRIBED): _In(YES, _S.NONE),
    (_S.NONE_PENDING_IN, _K.UNSUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.NONE_PENDING_OUT_IN, _K.UNSUBSCRIBED): _In(YES, _S.NONE_PENDING_IN),
    (_S.TO, _K.UNSUBSCRIBED): _In(YES, _S.NONE),
    (_S.TO_PENDING_IN, _K.UNSUBSCRIBED): _In(YES, _S.NONE_PENDING_IN),
    (_S.FROM, _K.UNSUBSCRIBED): _In(NO, NO_STATE_CHANGE),
    (_S.FROM_PENDING_OUT, _K.UNSUBSCRIBED): _In(YES, _S.FROM),
    (_S.BOTH, _K.UNSUBSCRIBED): _In(YES, _S.FROM),
}

# RFC 6121 §3.1.3 step 1: no automatic approval "unless the contact has (a) pre-approved
# subscription requests from the user as described under Section 3.4". An inbound "subscribe"
# in a pre-approvable state with approved='true' is approved on the user's behalf: it is
# neither delivered nor kept, the contact becomes subscribed (the A.3.1 row followed by the
# A.2.3 approval row) and the pre-approval is used up.
_INBOUND_SUBSCRIBE_PRE_APPROVED: Final[dict[DefinedState, _In]] = {
    _S.NONE: _In(NO, _S.FROM, _K.SUBSCRIBED, _CURRENT),
    _S.NONE_PENDING_OUT: _In(NO, _S.FROM_PENDING_OUT, _K.SUBSCRIBED, _CURRENT),
    _S.TO: _In(NO, _S.BOTH, _K.SUBSCRIBED, _CURRENT),
}

# What an outbound stanza does to the 'approved' flag in a pre-approvable state.
_APPROVED_AFTER_OUTBOUND: Final[dict[SubscriptionKind, bool]] = {
    # §3.4.2: "MUST note the subscription pre-approval by setting the 'approved' flag to a
    # value of "true", then push the modified roster item to all of the user's interested
    # resources. However, the user's server MUST NOT route the presence stanza of type
    # "subscribed" to the contact." (A.2.3 says ROUTE? no for these rows.)
    _K.SUBSCRIBED: True,
    # §3.2.2: if the contact pre-approved the user, the server "MUST remove the pre-approval
    # and MUST NOT route or deliver the presence stanza of type "unsubscribed" to the user".
    _K.UNSUBSCRIBED: False,
}

_Row = TypeVar("_Row", _Out, _In)


def process_outbound(state: SubState, kind: SubscriptionKind) -> OutboundResult:
    """Process a subscription stanza the user sent to the contact (RFC 6121 §A.2).

    Covers §3.1.2 (subscribe), §3.1.5 (subscribed), §3.2.2 (unsubscribed), §3.3.2
    (unsubscribe) and the pre-approval rules of §3.4.2: a "subscribed" nobody asked for is
    noted as ``approved`` and not routed; in "From", "From + Pending Out" and "Both" it is
    silently ignored (route and push both false).

    Args:
        state: The user's roster entry for the contact.
        kind: The stanza's type.

    Returns:
        The new entry and the actions for the caller.

    Raises:
        LocalProtocolError: ``kind`` is not a ``SubscriptionKind``.
    """
    row = _lookup(_OUTBOUND, state.defined_state, kind)
    approved = state.approved
    if state.defined_state in _PRE_APPROVABLE:
        approved = _APPROVED_AFTER_OUTBOUND.get(kind, approved)
    new = _next(state, row.new, approved=approved)
    return OutboundResult(
        state=new,
        route=row.route,
        push=_roster_item_changed(state, new),
        presence_to_contact=row.presence,
    )


def process_inbound(state: SubState, kind: SubscriptionKind) -> InboundResult:
    """Process a subscription stanza the contact sent to the user (RFC 6121 §A.3).

    Covers §3.1.3 (subscribe), §3.1.6 (subscribed), §3.2.3 (unsubscribed), §3.3.3
    (unsubscribe) and pre-approved subscribe requests (§3.1.3 step 1, §3.4).

    SECURITY: a "subscribed" or "unsubscribed" that answers no request of the user's is
    ignored (A.3.3, A.3.4 DELIVER? no), so a contact cannot make itself a "to" subscription
    or inject a roster push; and "subscribe" is never approved on the user's behalf except
    where the user is already subscribed-from or pre-approved (§3.1.3).

    Args:
        state: The user's roster entry for the contact.
        kind: The stanza's type.

    Returns:
        The new entry and the actions for the caller.

    Raises:
        LocalProtocolError: ``kind`` is not a ``SubscriptionKind``.
    """
    row, approved = _lookup(_INBOUND, state.defined_state, kind), state.approved
    if approved and kind is SubscriptionKind.SUBSCRIBE:
        # The pre-approval is used up: the contact is now subscribed.
        row, approved = _INBOUND_SUBSCRIBE_PRE_APPROVED[state.defined_state], False
    new = _next(state, row.new, approved=approved)
    return InboundResult(
        state=new,
        deliver=row.deliver,
        auto_reply=row.auto_reply,
        push=_roster_item_changed(state, new),
        presence_to_contact=row.presence,
    )


def _lookup(
    table: Mapping[tuple[DefinedState, SubscriptionKind], _Row],
    state: DefinedState,
    kind: SubscriptionKind,
) -> _Row:
    """Return the table row for ``(state, kind)``; a missing key is a caller error."""
    try:
        return table[(state, kind)]
    except KeyError:
        raise LocalProtocolError(f"no subscription rule for {kind!r} in {state!r}") from None


def _next(state: SubState, new: DefinedState | None, *, approved: bool) -> SubState:
    """Build the entry after a row: ``new`` None is the RFC's "no state change"."""
    return SubState.of(new if new is not None else state.defined_state, approved=approved)


def _roster_item_changed(old: SubState, new: SubState) -> bool:
    """Whether the roster item as pushed (subscription, ask, approved) differs.

    RFC 6121 §A.1 shows "Pending In" in no roster attribute, so a change in it alone gives the
    user's clients nothing to learn and no roster push (e.g. §3.1.3 sends none).
    """
    return (old.subscription, old.pending_out, old.approved) != (
        new.subscription,
        new.pending_out,
        new.approved,
    )
