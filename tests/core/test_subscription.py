"""Presence subscription state machine, RFC 6121 §3 and Appendix A.

The expected rows below are copied from the RFC's tables by hand, independently of the
implementation's tables, and name states as the RFC does ("None + Pending Out+In").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.core.errors import LocalProtocolError
from stockade.core.im import (
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

NONE, TO, FROM, BOTH = Subscription.NONE, Subscription.TO, Subscription.FROM, Subscription.BOTH
SUBSCRIBE = SubscriptionKind.SUBSCRIBE
SUBSCRIBED = SubscriptionKind.SUBSCRIBED
UNSUBSCRIBE = SubscriptionKind.UNSUBSCRIBE
UNSUBSCRIBED = SubscriptionKind.UNSUBSCRIBED
CURRENT, UNAVAILABLE = PresenceNotice.CURRENT, PresenceNotice.UNAVAILABLE

# RFC 6121 §A.1, written out field by field.
STATES: dict[str, SubState] = {
    "None": SubState(NONE),
    "None + Pending Out": SubState(NONE, pending_out=True),
    "None + Pending In": SubState(NONE, pending_in=True),
    "None + Pending Out+In": SubState(NONE, pending_out=True, pending_in=True),
    "To": SubState(TO),
    "To + Pending In": SubState(TO, pending_in=True),
    "From": SubState(FROM),
    "From + Pending Out": SubState(FROM, pending_out=True),
    "Both": SubState(BOTH),
}
# The three states in which RFC 6121 §3.4.2 notes a pre-approval, with it noted.
APPROVED: dict[str, SubState] = {
    "None, approved": SubState(NONE, approved=True),
    "None + Pending Out, approved": SubState(NONE, pending_out=True, approved=True),
    "To, approved": SubState(TO, approved=True),
}
ALL_STATES = {**STATES, **APPROVED}
SAME = "no state change"
ROUTE = DELIVER = PUSH = True
NO = False

# RFC 6121 §A.2: (table, existing state, ROUTE?, NEW STATE) plus what §3 adds: whether the
# roster item changes (push) and which presence goes to the contact.
A2 = [
    # A.2.1 Outbound Subscribe
    ("A.2.1", "None", ROUTE, "None + Pending Out", PUSH, None),
    ("A.2.1", "None + Pending Out", ROUTE, SAME, NO, None),
    ("A.2.1", "None + Pending In", ROUTE, "None + Pending Out+In", PUSH, None),
    ("A.2.1", "None + Pending Out+In", ROUTE, SAME, NO, None),
    ("A.2.1", "To", ROUTE, SAME, NO, None),
    ("A.2.1", "To + Pending In", ROUTE, SAME, NO, None),
    ("A.2.1", "From", ROUTE, "From + Pending Out", PUSH, None),
    ("A.2.1", "From + Pending Out", ROUTE, SAME, NO, None),
    ("A.2.1", "Both", ROUTE, SAME, NO, None),
    # A.2.2 Outbound Unsubscribe
    ("A.2.2", "None", ROUTE, SAME, NO, None),
    ("A.2.2", "None + Pending Out", ROUTE, "None", PUSH, None),
    ("A.2.2", "None + Pending In", ROUTE, SAME, NO, None),
    ("A.2.2", "None + Pending Out+In", ROUTE, "None + Pending In", PUSH, None),
    ("A.2.2", "To", ROUTE, "None", PUSH, None),
    ("A.2.2", "To + Pending In", ROUTE, "None + Pending In", PUSH, None),
    ("A.2.2", "From", ROUTE, SAME, NO, None),
    ("A.2.2", "From + Pending Out", ROUTE, "From", PUSH, None),
    ("A.2.2", "Both", ROUTE, "From", PUSH, None),
    # A.2.3 Outbound Subscribed: "no state change" rows None, None + Pending Out and To are
    # where §3.4.2 notes the pre-approval (approved='true', pushed, not routed).
    ("A.2.3", "None", NO, "None, approved", PUSH, None),
    ("A.2.3", "None + Pending Out", NO, "None + Pending Out, approved", PUSH, None),
    ("A.2.3", "None + Pending In", ROUTE, "From", PUSH, CURRENT),
    ("A.2.3", "None + Pending Out+In", ROUTE, "From + Pending Out", PUSH, CURRENT),
    ("A.2.3", "To", NO, "To, approved", PUSH, None),
    ("A.2.3", "To + Pending In", ROUTE, "Both", PUSH, CURRENT),
    ("A.2.3", "From", NO, SAME, NO, None),
    ("A.2.3", "From + Pending Out", NO, SAME, NO, None),
    ("A.2.3", "Both", NO, SAME, NO, None),
    # A.2.4 Outbound Unsubscribed (the roster item does not show Pending In: no push for it)
    ("A.2.4", "None", NO, SAME, NO, None),
    ("A.2.4", "None + Pending Out", NO, SAME, NO, None),
    ("A.2.4", "None + Pending In", ROUTE, "None", NO, None),
    ("A.2.4", "None + Pending Out+In", ROUTE, "None + Pending Out", NO, None),
    ("A.2.4", "To", NO, SAME, NO, None),
    ("A.2.4", "To + Pending In", ROUTE, "To", NO, None),
    ("A.2.4", "From", ROUTE, "None", PUSH, UNAVAILABLE),
    ("A.2.4", "From + Pending Out", ROUTE, "None + Pending Out", PUSH, UNAVAILABLE),
    ("A.2.4", "Both", ROUTE, "To", PUSH, UNAVAILABLE),
]
A2_KIND = {"A.2.1": SUBSCRIBE, "A.2.2": UNSUBSCRIBE, "A.2.3": SUBSCRIBED, "A.2.4": UNSUBSCRIBED}

# RFC 6121 §A.3: (table, existing state, DELIVER?, NEW STATE, auto-reply ("*")) plus push and
# the presence sent to the contact.
A3 = [
    # A.3.1 Inbound Subscribe ("no *": the server auto-replies "subscribed")
    ("A.3.1", "None", DELIVER, "None + Pending In", None, NO, None),
    ("A.3.1", "None + Pending Out", DELIVER, "None + Pending Out+In", None, NO, None),
    ("A.3.1", "None + Pending In", NO, SAME, None, NO, None),
    ("A.3.1", "None + Pending Out+In", NO, SAME, None, NO, None),
    ("A.3.1", "To", DELIVER, "To + Pending In", None, NO, None),
    ("A.3.1", "To + Pending In", NO, SAME, None, NO, None),
    ("A.3.1", "From", NO, SAME, SUBSCRIBED, NO, CURRENT),
    ("A.3.1", "From + Pending Out", NO, SAME, SUBSCRIBED, NO, CURRENT),
    ("A.3.1", "Both", NO, SAME, SUBSCRIBED, NO, CURRENT),
    # A.3.2 Inbound Unsubscribe
    ("A.3.2", "None", NO, SAME, None, NO, None),
    ("A.3.2", "None + Pending Out", NO, SAME, None, NO, None),
    ("A.3.2", "None + Pending In", DELIVER, "None", None, NO, None),
    ("A.3.2", "None + Pending Out+In", DELIVER, "None + Pending Out", None, NO, None),
    ("A.3.2", "To", NO, SAME, None, NO, None),
    ("A.3.2", "To + Pending In", DELIVER, "To", None, NO, None),
    ("A.3.2", "From", DELIVER, "None", None, PUSH, UNAVAILABLE),
    ("A.3.2", "From + Pending Out", DELIVER, "None + Pending Out", None, PUSH, UNAVAILABLE),
    ("A.3.2", "Both", DELIVER, "To", None, PUSH, UNAVAILABLE),
    # A.3.3 Inbound Subscribed
    ("A.3.3", "None", NO, SAME, None, NO, None),
    ("A.3.3", "None + Pending Out", DELIVER, "To", None, PUSH, None),
    ("A.3.3", "None + Pending In", NO, SAME, None, NO, None),
    ("A.3.3", "None + Pending Out+In", DELIVER, "To + Pending In", None, PUSH, None),
    ("A.3.3", "To", NO, SAME, None, NO, None),
    ("A.3.3", "To + Pending In", NO, SAME, None, NO, None),
    ("A.3.3", "From", NO, SAME, None, NO, None),
    ("A.3.3", "From + Pending Out", DELIVER, "Both", None, PUSH, None),
    ("A.3.3", "Both", NO, SAME, None, NO, None),
    # A.3.4 Inbound Unsubscribed
    ("A.3.4", "None", NO, SAME, None, NO, None),
    ("A.3.4", "None + Pending Out", DELIVER, "None", None, PUSH, None),
    ("A.3.4", "None + Pending In", NO, SAME, None, NO, None),
    ("A.3.4", "None + Pending Out+In", DELIVER, "None + Pending In", None, PUSH, None),
    ("A.3.4", "To", DELIVER, "None", None, PUSH, None),
    ("A.3.4", "To + Pending In", DELIVER, "None + Pending In", None, PUSH, None),
    ("A.3.4", "From", NO, SAME, None, NO, None),
    ("A.3.4", "From + Pending Out", DELIVER, "From", None, PUSH, None),
    ("A.3.4", "Both", DELIVER, "From", None, PUSH, None),
]
A3_KIND = {"A.3.1": SUBSCRIBE, "A.3.2": UNSUBSCRIBE, "A.3.3": SUBSCRIBED, "A.3.4": UNSUBSCRIBED}

# The pre-approved states (§3.4) for every stanza, same columns as above.
PRE_APPROVED_OUTBOUND = [
    # Outbound subscribe/unsubscribe leave the pre-approval alone (A.2.1, A.2.2 rows).
    ("None, approved", SUBSCRIBE, ROUTE, "None + Pending Out, approved", PUSH, None),
    ("None + Pending Out, approved", SUBSCRIBE, ROUTE, SAME, NO, None),
    ("To, approved", SUBSCRIBE, ROUTE, SAME, NO, None),
    ("None, approved", UNSUBSCRIBE, ROUTE, SAME, NO, None),
    ("None + Pending Out, approved", UNSUBSCRIBE, ROUTE, "None, approved", PUSH, None),
    ("To, approved", UNSUBSCRIBE, ROUTE, "None, approved", PUSH, None),
    # Repeating the pre-approval changes nothing and is still not routed (§3.4.2).
    ("None, approved", SUBSCRIBED, NO, SAME, NO, None),
    ("None + Pending Out, approved", SUBSCRIBED, NO, SAME, NO, None),
    ("To, approved", SUBSCRIBED, NO, SAME, NO, None),
    # "unsubscribed" removes the pre-approval and is not routed (§3.2.2).
    ("None, approved", UNSUBSCRIBED, NO, "None", PUSH, None),
    ("None + Pending Out, approved", UNSUBSCRIBED, NO, "None + Pending Out", PUSH, None),
    ("To, approved", UNSUBSCRIBED, NO, "To", PUSH, None),
]
PRE_APPROVED_INBOUND = [
    # §3.1.3 step 1 (a), §3.4: approved on the user's behalf, not delivered, approval used up.
    ("None, approved", SUBSCRIBE, NO, "From", SUBSCRIBED, PUSH, CURRENT),
    (
        "None + Pending Out, approved",
        SUBSCRIBE,
        NO,
        "From + Pending Out",
        SUBSCRIBED,
        PUSH,
        CURRENT,
    ),
    ("To, approved", SUBSCRIBE, NO, "Both", SUBSCRIBED, PUSH, CURRENT),
    # The other stanzas follow the A.3 rows and keep the pre-approval.
    ("None, approved", UNSUBSCRIBE, NO, SAME, None, NO, None),
    ("None + Pending Out, approved", UNSUBSCRIBE, NO, SAME, None, NO, None),
    ("To, approved", UNSUBSCRIBE, NO, SAME, None, NO, None),
    ("None, approved", SUBSCRIBED, NO, SAME, None, NO, None),
    ("None + Pending Out, approved", SUBSCRIBED, DELIVER, "To, approved", None, PUSH, None),
    ("To, approved", SUBSCRIBED, NO, SAME, None, NO, None),
    ("None, approved", UNSUBSCRIBED, NO, SAME, None, NO, None),
    ("None + Pending Out, approved", UNSUBSCRIBED, DELIVER, "None, approved", None, PUSH, None),
    ("To, approved", UNSUBSCRIBED, DELIVER, "None, approved", None, PUSH, None),
]


def _expected(existing: str, new: str) -> SubState:
    return ALL_STATES[existing if new == SAME else new]


def _check_outbound(
    existing: str,
    kind: SubscriptionKind,
    route: bool,
    new: str,
    push: bool,
    presence: PresenceNotice | None,
) -> None:
    assert process_outbound(ALL_STATES[existing], kind) == OutboundResult(
        state=_expected(existing, new), route=route, push=push, presence_to_contact=presence
    )


def _check_inbound(
    existing: str,
    kind: SubscriptionKind,
    deliver: bool,
    new: str,
    auto_reply: SubscriptionKind | None,
    push: bool,
    presence: PresenceNotice | None,
) -> None:
    assert process_inbound(ALL_STATES[existing], kind) == InboundResult(
        state=_expected(existing, new),
        deliver=deliver,
        auto_reply=auto_reply,
        push=push,
        presence_to_contact=presence,
    )


# -- one test per Appendix A row -------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "existing", "route", "new", "push", "presence"),
    A2,
    ids=[f"{row[0]}-{row[1]}" for row in A2],
)
def test_outbound_table_row(
    table: str, existing: str, route: bool, new: str, push: bool, presence: PresenceNotice | None
) -> None:
    _check_outbound(existing, A2_KIND[table], route, new, push, presence)


@pytest.mark.parametrize(
    ("table", "existing", "deliver", "new", "auto_reply", "push", "presence"),
    A3,
    ids=[f"{row[0]}-{row[1]}" for row in A3],
)
def test_inbound_table_row(
    table: str,
    existing: str,
    deliver: bool,
    new: str,
    auto_reply: SubscriptionKind | None,
    push: bool,
    presence: PresenceNotice | None,
) -> None:
    _check_inbound(existing, A3_KIND[table], deliver, new, auto_reply, push, presence)


@pytest.mark.parametrize(
    ("existing", "kind", "route", "new", "push", "presence"),
    PRE_APPROVED_OUTBOUND,
    ids=[f"{row[0]}-{row[1].value}" for row in PRE_APPROVED_OUTBOUND],
)
def test_outbound_pre_approved(
    existing: str,
    kind: SubscriptionKind,
    route: bool,
    new: str,
    push: bool,
    presence: PresenceNotice | None,
) -> None:
    _check_outbound(existing, kind, route, new, push, presence)


@pytest.mark.parametrize(
    ("existing", "kind", "deliver", "new", "auto_reply", "push", "presence"),
    PRE_APPROVED_INBOUND,
    ids=[f"{row[0]}-{row[1].value}" for row in PRE_APPROVED_INBOUND],
)
def test_inbound_pre_approved(
    existing: str,
    kind: SubscriptionKind,
    deliver: bool,
    new: str,
    auto_reply: SubscriptionKind | None,
    push: bool,
    presence: PresenceNotice | None,
) -> None:
    _check_inbound(existing, kind, deliver, new, auto_reply, push, presence)


def test_expected_rows_cover_every_state_and_kind() -> None:
    outbound = {(row[1], A2_KIND[row[0]]) for row in A2}
    outbound |= {(row[0], row[1]) for row in PRE_APPROVED_OUTBOUND}
    inbound = {(row[1], A3_KIND[row[0]]) for row in A3}
    inbound |= {(row[0], row[1]) for row in PRE_APPROVED_INBOUND}
    every = {(name, kind) for name in ALL_STATES for kind in SubscriptionKind}
    assert outbound == every
    assert inbound == every
    assert len(A2) == len(A3) == 36


# -- the state space -------------------------------------------------------------------------


def test_defined_states_match_appendix_a1() -> None:
    assert {state.defined_state.value for state in STATES.values()} == set(STATES)
    for name, state in STATES.items():
        assert state.defined_state.value == name
        assert SubState.of(DefinedState(name)) == state
    assert SubState() == STATES["None"]  # "None" includes "not in the roster"


@pytest.mark.parametrize(
    ("subscription", "pending_out", "pending_in"),
    [
        (TO, True, False),  # "To + Pending Out": the user is subscribed already
        (TO, True, True),
        (FROM, False, True),  # "From + Pending In": the contact is subscribed already
        (FROM, True, True),
        (BOTH, True, False),
        (BOTH, False, True),
        (BOTH, True, True),
    ],
)
def test_states_outside_appendix_a1_are_refused(
    subscription: Subscription, pending_out: bool, pending_in: bool
) -> None:
    with pytest.raises(LocalProtocolError):
        SubState(subscription, pending_out, pending_in)


@pytest.mark.parametrize(
    "name",
    [
        "None + Pending In",
        "None + Pending Out+In",
        "To + Pending In",
        "From",
        "From + Pending Out",
        "Both",
    ],
)
def test_pre_approval_outside_section_3_4_2_states_is_refused(name: str) -> None:
    state = STATES[name]
    with pytest.raises(LocalProtocolError):
        SubState(state.subscription, state.pending_out, state.pending_in, approved=True)


def test_non_subscription_kind_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        process_outbound(SubState(), "subscribe")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        process_inbound(SubState(approved=True), "subscribe")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(ALL_STATES))
@pytest.mark.parametrize("kind", list(SubscriptionKind))
def test_every_state_and_kind_gives_a_result(name: str, kind: SubscriptionKind) -> None:
    state = ALL_STATES[name]
    out = process_outbound(state, kind)
    inb = process_inbound(state, kind)
    for result in (out, inb):
        assert result.state in ALL_STATES.values()
        # A roster push exactly when the pushed attributes change (Pending In is not one).
        assert result.push == (_roster_item(state) != _roster_item(result.state))
    # A stanza that is neither delivered nor answered is silently ignored: nothing changes.
    if not inb.deliver and inb.auto_reply is None:
        assert (inb.state, inb.push, inb.presence_to_contact) == (state, False, None)


def _roster_item(state: SubState) -> tuple[str, str | None, bool]:
    return state.subscription.value, "subscribe" if state.pending_out else None, state.approved


# -- two servers wired together --------------------------------------------------------------


@dataclass
class Pair:
    """Two accounts on lossless servers; each holds its roster entry for the other."""

    states: dict[str, SubState] = field(
        default_factory=lambda: {"juliet": SubState(), "romeo": SubState()}
    )
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def other(self, who: str) -> str:
        return "romeo" if who == "juliet" else "juliet"

    def send(self, who: str, kind: SubscriptionKind) -> None:
        """``who``'s client sends ``kind`` to the other; both servers do what they are told."""
        out = process_outbound(self.states[who], kind)
        self.states[who] = out.state
        if out.presence_to_contact is UNAVAILABLE:  # §3.2.2: before the "unsubscribed"
            self.log.append(("presence", who, out.presence_to_contact.value))
        if out.push:
            self.log.append(("push", who, _describe(out.state)))
        if out.route:
            self.log.append(("route", who, kind.value))
            self.receive(self.other(who), kind)
        if out.presence_to_contact is CURRENT:
            self.log.append(("presence", who, out.presence_to_contact.value))

    def receive(self, who: str, kind: SubscriptionKind) -> None:
        """``who``'s server receives ``kind`` from the other."""
        inb = process_inbound(self.states[who], kind)
        self.states[who] = inb.state
        if inb.deliver:
            self.log.append(("deliver", who, kind.value))
        if inb.push:
            self.log.append(("push", who, _describe(inb.state)))
        if inb.auto_reply is not None:
            self.log.append(("auto-reply", who, inb.auto_reply.value))
            self.receive(self.other(who), inb.auto_reply)
        if inb.presence_to_contact is not None:
            self.log.append(("presence", who, inb.presence_to_contact.value))

    def view(self) -> dict[str, str]:
        return {who: _describe(state) for who, state in self.states.items()}


