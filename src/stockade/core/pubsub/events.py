"""What a PEP service sends: IQ result payloads (XEP-0060 §6.5, §7.1, §8.2) and event
notifications (§7.1.2.1, §7.2.2.1, §8.4.2, §8.5.2; XEP-0163 §4.3), plus the stored form of
item payloads."""

from __future__ import annotations

from collections.abc import Sequence

from stockade.core.pubsub.errors import NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element, ParserLimits, XMLStreamParser, serialize

NS_DELAY = "urn:xmpp:delay"
_WRAPPER = (b"<stream:stream xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'><w>")

#: (item id, payload or None for a notification without payload)
EventItem = tuple[str, Element | None]


def payload_to_text(payload: Element) -> str:
    """The stored form of an item payload (its own namespace declared)."""
    return serialize(payload)


def payload_from_text(text: str) -> Element:
    """Parse a payload stored by ``payload_to_text``.

    Raises:
        ValueError: the text is not one element.
    """
    data = text.encode()
    # Written by us, bounded on the way in; the parser's limits still apply.
    parser = XMLStreamParser(ParserLimits(max_stanza_bytes=len(data) + 1024, max_depth=64,
                                          max_attributes=256))
    parser.feed(_WRAPPER)
    events = parser.feed(data + b"</w>")
    wrapper = next((e for e in events if isinstance(e, Element)), None)
    children = list(wrapper.elements()) if wrapper is not None else []
    if len(children) != 1:
        raise ValueError("stored payload is not one element")
    return children[0]


def _item(ns: str, item_id: str, payload: Element | None) -> Element:
    item = Element(ns, "item", {"id": item_id})
    if payload is not None:
        item.append(payload)
    return item


def publish_result(node: str, item_id: str) -> Element:
    """§7.1.2: the IQ result payload naming the published item."""
    pubsub = Element(NS_PUBSUB, "pubsub")
    pubsub.sub(NS_PUBSUB, "publish", {"node": node}).sub(NS_PUBSUB, "item", {"id": item_id})
    return pubsub


def items_result(node: str, items: Sequence[EventItem]) -> Element:
    """§6.5.3: the items, oldest first."""
    pubsub = Element(NS_PUBSUB, "pubsub")
    el = pubsub.sub(NS_PUBSUB, "items", {"node": node})
    for item_id, payload in items:
        el.append(_item(NS_PUBSUB, item_id, payload))
    return pubsub


def owner_result(child: str, form: Element, node: str | None = None) -> Element:
    """§8.2.2 / §8.3.2: ``<pubsub#owner><configure|default>form</...></pubsub>``."""
    pubsub = Element(NS_PUBSUB_OWNER, "pubsub")
    el = pubsub.sub(NS_PUBSUB_OWNER, child, {"node": node} if node is not None else None)
    el.append(form)
    return pubsub


def items_event(node: str, items: Sequence[EventItem]) -> Element:
    """§7.1.2.1: new items (with payloads, or ids only when payloads are not delivered)."""
    event = Element(NS_PUBSUB_EVENT, "event")
    el = event.sub(NS_PUBSUB_EVENT, "items", {"node": node})
    for item_id, payload in items:
        el.append(_item(NS_PUBSUB_EVENT, item_id, payload))
    return event


def retract_event(node: str, item_ids: Sequence[str]) -> Element:
    """§7.2.2.1: items were deleted."""
    event = Element(NS_PUBSUB_EVENT, "event")
    el = event.sub(NS_PUBSUB_EVENT, "items", {"node": node})
    for item_id in item_ids:
        el.sub(NS_PUBSUB_EVENT, "retract", {"id": item_id})
    return event


def node_event(kind: str, node: str) -> Element:
    """§8.4.2 ``delete`` / §8.5.2 ``purge``: the node went away or was emptied."""
    event = Element(NS_PUBSUB_EVENT, "event")
    event.sub(NS_PUBSUB_EVENT, kind, {"node": node})
    return event


def notification(owner: str, to: str, event: Element, message_id: str, *,
                 type_: str = "headline", delay: str | None = None) -> Element:
    """XEP-0163 §4.3.1: a notification from the owner's bare JID; ``delay`` (an XEP-0082
    timestamp) marks the last published item sent later (§4.3.4)."""
    message = Element(NS_CLIENT, "message",
                      {"from": owner, "to": to, "type": type_, "id": message_id})
    message.append(event)
    if delay is not None:
        message.sub(NS_DELAY, "delay", {"from": owner, "stamp": delay})
    return message
