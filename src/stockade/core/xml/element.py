"""A small namespaced XML element and its serializer (RFC 6120 §11: the XML that XMPP allows)."""

from __future__ import annotations

import re
from collections.abc import Iterator

XML_NS = "http://www.w3.org/XML/1998/namespace"
XML_LANG = "{" + XML_NS + "}lang"

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;", "\n": "&#10;",
     "\r": "&#13;", "\t": "&#9;"}
)


# Most values need no escaping; a regex scan is far cheaper than translate() with a dict.
_TEXT_SPECIAL = re.compile(r"[&<>]")
_ATTR_SPECIAL = re.compile("[&<>'\"\n\r\t]")


def escape_text(text: str) -> str:
    """Escape character data for output."""
    return text.translate(_TEXT_ESCAPES) if _TEXT_SPECIAL.search(text) else text


def escape_attr(value: str) -> str:
    """Escape an attribute value for output inside single quotes."""
    return value.translate(_ATTR_ESCAPES) if _ATTR_SPECIAL.search(value) else value


class Element:
    """An XML element: namespace, local name, attributes and children (elements or text).

    Attribute keys are local names, or ``{namespace}name`` for namespaced attributes
    (``xml:lang`` is :data:`XML_LANG`).
    """

    __slots__ = ("attrs", "children", "name", "ns")

    def __init__(
        self,
        ns: str,
        name: str,
        attrs: dict[str, str] | None = None,
        children: list[Element | str] | None = None,
    ) -> None:
        self.ns = ns
        self.name = name
        self.attrs: dict[str, str] = attrs if attrs is not None else {}
        self.children: list[Element | str] = children if children is not None else []

    @property
    def tag(self) -> tuple[str, str]:
        """``(namespace, name)``."""
        return (self.ns, self.name)

    def get(self, key: str, default: str | None = None) -> str | None:
        """An attribute value."""
        return self.attrs.get(key, default)

    def append(self, child: Element | str) -> Element | str:
        """Add a child and return it."""
        self.children.append(child)
        return child

    def sub(self, ns: str, name: str, attrs: dict[str, str] | None = None,
            text: str | None = None) -> Element:
        """Append and return a new child element."""
        child = Element(ns, name, attrs, [text] if text else None)
        self.children.append(child)
        return child

    def elements(self) -> Iterator[Element]:
        """The child elements (text skipped)."""
        for child in self.children:
            if isinstance(child, Element):
                yield child

    def find(self, ns: str, name: str) -> Element | None:
        """The first child element with this tag."""
        for child in self.children:
            if isinstance(child, Element) and child.name == name and child.ns == ns:
                return child
        return None

    def find_all(self, ns: str, name: str) -> list[Element]:
        """All child elements with this tag."""
        return [c for c in self.children if isinstance(c, Element) and c.name == name
                and c.ns == ns]

    @property
    def text(self) -> str:
        """The concatenated direct character data."""
        return "".join(c for c in self.children if isinstance(c, str))

    def copy(self, attrs: dict[str, str] | None = None) -> Element:
        """A shallow copy (children shared) with new attributes if given."""
        return Element(self.ns, self.name, dict(self.attrs) if attrs is None else attrs,
                       self.children)

    def __repr__(self) -> str:
        return f"<Element {{{self.ns}}}{self.name} {self.attrs!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Element):
            return NotImplemented
        return (self.ns == other.ns and self.name == other.name and self.attrs == other.attrs
                and _normalised(self.children) == _normalised(other.children))

    __hash__ = None  # type: ignore[assignment]


def _normalised(children: list[Element | str]) -> list[Element | str]:
    merged: list[Element | str] = []
    for child in children:
        if isinstance(child, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + child
        elif child != "":
            merged.append(child)
    return merged


def serialize(element: Element, parent_ns: str | None = None) -> str:
    """Serialize ``element``, writing ``xmlns`` where its namespace differs from the parent's."""
    parts: list[str] = []
    _write(element, parent_ns, parts)
    return "".join(parts)


def _write(el: Element, parent_ns: str | None, out: list[str]) -> None:
    out.append("<" + el.name)
    if el.ns != parent_ns:
        out.append(f" xmlns='{escape_attr(el.ns)}'")
    prefixes = 0
    for key, value in el.attrs.items():
        if key[0] == "{":
            ns, _, local = key[1:].partition("}")
            if ns == XML_NS:
                out.append(f" xml:{local}='{escape_attr(value)}'")
            else:
                prefix = f"ns{prefixes}"
                prefixes += 1
                out.append(f" xmlns:{prefix}='{escape_attr(ns)}' {prefix}:{local}="
                           f"'{escape_attr(value)}'")
        else:
            out.append(f" {key}='{escape_attr(value)}'")
    if not el.children:
        out.append("/>")
        return
    out.append(">")
    for child in el.children:
        if isinstance(child, str):
            out.append(escape_text(child))
        else:
            _write(child, el.ns, out)
    out.append(f"</{el.name}>")