def _describe(state: SubState) -> str:
    name = state.defined_state.value
    return f"{name}, approved" if state.approved else name


def _mirror(state: SubState) -> tuple[Subscription, bool, bool]:
    """The entry the other side must hold: to and from swapped, pending out and in swapped."""
    swapped = {NONE: NONE, TO: FROM, FROM: TO, BOTH: BOTH}[state.subscription]
    return swapped, state.pending_in, state.pending_out


def test_juliet_subscribes_romeo_approves_then_romeo_subscribes_back() -> None:
    """RFC 6121 §3.1: request, approval; then the reverse direction gives "both"."""
    pair = Pair()
    pair.send("juliet", SUBSCRIBE)
    assert pair.view() == {"juliet": "None + Pending Out", "romeo": "None + Pending In"}
    assert pair.log == [
        ("push", "juliet", "None + Pending Out"),  # §3.1.2: none + ask='subscribe'
        ("route", "juliet", "subscribe"),
        ("deliver", "romeo", "subscribe"),  # §3.1.3: no roster item, no push for Romeo
    ]
    pair.log.clear()
    pair.send("romeo", SUBSCRIBED)
    assert pair.view() == {"juliet": "To", "romeo": "From"}
    assert pair.log == [
        ("push", "romeo", "From"),  # §3.1.5
        ("route", "romeo", "subscribed"),
        ("deliver", "juliet", "subscribed"),  # §3.1.6: deliver first, then push
        ("push", "juliet", "To"),
        ("presence", "romeo", "available"),  # §3.1.5: current presence to Juliet
    ]
    pair.send("romeo", SUBSCRIBE)
    pair.send("juliet", SUBSCRIBED)
    assert pair.view() == {"juliet": "Both", "romeo": "Both"}


