"""Client State Indication, XEP-0352: hold presence back from clients that say they are idle.

While a session is inactive, presence updates for it wait in a buffer that keeps only the
latest one per sender (bounded); the buffer goes out, in order and before the stanza, as soon
as anything else (a message, an IQ, a subscription request, an error) is delivered, and when
the client says ``<active/>``. Done from inside this module through ``Session.screen``, which
this module's screen sees last, after any other module's (e.g. blocking) has passed the stanza.
"""

from __future__ import annotations

from collections.abc import Iterable

from stockade.core.xml import Element
from stockade.server.module import Bind2Inline, Module, Nonza, Registration, Spec, StreamFeature
from stockade.server.session import Detached, Session

NS_CSI = "urn:xmpp:csi:0"
MAX_HELD = 500  # senders whose presence one idle session may hold; beyond it all go out
_HELD_TYPES = frozenset({None, "unavailable"})  # presence broadcasts, not subscriptions


class _State:
    """Per-session CSI state (``Session.data[CSI.name]``)."""

    __slots__ = ("held", "inactive")

    def __init__(self) -> None:
        self.inactive = False
        self.held: dict[str, Element] = {}  # by sender, in the order of their last update


class CSI(Module):
    """XEP-0352 §4-§5 on the server side."""

    name = "xep0352_csi"
    specs = (Spec("XEP-0352", "Client State Indication", "1.0.0",
                  notes="presence updates held back (latest per sender) while inactive"),)

    def registrations(self) -> Iterable[Registration]:
        """The stream feature beside binding and the two nonzas."""
        yield StreamFeature("bind", f"<csi xmlns='{NS_CSI}'/>")
        yield Nonza(NS_CSI, "active", self.on_active)
        yield Nonza(NS_CSI, "inactive", self.on_inactive)
        # XEP-0386 §3.2: a session begins in the state its Bind 2 <bind/> names.
        yield Bind2Inline(NS_CSI, "active", self.on_active)
        yield Bind2Inline(NS_CSI, "inactive", self.on_inactive)

    def on_inactive(self, _el: Element, session: Session) -> None:
        """§5: the client is idle; start holding presence back."""
        self._attach(session).inactive = True

    def on_active(self, _el: Element, session: Session) -> None:
        """§5: the client is in use again; send what was held."""
        state = session.data.get(self.name)
        if isinstance(state, _State):
            state.inactive = False
            _flush(session, state)

    def _attach(self, session: Session) -> _State:
        state = session.data.get(self.name)
        if isinstance(state, _State):
            return state
        state = _State()
        session.data[self.name] = state
        previous = session.screen

        def screened(el: Element) -> bool:
            if previous is not None and previous(el):
                return True  # hidden by another module: nothing to hold
            return _hold(session, state, el)

        session.screen = screened
        return state


def _hold(session: Session, state: _State, el: Element) -> bool:
    """True if ``el`` is held back; otherwise what is held goes out first."""
    if not state.inactive:
        return False
    sender = el.attrs.get("from")
    if el.name == "presence" and el.attrs.get("type") in _HELD_TYPES and sender is not None:
        state.held.pop(sender, None)  # an update replaces the one held before it
        state.held[sender] = el
        if len(state.held) > MAX_HELD:
            _flush(session, state)  # bounded memory: let everything out
        return True
    _flush(session, state)  # §6: important stanzas are delivered at once, after the rest
    return False


def _flush(session: Session, state: _State) -> None:
    held, state.held = state.held, {}
    for el in held.values():
        conn = session.conn  # looked up each time: a resumed session changes connection
        # A backed-up client gets no presence flood (as in rfc6121_presence); a hibernated
        # session (XEP-0198) keeps them for its resumption.
        if conn.is_open or isinstance(conn, Detached):
            conn.deliver(el)  # these already passed the screens when held


MODULES = (CSI,)
