"""Private XML Storage, XEP-0049: one stored element per namespace-qualified name, per account."""

from __future__ import annotations

from collections.abc import Iterable

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.stanza import NS_CLIENT, NS_SERVER, Stanza, result_reply
from stockade.core.xml import Element, parse_fragment, serialize
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import Feature, IQHandler, Module, Registration, Spec, Target
from stockade.server.session import Session

NS_PRIVATE = "jabber:iq:private"
SEC = StanzaErrorCondition
# XEP-0049 §2.3 lets servers refuse reserved namespaces; these would let stored data pose as
# stanzas or as this protocol itself.
RESERVED_NAMESPACES = frozenset({"", NS_CLIENT, NS_SERVER, NS_PRIVATE})

register_section("private", {
    "max_item_bytes": Option(int, 64 * 1024, "Largest element one account may keep in "
                             "private XML storage (XEP-0049), serialized, in bytes.",
                             int_range(1024, 1024 * 1024)),
    "max_items": Option(int, 100, "Elements (distinct namespace-qualified names) one account "
                        "may keep in private XML storage.", int_range(1, 10_000)),
})


def _key(el: Element) -> str:
    return "{" + el.ns + "}" + el.name


class PrivateStorage(Module):
    """XEP-0049 §2.3: get and set, only by the account itself."""

    name = "xep0049_private"
    specs = (Spec("XEP-0049", "Private XML Storage", "1.2"),)
    depends = ("xep0030_disco",)
    config_section = "private"

    def registrations(self) -> Iterable[Registration]:
        """Handlers for one's own account; to anyone else, the request is forbidden."""
        yield Feature(NS_PRIVATE)
        for type_ in ("get", "set"):
            yield IQHandler(type_, (NS_PRIVATE, "query"), Target.SELF,
                            self.on_get if type_ == "get" else self.on_set)
            yield IQHandler(type_, (NS_PRIVATE, "query"), Target.ACCOUNT | Target.HOST,
                            self.on_other)

    async def on_other(self, iq: Stanza, session: Session) -> Element:
        """§2.3: "If a user attempts to get or set jabber:iq:private data that belongs to
        another user, the server MUST return a Forbidden ... error"."""
        raise StanzaError(SEC.FORBIDDEN, "private storage is only for your own account")

    async def on_get(self, iq: Stanza, session: Session) -> Element:
        """The stored element, or the empty one asked for when nothing is stored."""
        (wanted,) = _children(iq, single=True)
        stored = await self.host.storage.get_data(session.username, NS_PRIVATE, _key(wanted))
        query = Element(NS_PRIVATE, "query")
        query.append(parse_fragment(stored) if stored is not None
                     else Element(wanted.ns, wanted.name))
        return result_reply(iq, None, query)

    async def on_set(self, iq: Stanza, session: Session) -> Element:
        """Store each child, replacing what was kept under its name; all or nothing is
        checked before anything is written."""
        children = _children(iq, single=False)
        limit = self.options["max_item_bytes"]
        values = {}
        for child in children:
            text = serialize(child)
            if len(text.encode()) > limit:
                raise StanzaError(SEC.NOT_ACCEPTABLE, f"element larger than {limit} bytes")
            values[_key(child)] = text
        storage = self.host.storage
        existing = {key for key, _ in await storage.list_data(session.username, NS_PRIVATE)}
        if len(existing | values.keys()) > self.options["max_items"]:
            raise StanzaError(SEC.RESOURCE_CONSTRAINT, "private storage is full")
        for key, text in values.items():
            await storage.put_data(session.username, NS_PRIVATE, key, text)
        return result_reply(iq, None)


def _children(iq: Stanza, *, single: bool) -> list[Element]:
    query = iq.element.find(NS_PRIVATE, "query")
    assert query is not None
    children = list(query.elements())
    if not children:
        # §2.3: at least one child with a proper namespace, else not-acceptable.
        raise StanzaError(SEC.NOT_ACCEPTABLE, "name the element to get or set")
    if single and len(children) > 1:
        # §2.3: "A client MUST NOT query for more than namespace in a single IQ get".
        raise StanzaError(SEC.BAD_REQUEST, "get one element at a time")
    for child in children:
        if child.ns in RESERVED_NAMESPACES:
            raise StanzaError(SEC.NOT_ACCEPTABLE, f"namespace {child.ns!r} is reserved")
    if not single and len({_key(c) for c in children}) != len(children):
        raise StanzaError(SEC.BAD_REQUEST, "the same element twice")
    return children


MODULES = (PrivateStorage,)
