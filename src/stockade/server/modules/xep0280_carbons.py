"""Message Carbons, XEP-0280 (copies wrapped as XEP-0297 forwarded messages): each of an
account's carbon-enabled resources sees what its other resources send and receive.

Also refuses, from clients, the wrappers only a server may send: carbons and archive
results. Clients trust those because they come from their own server (XEP-0280 §11,
XEP-0313 §8.2); letting a user relay them would hand that trust to anyone.
"""

from __future__ import annotations

from collections.abc import Iterable

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.mam import NS_FORWARD, NS_HINTS
from stockade.core.stanza import NS_CLIENT, Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.module import (
    Bind2Inline,
    Feature,
    Hook,
    IQHandler,
    Module,
    Registration,
    Spec,
    Stage,
    StanzaEvent,
    Target,
)
from stockade.server.session import Session

NS_CARBONS = "urn:xmpp:carbons:2"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CONFERENCE = "jabber:x:conference"  # XEP-0249 direct invitations
#: XEP-0280 §6: payloads "typically used in IM" that make a type 'normal' message eligible:
#: receipts (XEP-0184), chat states (XEP-0085), chat markers (XEP-0333).
IM_PAYLOAD_NAMESPACES = frozenset({"urn:xmpp:receipts", "http://jabber.org/protocol/chatstates",
                                   "urn:xmpp:chat-markers:0"})
#: Direct children of a message that only a server sends: carbon wrappers (XEP-0280 §7-§8,
#: and the v1 namespace older clients still parse) and archive results (XEP-0313 §4.2, and
#: the namespaces of earlier versions).
SERVER_ONLY_WRAPPERS = frozenset({
    (NS_CARBONS, "received"), (NS_CARBONS, "sent"),
    ("urn:xmpp:carbons:1", "received"), ("urn:xmpp:carbons:1", "sent"),
    ("urn:xmpp:mam:2", "result"), ("urn:xmpp:mam:1", "result"), ("urn:xmpp:mam:0", "result"),
    ("urn:xmpp:mam:tmp", "result"),
})
KEY = "xep0280_carbons"  # Session.data: True while carbons are enabled


def is_eligible(message: Element, type_: str, *, inbound: bool) -> bool:
    """XEP-0280 §6 (version 1.0): whether a message is carbon-copied.

    Not if it carries <private/> (§9) or the XEP-0334 <no-copy/> hint, nor groupchat, nor a
    private message from a MUC occupant (inbound, marked with muc#user <x/>: the MUC
    service already copies those to every joined client). Yes for chat, normal with a
    body or an IM payload, and MUC invitations (direct or mediated). Errors are not copied
    (that would need tracking which message they answer, §6 says).
    """
    if message.find(NS_CARBONS, "private") is not None:
        return False
    if message.find(NS_HINTS, "no-copy") is not None or type_ in ("groupchat", "error",
                                                                    "headline"):
        return False
    muc = message.find(NS_MUC_USER, "x")
    if muc is not None and muc.find(NS_MUC_USER, "invite") is not None:
        return True
    if muc is not None and inbound:
        return False
    if type_ == "chat" or message.find(NS_CONFERENCE, "x") is not None:
        return True
    return message.find(message.ns, "body") is not None or any(
        child.ns in IM_PAYLOAD_NAMESPACES for child in message.elements())


def carbon(direction: str, original: Element, account: JID, to: JID) -> Element:
    """The copy for ``to``: ``<message from=account to=to type=same><received|sent>
    <forwarded>original</forwarded></...></message>`` (XEP-0280 §7, §8)."""
    attrs = {"from": str(account), "to": str(to)}
    if "type" in original.attrs:
        attrs["type"] = original.attrs["type"]  # "SHOULD maintain the same 'type'"
    message = Element(NS_CLIENT, "message", attrs)
    message.sub(NS_CARBONS, direction).sub(NS_FORWARD, "forwarded").append(original)
    return message


