"""Stanza envelopes (RFC 6120 §8): kind, type, addresses and id over an undecoded payload."""

from __future__ import annotations

from dataclasses import dataclass

from stockade.core.errors import (
    NS_STANZAS,
    JIDError,
    RemoteProtocolError,
    StanzaError,
    StanzaErrorCondition,
    StreamErrorCondition,
)
from stockade.core.jid import JID
from stockade.core.xml import Element

NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"

#: RFC 6120 §8.2.3 / RFC 6121 §4.7.1 / §5.2.2: the allowed ``type`` values per kind.
STANZA_TYPES: dict[str, frozenset[str]] = {
    "message": frozenset({"chat", "error", "groupchat", "headline", "normal"}),
    "presence": frozenset({"error", "probe", "subscribe", "subscribed", "unavailable",
                           "unsubscribe", "unsubscribed", ""}),
    "iq": frozenset({"get", "set", "result", "error"}),
}
_DEFAULT_TYPE = {"message": "normal", "presence": "", "iq": ""}

__all__ = ["NS_CLIENT", "NS_SERVER", "STANZA_TYPES", "Stanza", "error_element", "error_reply",
           "parse_stanza", "result_reply"]


@dataclass(frozen=True, slots=True)
class Stanza:
    """A stanza: the router decides on these fields alone; payloads travel untouched."""

    element: Element
    kind: str  # "message" | "presence" | "iq"
    type: str  # "" is available presence
    to: JID | None
    from_: JID | None
    id: str | None

    def with_addresses(self, to: JID | None, from_: JID | None) -> Stanza:
        """A copy addressed ``to``/``from_`` (attributes rewritten, payload shared)."""
        attrs = dict(self.element.attrs)
        for key, jid in (("to", to), ("from", from_)):
            if jid is None:
                attrs.pop(key, None)
            else:
                attrs[key] = str(jid)
        return Stanza(self.element.copy(attrs), self.kind, self.type, to, from_, self.id)



def parse_stanza(el: Element, ns: str = NS_CLIENT) -> Stanza:
    """Build the envelope of a top-level element received on a stream.

    Raises:
        RemoteProtocolError: not a stanza of this stream's namespace.
        StanzaError: ``jid-malformed`` / ``bad-request`` for a bad address or type.
    """
    if el.ns != ns or el.name not in STANZA_TYPES:
        raise RemoteProtocolError(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE,
                                  "not a stanza")
    type_ = el.attrs.get("type", _DEFAULT_TYPE[el.name])
    if type_ not in STANZA_TYPES[el.name] or (el.name == "iq" and not type_):
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "invalid stanza type")
    if el.name == "iq" and "id" not in el.attrs:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST, "iq without id")
    try:
        to = JID.parse(el.attrs["to"]) if "to" in el.attrs else None
        from_ = JID.parse(el.attrs["from"]) if "from" in el.attrs else None
    except JIDError:
        raise StanzaError(StanzaErrorCondition.JID_MALFORMED) from None
    return Stanza(el, el.name, type_, to, from_, el.attrs.get("id"))


def error_element(error: StanzaError) -> Element:
    """The ``<error/>`` child for ``error`` (RFC 6120 §8.3.2)."""
    err = Element("", "error", {"type": error.type.value})
    err.sub(NS_STANZAS, error.condition.value)
    if error.text:
        err.sub(NS_STANZAS, "text", text=error.text)
    if error.app is not None:
        err.children.append(error.app.copy())
    return err


def error_reply(el: Element, error: StanzaError, ns: str = NS_CLIENT) -> Element:
    """An error stanza answering ``el``: addresses swapped, original payload not echoed.

    SECURITY: the peer's own bytes are not reflected back (RFC 6120 §8.3.1 makes it optional).
    """
    attrs = {"type": "error"}
    for src, dst in (("from", "to"), ("to", "from"), ("id", "id")):
        if src in el.attrs:
            attrs[dst] = el.attrs[src]
    reply = Element(ns, el.name, attrs)
    err = error_element(error)
    err.ns = ns
    reply.append(err)
    return reply


def result_reply(iq: Stanza, from_: str | None, child: Element | None = None) -> Element:
    """An IQ result answering ``iq``, addressed back to its sender (RFC 6120 §8.2.3)."""
    attrs = {"type": "result", "id": iq.id or ""}
    if iq.from_ is not None:
        attrs["to"] = str(iq.from_)
    if from_ is not None:
        attrs["from"] = from_
    reply = Element(iq.element.ns, "iq", attrs)
    if child is not None:
        reply.append(child)
    return reply
