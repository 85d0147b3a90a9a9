"""XML for XMPP: restricted incremental parser and serializer (RFC 6120 §11)."""

from stockade.core.xml.element import XML_LANG, XML_NS, Element, escape_attr, escape_text, serialize
from stockade.core.xml.parser import (
    NS_STREAMS,
    ParserEvent,
    ParserLimits,
    StreamEnd,
    StreamHeader,
    XMLStreamParser,
    parse_fragment,
)

__all__ = [
    "NS_STREAMS",
    "XML_LANG",
    "XML_NS",
    "Element",
    "ParserEvent",
    "ParserLimits",
    "StreamEnd",
    "StreamHeader",
    "XMLStreamParser",
    "escape_attr",
    "escape_text",
    "parse_fragment",
    "serialize",
]