class Carbons(Module):
    """XEP-0280 for local sessions."""

    name = "xep0280_carbons"
    specs = (Spec("XEP-0280", "Message Carbons", "1.0.1"),
             Spec("XEP-0297", "Stanza Forwarding", "1.0", "complete",
                  "carbons and archive results"))
    depends = ("xep0030_disco",)

    def registrations(self) -> Iterable[Registration]:
        """The feature, enable/disable and the copying hooks."""
        yield Feature(NS_CARBONS)
        yield IQHandler("set", (NS_CARBONS, "enable"), Target.SELF, self.on_enable)
        yield IQHandler("set", (NS_CARBONS, "disable"), Target.SELF, self.on_disable)
        yield Bind2Inline(NS_CARBONS, "enable", self.enable_inline)  # XEP-0386 §3.2
        yield Hook(Stage.SENT, frozenset({"message"}), self.refuse_server_wrappers, order=10)
        # After archiving (order 70), so the copy shows the sender's stanza-id.
        yield Hook(Stage.SENT, frozenset({"message"}), self.copy_sent, order=75)
        yield Hook(Stage.MESSAGE_DELIVERED, frozenset({"message"}), self.copy_received)

    @staticmethod
    def enable_inline(_el: Element, session: Session) -> None:
        """Enabled inside Bind 2's <bind/>: "Message Carbons MUST be enabled at this point"
        (XEP-0386 §3.2; no reply element)."""
        session.data[KEY] = True

    async def on_enable(self, iq: Stanza, session: Session) -> Element:
        """XEP-0280 §4; enabling twice is no error (§10.1)."""
        session.data[KEY] = True
        return result_reply(iq, None)

    async def on_disable(self, iq: Stanza, session: Session) -> Element:
        """XEP-0280 §5."""
        session.data.pop(KEY, None)
        return result_reply(iq, None)

    @staticmethod
    def refuse_server_wrappers(event: StanzaEvent) -> None:
        """SECURITY: a client may not send what its contacts' clients would take for a
        carbon copy or an archive result.

        XEP-0280 §11 and XEP-0313 §8.2 make clients check the wrapper's 'from', but forged
        carbons have fooled clients that skipped that check; refusing them here protects
        those too. Neither XEP names an error for it. The condition is not-acceptable (RFC
        6120 §8.3.3.10: the stanza "does not meet criteria defined by the ... server"): the
        stanza is well-formed, so bad-request would be wrong, and policy-violation (§8.3.3.12)
        is new in RFC 6120.
        COMPAT: slixmpp 1.x knows only the RFC 3920 conditions and reads policy-violation as
        no condition at all.
        """
        for child in event.stanza.element.elements():
            if child.tag in SERVER_ONLY_WRAPPERS:
                raise StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE,
                                  "carbon copies and archive results come from servers only")

    def copy_sent(self, event: StanzaEvent) -> None:
        """XEP-0280 §8: a 'sent' copy to the sender's other carbon-enabled resources."""
        origin, stanza = event.origin, event.stanza
        if origin is None:
            return
        own = origin.jid.bare
        if stanza.to is None or stanza.to.bare == own:
            return  # to oneself: the other resources get 'received' copies instead
        if not is_eligible(stanza.element, stanza.type, inbound=False):
            return
        for session in self._enabled(origin.username, skip=[origin]):
            session.deliver(carbon("sent", stanza.element, own, session.jid))

    def copy_received(self, event: StanzaEvent) -> None:
        """XEP-0280 §7: a 'received' copy to each carbon-enabled resource that "did not
        receive it under the RFC 6121 delivery rules".

        A message kept in offline storage reaches every resource that takes offline
        messages at its initial presence, so only those that never will (available with a
        negative priority, RFC 6121 §8.5.2.1.1) get a copy now: nobody sees it twice.
        """
        stanza, account = event.stanza, event.account
        if account is None or not is_eligible(stanza.element, stanza.type, inbound=True):
            return
        skip = [*event.delivered, *([event.origin] if event.origin is not None else [])]
        own = JID(account, self.host.domain, None)
        for session in self._enabled(account, skip=skip):
            if event.stored and not (session.available and session.priority < 0):
                continue
            session.deliver(carbon("received", stanza.element, own, session.jid))

    def _enabled(self, username: str, skip: list[Session]) -> list[Session]:
        # ``skip`` is short (the resources written to, the sender); Session compares by
        # identity.
        mine = self.host.resources(username)
        if len(mine) == 1 and mine[0] in skip:
            return []  # the common case, one resource: nobody to copy to (every message)
        return [s for s in mine if s.data.get(KEY) and s.conn.is_open and s not in skip]


MODULES = (Carbons,)
