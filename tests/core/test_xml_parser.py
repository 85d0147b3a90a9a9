"""The restricted, incremental XML stream parser (RFC 6120 §4.3, §11)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.core.errors import RemoteProtocolError, StreamErrorCondition
from stockade.core.xml import (
    Element,
    ParserLimits,
    StreamEnd,
    StreamHeader,
    XMLStreamParser,
    serialize,
)

SE = StreamErrorCondition
HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>")
STANZA = (b"<message to='juliet@example.com' id='m1' xml:lang='en'><body>Art thou "
          b"&lt;not&gt; Romeo &amp; a Montague?</body><x xmlns='urn:example' a='&apos;'/>"
          b"</message>")


def feed_all(data: bytes, chunks: list[bytes] | None = None,
             limits: ParserLimits | None = None) -> list[object]:
    parser = XMLStreamParser(limits)
    events: list[object] = []
    for chunk in chunks if chunks is not None else [data]:
        events.extend(parser.feed(chunk))
    return events


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, 12)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_header_stanza_and_end_whole() -> None:
    events = feed_all(HEADER + STANZA + b"</stream:stream>")
    header, stanza, end = events
    assert isinstance(header, StreamHeader)
    assert header.default_ns == "jabber:client"
    assert header.stream_prefix == "stream"
    assert header.attrs["to"] == "example.com"
    assert isinstance(stanza, Element)
    assert stanza.tag == ("jabber:client", "message")
    body = stanza.find("jabber:client", "body")
    assert body is not None and body.text == "Art thou <not> Romeo & a Montague?"
    assert isinstance(end, StreamEnd)


def test_byte_by_byte_gives_the_same_events() -> None:
    data = HEADER + STANZA + STANZA + b"</stream:stream>"
    whole = feed_all(data)
    one_by_one = feed_all(data, [data[i:i + 1] for i in range(len(data))])
    assert [type(e) for e in one_by_one] == [type(e) for e in whole]
    assert one_by_one[1] == whole[1] and one_by_one[2] == whole[2]


@pytest.mark.parametrize("seed", range(20))
def test_random_splits_give_the_same_events(seed: int) -> None:
    data = HEADER + STANZA + b" \n " + STANZA + b"</stream:stream>"
    chunks = split_randomly(data, random.Random(seed))
    assert feed_all(data, chunks)[1:3] == feed_all(data)[1:3]


def test_serialize_round_trip_escapes() -> None:
    stanza = feed_all(HEADER + STANZA)[1]
    assert isinstance(stanza, Element)
    text = serialize(stanza, "jabber:client").encode()
    again = feed_all(HEADER + text)[1]
    assert again == stanza
    assert b"&lt;not&gt;" in text and b"&amp;" in text


def test_xml_lang_is_kept() -> None:
    stanza = feed_all(HEADER + STANZA)[1]
    assert isinstance(stanza, Element)
    assert "xml:lang='en'" in serialize(stanza, "jabber:client")


@pytest.mark.parametrize(("data", "condition"), [
    (b"<!DOCTYPE stream:stream>" + HEADER, SE.RESTRICTED_XML),
    (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>", SE.RESTRICTED_XML),
    (HEADER + b"<!-- hello -->", SE.RESTRICTED_XML),
    (HEADER + b"<message><!-- hidden --></message>", SE.RESTRICTED_XML),
    (HEADER + b"<?php echo 1 ?>", SE.RESTRICTED_XML),
    (HEADER + b"<message><body></message>", SE.NOT_WELL_FORMED),
    (HEADER + b"<message><body>&foo;</body></message>", SE.NOT_WELL_FORMED),
    (HEADER + b"<message>\xff\xfe</message>", SE.UNSUPPORTED_ENCODING),  # §4.9.3.22
    (HEADER + b"<x:message/>", SE.BAD_NAMESPACE_PREFIX),
    (b"<stream xmlns='jabber:client'>", SE.INVALID_NAMESPACE),
    (b"<stream:stream xmlns:stream='urn:wrong'>", SE.INVALID_NAMESPACE),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:], SE.UNSUPPORTED_ENCODING),
    (HEADER + b"hello", SE.BAD_FORMAT),
])
def test_refusals(data: bytes, condition: StreamErrorCondition) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        feed_all(data)
    assert info.value.condition is condition


def test_billion_laughs_is_refused_before_expansion() -> None:
    lol = (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
           + b"".join(b"<!ENTITY lol%d '%s'>" % (i, b"&lol;" * 10) for i in range(1, 9))
           + b"]><lolz>&lol8;</lolz>")
    with pytest.raises(RemoteProtocolError) as info:
        feed_all(lol)
    assert info.value.condition is SE.RESTRICTED_XML


def test_oversize_stanza_is_cut_off_mid_stanza() -> None:
    parser = XMLStreamParser(ParserLimits(max_stanza_bytes=1000))
    parser.feed(HEADER + b"<message><body>")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            parser.feed(b"x" * 100)  # never closes the element
    assert info.value.condition is SE.POLICY_VIOLATION


def test_stanza_just_under_the_limit_passes() -> None:
    body = b"x" * 900
    stanza = b"<message><body>" + body + b"</body></message>"
    events = feed_all(HEADER + stanza, limits=ParserLimits(max_stanza_bytes=len(stanza) + 1))
    assert len(events) == 2


def test_many_small_stanzas_do_not_add_up() -> None:
    events = feed_all(HEADER + STANZA * 200, limits=ParserLimits(max_stanza_bytes=400))
    assert len(events) == 201


def test_depth_limit() -> None:
    deep = b"<a>" * 40 + b"</a>" * 40
    with pytest.raises(RemoteProtocolError) as info:
        feed_all(HEADER + deep, limits=ParserLimits(max_depth=32))
    assert info.value.condition is SE.POLICY_VIOLATION
    assert len(feed_all(HEADER + b"<a>" * 10 + b"</a>" * 10,
                        limits=ParserLimits(max_depth=32))) == 2


def test_attribute_limit() -> None:
    attrs = b" ".join(b"a%d='x'" % i for i in range(100))
    with pytest.raises(RemoteProtocolError) as info:
        feed_all(HEADER + b"<message " + attrs + b"/>")
    assert info.value.condition is SE.POLICY_VIOLATION


def test_endless_header_is_refused() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        feed_all(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
                 + b"a='" + b"x" * 20000)
    assert info.value.condition is SE.POLICY_VIOLATION


def test_nothing_after_stream_end() -> None:
    parser = XMLStreamParser()
    parser.feed(HEADER + b"</stream:stream>")
    assert parser.is_ended
    assert parser.feed(b"<message/>") == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_raise_only_remote_protocol_errors(data: bytes) -> None:
    parser = XMLStreamParser()
    try:
        parser.feed(HEADER)
        parser.feed(data)
    except RemoteProtocolError:
        pass


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), _text, max_size=5),
       _text)
def test_parse_serialize_round_trip(attrs: dict[str, str], text: str) -> None:
    el = Element("jabber:client", "message", dict(attrs))
    el.sub("jabber:client", "body", text=text)
    el.sub("urn:example:x", "x", {"k": text})
    parsed = feed_all(HEADER + serialize(el, "jabber:client").encode())[1]
    assert parsed == el
