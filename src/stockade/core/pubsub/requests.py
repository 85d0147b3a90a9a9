"""Parse the ``<pubsub/>`` payload of an IQ into one request (XEP-0060 §6-§8, PEP subset).

Anything malformed raises the XEP-0060 error for it; use cases this service does not
offer (explicit subscriptions, affiliation management) raise ``unsupported`` with the
feature name XEP-0060 §10 gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stockade.core.errors import StanzaErrorCondition
from stockade.core.pubsub.errors import (
    NS_PUBSUB,
    NS_PUBSUB_OWNER,
    PubsubError,
    nodeid_required,
    unsupported,
)
from stockade.core.pubsub.forms import SubmittedForm, find_form, parse_form
from stockade.core.xml import Element

SEC = StanzaErrorCondition
MAX_NODE_CHARS = 1023
MAX_ITEM_ID_CHARS = 1023
MAX_REQUESTED_IDS = 256


@dataclass(frozen=True, slots=True)
class Publish:
    """§7.1: publish one item (``item_id`` None: the service picks one)."""

    node: str
    item_id: str | None
    payload: Element
    options: SubmittedForm | None = None


@dataclass(frozen=True, slots=True)
class Retract:
    """§7.2: delete items; ``notify`` is the request's 'notify' attribute (None: absent,
    the node's pubsub#notify_retract decides)."""

    node: str
    item_ids: tuple[str, ...]
    notify: bool | None


@dataclass(frozen=True, slots=True)
class Items:
    """§6.5: all items, the ``max_items`` most recent, or those with ``item_ids``."""

    node: str
    max_items: int | None = None
    item_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Create:
    """§8.1: create a node, with a node_config form for create-and-configure (§8.1.3)."""

    node: str
    config: SubmittedForm | None = None


@dataclass(frozen=True, slots=True)
class ConfigureGet:
    """§8.2.1: the owner asks for the configuration form."""

    node: str


@dataclass(frozen=True, slots=True)
class ConfigureSet:
    """§8.2.3: the owner submits (or cancels) the configuration form."""

    node: str
    form: SubmittedForm


@dataclass(frozen=True, slots=True)
class DefaultGet:
    """§8.3: the default node configuration."""


@dataclass(frozen=True, slots=True)
class Delete:
    """§8.4: delete a node and its items."""

    node: str


@dataclass(frozen=True, slots=True)
class Purge:
    """§8.5: delete every item of a node."""

    node: str


Request = Publish | Retract | Items | Create | ConfigureGet | ConfigureSet | DefaultGet | \
    Delete | Purge

# (namespace, iq type, element) -> feature reported as unsupported (XEP-0060 §10).
_UNSUPPORTED: dict[tuple[str, str, str], str] = {
    (NS_PUBSUB, "set", "subscribe"): "subscribe",
    (NS_PUBSUB, "set", "unsubscribe"): "subscribe",
    (NS_PUBSUB, "set", "options"): "subscription-options",
    (NS_PUBSUB, "get", "options"): "subscription-options",
    (NS_PUBSUB, "get", "default"): "retrieve-default-sub",
    (NS_PUBSUB, "get", "subscriptions"): "retrieve-subscriptions",
    (NS_PUBSUB, "get", "affiliations"): "retrieve-affiliations",
    (NS_PUBSUB_OWNER, "get", "affiliations"): "modify-affiliations",
    (NS_PUBSUB_OWNER, "set", "affiliations"): "modify-affiliations",
    (NS_PUBSUB_OWNER, "get", "subscriptions"): "manage-subscriptions",
    (NS_PUBSUB_OWNER, "set", "subscriptions"): "manage-subscriptions",
}


def parse_request(iq_type: str, pubsub: Element) -> Request:
    """The request in ``pubsub`` (an IQ ``get`` or ``set``).

    Raises:
        PubsubError: the XEP-0060 error for a malformed or unsupported request.
    """
    children = list(pubsub.elements())
    if not children:
        raise PubsubError(SEC.BAD_REQUEST, text="empty pubsub request")
    action = children[0]
    feature = _UNSUPPORTED.get((pubsub.ns, iq_type, action.name))
    if feature is not None:
        raise unsupported(feature)
    parser = _PARSERS.get((pubsub.ns, iq_type, action.name))
    if parser is None or action.ns != pubsub.ns:
        raise PubsubError(SEC.BAD_REQUEST, text="unknown pubsub request")
    return parser(action, children[1:])


def _node(el: Element) -> str:
    node = el.get("node")
    if not node:
        raise nodeid_required()
    if len(node) > MAX_NODE_CHARS:
        raise PubsubError(SEC.NOT_ACCEPTABLE, text="node name too long")
    return node


def _item_id(el: Element) -> str | None:
    item_id = el.get("id") or None
    if item_id is not None and len(item_id) > MAX_ITEM_ID_CHARS:
        raise PubsubError(SEC.NOT_ACCEPTABLE, text="item id too long")
    return item_id


def _nothing_else(rest: list[Element]) -> None:
    if rest:
        raise PubsubError(SEC.BAD_REQUEST, text="unexpected element in pubsub request")