def test_crossing_requests_lead_to_both() -> None:
    pair = Pair()
    pair.send("juliet", SUBSCRIBE)
    pair.send("romeo", SUBSCRIBE)
    assert pair.view() == {"juliet": "None + Pending Out+In", "romeo": "None + Pending Out+In"}
    pair.send("romeo", SUBSCRIBED)
    assert pair.view() == {"juliet": "To + Pending In", "romeo": "From + Pending Out"}
    pair.send("juliet", SUBSCRIBED)
    assert pair.view() == {"juliet": "Both", "romeo": "Both"}


def test_unsubscribe_from_both_leaves_from() -> None:
    """RFC 6121 §3.3: Juliet stops her subscription; Romeo's server sends her unavailable."""
    pair = Pair({"juliet": SubState(BOTH), "romeo": SubState(BOTH)})
    pair.send("juliet", UNSUBSCRIBE)
    assert pair.view() == {"juliet": "From", "romeo": "To"}
    assert pair.log == [
        ("push", "juliet", "From"),
        ("route", "juliet", "unsubscribe"),
        ("deliver", "romeo", "unsubscribe"),
        ("push", "romeo", "To"),
        ("presence", "romeo", "unavailable"),  # §3.3.3 step 3
    ]


def test_cancelling_with_unsubscribed_sends_unavailable_first() -> None:
    """RFC 6121 §3.2: Romeo revokes Juliet's subscription; unavailable precedes the stanza."""
    pair = Pair({"juliet": SubState(TO), "romeo": SubState(FROM)})
    pair.send("romeo", UNSUBSCRIBED)
    assert pair.view() == {"juliet": "None", "romeo": "None"}
    assert pair.log == [
        ("presence", "romeo", "unavailable"),  # §3.2.2: while Juliet is still subscribed
        ("push", "romeo", "None"),
        ("route", "romeo", "unsubscribed"),
        ("deliver", "juliet", "unsubscribed"),
        ("push", "juliet", "None"),
    ]


