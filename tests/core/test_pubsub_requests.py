"""Parsing ``<pubsub/>`` requests (XEP-0060 §6-§8) and the errors malformed ones get,
plus what the service sends back (results, notifications, stored payloads)."""

from __future__ import annotations

import pytest

from stockade.core.errors import NS_STANZAS
from stockade.core.pubsub.errors import (
    NS_PUBSUB,
    NS_PUBSUB_ERRORS,
    NS_PUBSUB_EVENT,
    NS_PUBSUB_OWNER,
    PubsubError,
    unsupported,
)
from stockade.core.pubsub.events import (
    items_event,
    node_event,
    notification,
    payload_from_text,
    payload_to_text,
    publish_result,
    retract_event,
)
from stockade.core.pubsub.forms import NS_DATA
from stockade.core.pubsub.requests import (
    ConfigureGet,
    ConfigureSet,
    Create,
    DefaultGet,
    Delete,
    Items,
    Publish,
    Purge,
    Retract,
    parse_request,
)
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import XML_LANG, Element, XMLStreamParser, serialize

DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


def parse_xml(text: str) -> Element:
    parser = XMLStreamParser()
    parser.feed(HEADER)
    (el,) = [e for e in parser.feed(text.encode()) if isinstance(e, Element)]
    return el


def pubsub(inner: str, ns: str = NS_PUBSUB) -> Element:
    return parse_xml(f"<pubsub xmlns='{ns}'>{inner}</pubsub>")


def error_of(iq_type: str, inner: str, ns: str = NS_PUBSUB) -> tuple[str, str | None]:
    with pytest.raises(PubsubError) as info:
        parse_request(iq_type, pubsub(inner, ns))
    return info.value.condition.value, info.value.pubsub_condition


def test_publish_with_options() -> None:
    request = parse_request("set", pubsub(
        f"<publish node='{DEVICELIST}'><item id='current'>"
        "<list xmlns='eu.siacs.conversations.axolotl'><device id='42'/></list></item></publish>"
        "<publish-options><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'>"
        "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"))
    assert isinstance(request, Publish)
    assert (request.node, request.item_id, request.payload.name) == (DEVICELIST, "current",
                                                                     "list")
    assert request.options is not None
    assert request.options.fields == {"pubsub#access_model": ("open",)}


def test_publish_without_id_or_options() -> None:
    request = parse_request("set", pubsub(
        "<publish node='http://jabber.org/protocol/nick'><item>"
        "<nick xmlns='http://jabber.org/protocol/nick'>Ali</nick></item></publish>"))
    assert isinstance(request, Publish)
    assert request.item_id is None and request.options is None


@pytest.mark.parametrize(("inner", "expected"), [
    ("<publish><item><x xmlns='urn:t'/></item></publish>", ("bad-request", "nodeid-required")),
    ("<publish node=''><item><x xmlns='urn:t'/></item></publish>",
     ("bad-request", "nodeid-required")),
    ("<publish node='n'/>", ("bad-request", "item-required")),
    ("<publish node='n'><item/></publish>", ("bad-request", "payload-required")),
    ("<publish node='n'><item><a xmlns='urn:t'/><b xmlns='urn:t'/></item></publish>",
     ("bad-request", "invalid-payload")),
    ("<publish node='n'><item>text<a xmlns='urn:t'/></item></publish>",
     ("bad-request", "invalid-payload")),
    ("<publish node='n'><item><a xmlns='urn:t'/></item><item><b xmlns='urn:t'/></item>"
     "</publish>", ("bad-request", "invalid-payload")),
    ("<publish node='n'><item><a xmlns='urn:t'/></item></publish><bogus/>",
     ("bad-request", None)),
    (f"<publish node='{'n' * 2000}'><item><a xmlns='urn:t'/></item></publish>",
     ("not-acceptable", None)),
    ("<retract node='n'/>", ("bad-request", "item-required")),
    ("<retract node='n'><item/></retract>", ("bad-request", "item-required")),
    ("<create/>", ("not-acceptable", "nodeid-required")),
    ("<create node='n'/><configure node='n'/>", ("bad-request", None)),
    ("<subscribe node='n' jid='a@b'/>", ("feature-not-implemented", "unsupported")),
    ("<unknown/>", ("bad-request", None)),
])
def test_malformed_set_requests(inner: str, expected: tuple[str, str | None]) -> None:
    assert error_of("set", inner) == expected


def test_unsupported_names_the_feature() -> None:
    with pytest.raises(PubsubError) as info:
        parse_request("get", pubsub("<subscriptions/>"))
    assert info.value.feature == "retrieve-subscriptions"
    err = unsupported("subscribe").error_element(NS_CLIENT)
    assert serialize(err) == (
        "<error xmlns='jabber:client' type='cancel'>"
        f"<feature-not-implemented xmlns='{NS_STANZAS}'/>"
        f"<unsupported xmlns='{NS_PUBSUB_ERRORS}' feature='subscribe'/></error>")