def _only(rest: list[Element], ns: str, name: str) -> Element | None:
    """The optional companion element (publish-options, configure) and nothing else."""
    if not rest:
        return None
    if len(rest) > 1 or rest[0].tag != (ns, name):
        raise PubsubError(SEC.BAD_REQUEST, text="unexpected element in pubsub request")
    return rest[0]


def _optional_form(parent: Element | None) -> SubmittedForm | None:
    if parent is None:
        return None
    x = find_form(parent)
    return parse_form(x) if x is not None else None


def _payload(item: Element) -> Element:
    if any(isinstance(c, str) and c.strip() for c in item.children):
        raise PubsubError(SEC.BAD_REQUEST, "invalid-payload")
    payloads = list(item.elements())
    if not payloads:
        raise PubsubError(SEC.BAD_REQUEST, "payload-required")  # §7.1.3.6
    if len(payloads) > 1:
        raise PubsubError(SEC.BAD_REQUEST, "invalid-payload")  # §7.1.3.5
    return payloads[0]


def _publish(el: Element, rest: list[Element]) -> Publish:
    node = _node(el)
    items = el.find_all(NS_PUBSUB, "item")
    if not items:
        raise PubsubError(SEC.BAD_REQUEST, "item-required")  # §7.1.3.6: persistent nodes
    if len(items) > 1 or len(list(el.elements())) > 1:
        # Batch publishing was removed from XEP-0060 (1.13).
        raise PubsubError(SEC.BAD_REQUEST, "invalid-payload", text="one item per publish")
    options = _optional_form(_only(rest, NS_PUBSUB, "publish-options"))
    return Publish(node, _item_id(items[0]), _payload(items[0]), options)


def _item_ids(el: Element) -> tuple[str, ...]:
    ids = []
    for item in el.find_all(el.ns, "item"):
        item_id = _item_id(item)
        if item_id is None:
            raise PubsubError(SEC.BAD_REQUEST, "item-required")  # §7.2.3.4
        ids.append(item_id)
    if len(ids) > MAX_REQUESTED_IDS:
        raise PubsubError(SEC.POLICY_VIOLATION, text="too many items in one request")
    return tuple(dict.fromkeys(ids))


def _retract(el: Element, rest: list[Element]) -> Retract:
    _nothing_else(rest)
    node = _node(el)
    ids = _item_ids(el)
    if not ids:
        raise PubsubError(SEC.BAD_REQUEST, "item-required")
    notify = el.get("notify")
    return Retract(node, ids, None if notify is None else notify in ("1", "true"))


def _items(el: Element, rest: list[Element]) -> Items:
    _nothing_else(rest)
    node = _node(el)
    max_items = el.get("max_items")
    if max_items is not None and (not max_items.isdigit() or int(max_items) < 1):
        raise PubsubError(SEC.BAD_REQUEST, text="max_items is a positive integer")
    return Items(node, int(max_items) if max_items else None, _item_ids(el))


def _create(el: Element, rest: list[Element]) -> Create:
    if not el.get("node"):
        # §8.1.2: instant nodes are not offered (PEP nodes are named by namespace).
        raise PubsubError(SEC.NOT_ACCEPTABLE, "nodeid-required")
    configure = _only(rest, NS_PUBSUB, "configure")
    if configure is not None and configure.get("node") is not None:
        raise PubsubError(SEC.BAD_REQUEST, text="configure must not name the node")  # §8.1.3
    return Create(_node(el), _optional_form(configure))


def _configure_get(el: Element, rest: list[Element]) -> ConfigureGet:
    _nothing_else(rest)
    return ConfigureGet(_node(el))


def _configure_set(el: Element, rest: list[Element]) -> ConfigureSet:
    _nothing_else(rest)
    node = _node(el)
    form = _optional_form(el)
    if form is None:
        raise PubsubError(SEC.BAD_REQUEST, text="configure needs a data form")
    return ConfigureSet(node, form)


def _default(_el: Element, rest: list[Element]) -> DefaultGet:
    _nothing_else(rest)
    return DefaultGet()


def _delete(el: Element, rest: list[Element]) -> Delete:
    _nothing_else(rest)
    return Delete(_node(el))


def _purge(el: Element, rest: list[Element]) -> Purge:
    _nothing_else(rest)
    return Purge(_node(el))


_PARSERS: dict[tuple[str, str, str], Callable[[Element, list[Element]], Request]] = {
    (NS_PUBSUB, "set", "publish"): _publish,
    (NS_PUBSUB, "set", "retract"): _retract,
    (NS_PUBSUB, "set", "create"): _create,
    (NS_PUBSUB, "get", "items"): _items,
    (NS_PUBSUB_OWNER, "get", "configure"): _configure_get,
    (NS_PUBSUB_OWNER, "set", "configure"): _configure_set,
    (NS_PUBSUB_OWNER, "get", "default"): _default,
    (NS_PUBSUB_OWNER, "set", "delete"): _delete,
    (NS_PUBSUB_OWNER, "set", "purge"): _purge,
}
