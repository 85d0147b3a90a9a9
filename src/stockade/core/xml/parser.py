"""Incremental, restricted XML stream parser (RFC 6120 §4.3, §11).

Sans-I/O: feed bytes, get back the stream header, each complete top-level element and the
stream end. Everything RFC 6120 §11.1 forbids (DTDs, entity declarations, comments,
processing instructions) ends the stream with ``restricted-xml``; size and depth are bounded.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from stockade.core.errors import RemoteProtocolError, StreamErrorCondition
from stockade.core.xml.element import Element

NS_STREAMS = "http://etherx.jabber.org/streams"
_SEP = "\x01"  # namespace separator: cannot occur in a well-formed name

SE = StreamErrorCondition


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Bounds on what one peer may make us hold in memory."""

    max_stanza_bytes: int = 256 * 1024
    max_depth: int = 32
    max_attributes: int = 64
    max_header_bytes: int = 8 * 1024


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """The opening ``<stream:stream>`` tag: its attributes and its default namespace."""

    attrs: dict[str, str]
    default_ns: str | None
    stream_prefix: str | None


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The peer sent ``</stream:stream>``."""


ParserEvent = StreamHeader | Element | StreamEnd


def _split(name: str) -> tuple[str, str]:
    ns, sep, local = name.partition(_SEP)
    return (ns, local) if sep else ("", ns)


def _attr_key(name: str) -> str:
    ns, sep, local = name.partition(_SEP)
    return "{" + ns + "}" + local if sep else name


class XMLStreamParser:
    """Parses one XML stream; a stream restart (after STARTTLS or SASL) needs a new parser."""

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._events: list[ParserEvent] = []
        self._stack: list[Element] = []
        self._fed = 0  # bytes fed so far
        self._stanza_start = -1  # byte index where the open top-level element began
        self._header_seen = False
        self._ended = False
        self._ns_decls: dict[str, str] = {}
        self._parser = self._make_expat()
        # Expat reports bad UTF-8 as a bad token; RFC 6120 §4.9.3.22 wants its own error.
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")

    def _make_expat(self) -> Any:
        p = expat.ParserCreate(encoding="UTF-8", namespace_separator=_SEP)
        if hasattr(p, "SetReparseDeferralEnabled"):
            # Expat >= 2.6 may hold events back on small feeds; our own limits bound memory.
            p.SetReparseDeferralEnabled(False)
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.buffer_text = True
        p.ordered_attributes = False
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        p.StartNamespaceDeclHandler = self._ns_decl
        p.XmlDeclHandler = self._xml_decl
        # SECURITY: RFC 6120 §11.1 — no DTDs (billion laughs, XXE), no comments, no PIs.
        for handler in ("StartDoctypeDeclHandler", "EntityDeclHandler",
                        "UnparsedEntityDeclHandler", "NotationDeclHandler",
                        "ProcessingInstructionHandler", "CommentHandler",
                        "ExternalEntityRefHandler", "ElementDeclHandler",
                        "AttlistDeclHandler", "SkippedEntityHandler"):
            setattr(p, handler, self._restricted)
        return p

    @property
    def between_elements(self) -> bool:
        """Whether no top-level element is open (RFC 7395 framing checks this per message)."""
        return not self._stack

    @property
    def is_ended(self) -> bool:
        """Whether ``</stream:stream>`` has been seen."""
        return self._ended

    def feed(self, data: bytes) -> list[ParserEvent]:
        """Parse ``data`` and return the events it completed.

        Raises:
            RemoteProtocolError: the input breaks the XML or RFC 6120 §11 rules or a limit.
        """
        if self._ended:
            return []
        self._fed += len(data)
        try:
            self._utf8.decode(data)
        except UnicodeDecodeError:
            raise RemoteProtocolError(SE.UNSUPPORTED_ENCODING, "invalid UTF-8") from None
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as exc:
            raise RemoteProtocolError(_expat_condition(exc), "XML error") from None
        self._check_sizes(self._fed)
        events, self._events = self._events, []
        return events

    def _check_sizes(self, position: int) -> None:
        limits = self.limits
        if not self._header_seen and position > limits.max_header_bytes:
            raise RemoteProtocolError(SE.POLICY_VIOLATION, "stream header too large")
        if self._stanza_start >= 0 and position - self._stanza_start > limits.max_stanza_bytes:
            raise RemoteProtocolError(SE.POLICY_VIOLATION, "stanza too large")

    def _restricted(self, *_args: object) -> None:
        raise RemoteProtocolError(SE.RESTRICTED_XML, "DTDs, entities, comments and "
                                  "processing instructions are not allowed")

    def _xml_decl(self, _version: str | None, encoding: str | None, _sa: int) -> None:
        if encoding is not None and encoding.lower().replace("_", "-") != "utf-8":
            raise RemoteProtocolError(SE.UNSUPPORTED_ENCODING, "only UTF-8 is allowed")

    def _ns_decl(self, prefix: str | None, uri: str) -> None:
        if not self._header_seen:
            self._ns_decls[prefix or ""] = uri

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if len(attrs) > self.limits.max_attributes:
            raise RemoteProtocolError(SE.POLICY_VIOLATION, "too many attributes")
        ns, local = _split(name)
        if not self._header_seen:
            self._open_stream(ns, local, attrs)
            return
        depth = len(self._stack)
        if depth >= self.limits.max_depth:
            raise RemoteProtocolError(SE.POLICY_VIOLATION, "elements nested too deeply")
        if depth == 0:
            self._stanza_start = self._parser.CurrentByteIndex
        else:
            self._check_sizes(self._parser.CurrentByteIndex)
        el = Element(ns, local, {_attr_key(k): v for k, v in attrs.items()}
                     if attrs else {})
        if self._stack:
            self._stack[-1].children.append(el)
        self._stack.append(el)

    def _open_stream(self, ns: str, local: str, attrs: dict[str, str]) -> None:
        if local != "stream" or ns != NS_STREAMS:
            raise RemoteProtocolError(SE.INVALID_NAMESPACE, "not an XMPP stream")
        prefix = next((p for p, uri in self._ns_decls.items() if uri == NS_STREAMS), None)
        self._header_seen = True
        self._events.append(StreamHeader(
            {_attr_key(k): v for k, v in attrs.items()},
            self._ns_decls.get(""),
            prefix,
        ))

    def _end(self, _name: str) -> None:
        if not self._stack:
            self._ended = True
            self._events.append(StreamEnd())
            return
        el = self._stack.pop()
        if not self._stack:
            self._check_sizes(self._parser.CurrentByteIndex)
            self._stanza_start = -1
            self._events.append(el)

    def _chars(self, data: str) -> None:
        if self._stack:
            self._check_sizes(self._parser.CurrentByteIndex)
            self._stack[-1].children.append(data)
        elif data.strip():
            # Only whitespace (keepalives) may appear between stanzas.
            raise RemoteProtocolError(SE.BAD_FORMAT, "text outside a stanza")


def _expat_condition(exc: expat.ExpatError) -> StreamErrorCondition:
    if exc.code == expat.errors.codes[expat.errors.XML_ERROR_UNBOUND_PREFIX]:
        return SE.BAD_NAMESPACE_PREFIX
    if exc.code in (expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING],
                    expat.errors.codes[expat.errors.XML_ERROR_INCORRECT_ENCODING]):
        return SE.UNSUPPORTED_ENCODING
    return SE.NOT_WELL_FORMED


def parse_fragment(text: str, default_ns: str = "jabber:client") -> Element:
    """Parse one serialized element (e.g. a stored stanza) under ``default_ns``.

    Raises:
        RemoteProtocolError: ``text`` is not exactly one well-formed element.
    """
    parser = XMLStreamParser(ParserLimits(max_stanza_bytes=len(text.encode()) + 1024,
                                          max_depth=256))
    parser.feed(f"<stream:stream xmlns='{default_ns}' xmlns:stream='{NS_STREAMS}'>".encode())
    items = [item for item in parser.feed(text.encode()) if isinstance(item, Element)]
    if len(items) != 1 or not parser.between_elements:
        raise RemoteProtocolError(SE.NOT_WELL_FORMED, "not one element")
    return items[0]