def test_denying_a_request_with_unsubscribed() -> None:
    pair = Pair()
    pair.send("juliet", SUBSCRIBE)
    pair.log.clear()
    pair.send("romeo", UNSUBSCRIBED)
    assert pair.view() == {"juliet": "None", "romeo": "None"}
    assert pair.log == [
        ("route", "romeo", "unsubscribed"),  # Romeo's roster item did not change: no push
        ("deliver", "juliet", "unsubscribed"),
        ("push", "juliet", "None"),  # the ask='subscribe' is gone
    ]


def test_pre_approval_then_subscribe_is_answered_by_the_server() -> None:
    """RFC 6121 §3.4: Romeo pre-approves Juliet; her later request never reaches him."""
    pair = Pair()
    pair.send("romeo", SUBSCRIBED)
    assert pair.view() == {"juliet": "None", "romeo": "None, approved"}
    assert pair.log == [("push", "romeo", "None, approved")]  # §3.4.2: MUST NOT route
    pair.log.clear()
    pair.send("juliet", SUBSCRIBE)
    assert pair.view() == {"juliet": "To", "romeo": "From"}
    assert pair.log == [
        ("push", "juliet", "None + Pending Out"),
        ("route", "juliet", "subscribe"),
        ("push", "romeo", "From"),  # not delivered to Romeo, only pushed
        ("auto-reply", "romeo", "subscribed"),
        ("deliver", "juliet", "subscribed"),
        ("push", "juliet", "To"),
        ("presence", "romeo", "available"),
    ]