def test_items_requests() -> None:
    assert parse_request("get", pubsub("<items node='n'/>")) == Items("n")
    assert parse_request("get", pubsub("<items node='n' max_items='2'/>")) == Items("n", 2)
    assert parse_request("get", pubsub("<items node='n'><item id='a'/><item id='b'/>"
                                       "<item id='a'/></items>")) == Items("n", None, ("a", "b"))
    for bad in ("0", "-1", "x"):
        assert error_of("get", f"<items node='n' max_items='{bad}'/>") == ("bad-request", None)
    assert error_of("get", "<items/>") == ("bad-request", "nodeid-required")
    # A publish is a set; as a get it is nothing we know.
    assert error_of("get", "<publish node='n'/>") == ("bad-request", None)


def test_retract_notify_attribute() -> None:
    def notify(attr: str) -> bool | None:
        request = parse_request("set", pubsub(f"<retract node='n'{attr}><item id='a'/>"
                                              "</retract>"))
        assert isinstance(request, Retract)
        return request.notify
    assert notify("") is None
    assert notify(" notify='true'") is True
    assert notify(" notify='1'") is True
    assert notify(" notify='false'") is False


def test_owner_requests() -> None:
    form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
            "<field var='pubsub#max_items'><value>5</value></field></x>")
    own = NS_PUBSUB_OWNER
    assert parse_request("get", pubsub("<configure node='n'/>", own)) == ConfigureGet("n")
    request = parse_request("set", pubsub(f"<configure node='n'>{form}</configure>", own))
    assert isinstance(request, ConfigureSet) and request.form.fields == {
        "pubsub#max_items": ("5",)}
    assert error_of("set", "<configure node='n'/>", own) == ("bad-request", None)
    assert parse_request("get", pubsub("<default/>", own)) == DefaultGet()
    assert parse_request("set", pubsub("<delete node='n'/>", own)) == Delete("n")
    assert parse_request("set", pubsub("<purge node='n'/>", own)) == Purge("n")
    assert error_of("set", "<affiliations node='n'/>", own) == (
        "feature-not-implemented", "unsupported")
    created = parse_request("set", pubsub(f"<create node='n'/><configure>{form}</configure>"))
    assert isinstance(created, Create) and created.config is not None
    assert parse_request("set", pubsub("<create node='n'/><configure/>")) == Create("n")


def test_payloads_round_trip_through_storage() -> None:
    payload = parse_xml(
        "<metadata xmlns='urn:xmpp:avatar:metadata' xmlns:x='urn:x'>"
        "<info id='abc' bytes='12' type='image/png' x:extra='1 &amp; 2'/>"
        "<text xml:lang='en'>&lt;hello&gt; &amp; bye</text></metadata>")
    again = payload_from_text(payload_to_text(payload))
    assert again == payload
    assert again.find("urn:xmpp:avatar:metadata", "text").attrs[XML_LANG] == "en"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        payload_from_text("<a xmlns='urn:t'/><b xmlns='urn:t'/>")


def test_results_and_events() -> None:
    assert serialize(publish_result("n", "i1")) == (
        f"<pubsub xmlns='{NS_PUBSUB}'><publish node='n'><item id='i1'/></publish></pubsub>")
    nick = Element("http://jabber.org/protocol/nick", "nick", children=["Ali"])
    message = notification("alice@example.org", "bob@example.org/phone",
                           items_event("http://jabber.org/protocol/nick", [("c", nick)]),
                           "m1", delay="2024-01-01T00:00:00.000Z")
    assert serialize(message) == (
        "<message xmlns='jabber:client' from='alice@example.org' to='bob@example.org/phone' "
        f"type='headline' id='m1'><event xmlns='{NS_PUBSUB_EVENT}'>"
        "<items node='http://jabber.org/protocol/nick'><item id='c'>"
        "<nick xmlns='http://jabber.org/protocol/nick'>Ali</nick></item></items></event>"
        "<delay xmlns='urn:xmpp:delay' from='alice@example.org' "
        "stamp='2024-01-01T00:00:00.000Z'/></message>")
    assert serialize(items_event("n", [("c", None)])) == (
        f"<event xmlns='{NS_PUBSUB_EVENT}'><items node='n'><item id='c'/></items></event>")
    assert serialize(retract_event("n", ["a"])) == (
        f"<event xmlns='{NS_PUBSUB_EVENT}'><items node='n'><retract id='a'/></items></event>")
    assert serialize(node_event("purge", "n")) == (
        f"<event xmlns='{NS_PUBSUB_EVENT}'><purge node='n'/></event>")


def test_form_values_survive_parsing() -> None:
    request = parse_request("set", pubsub(
        "<publish node='n'><item><a xmlns='urn:t'/></item></publish><publish-options>"
        f"<x xmlns='{NS_DATA}' type='submit'><field var='pubsub#roster_groups_allowed'>"
        "<value>a</value><value>b</value></field></x></publish-options>"))
    assert isinstance(request, Publish) and request.options is not None
    assert request.options.form_type is None
    assert request.options.fields["pubsub#roster_groups_allowed"] == ("a", "b")