def test_pre_approval_withdrawn_with_unsubscribed_is_not_routed() -> None:
    pair = Pair()
    pair.send("romeo", SUBSCRIBED)
    pair.send("romeo", UNSUBSCRIBED)
    assert pair.view() == {"juliet": "None", "romeo": "None"}
    assert [entry for entry in pair.log if entry[0] == "route"] == []
    pair.send("juliet", SUBSCRIBE)
    assert pair.view() == {"juliet": "None + Pending Out", "romeo": "None + Pending In"}


def test_subscribe_when_already_subscribed_is_answered_by_the_server() -> None:
    """RFC 6121 §3.1.3 step 2: auto-reply "subscribed"; Romeo's client is not asked again."""
    pair = Pair({"juliet": SubState(TO), "romeo": SubState(FROM)})
    pair.send("juliet", SUBSCRIBE)
    assert pair.view() == {"juliet": "To", "romeo": "From"}
    assert ("deliver", "romeo", "subscribe") not in pair.log
    assert ("auto-reply", "romeo", "subscribed") in pair.log


def test_unsolicited_subscribed_is_ignored() -> None:
    """SECURITY: a contact cannot grant itself a subscription the user never asked for."""
    for name in ("None", "None + Pending In", "To", "From", "Both"):
        result = process_inbound(STATES[name], SUBSCRIBED)
        assert result == InboundResult(STATES[name], False, None, False, None)


# -- properties ------------------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(st.sampled_from(["juliet", "romeo"]), st.sampled_from(list(SubscriptionKind))),
    max_size=30,
)


@settings(max_examples=300)
@given(ACTIONS)
def test_both_rosters_stay_mirrored(actions: list[tuple[str, SubscriptionKind]]) -> None:
    """With lossless delivery each side's entry is the mirror image of the other's."""
    pair = Pair()
    for who, kind in actions:
        pair.send(who, kind)
        juliet, romeo = pair.states["juliet"], pair.states["romeo"]
        assert _mirror(juliet) == (romeo.subscription, romeo.pending_out, romeo.pending_in)
