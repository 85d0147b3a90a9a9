"""The sans-I/O archive rules of ``stockade.core.mam``: XEP-0313 query forms, XEP-0059 pages,
XEP-0082 stamps, result building, eligibility (XEP-0334 hints), XEP-0359 ids, XEP-0441 prefs."""

from __future__ import annotations

from typing import Any

import pytest

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.mam import (
    MAX_PREF_JIDS,
    NS_DATA,
    NS_DELAY,
    NS_FORWARD,
    NS_HINTS,
    NS_MAM,
    NS_RSM,
    NS_SID,
    ArchivePrefs,
    Page,
    archived_xml,
    fin_element,
    format_stamp,
    is_archivable,
    metadata_element,
    parse_datetime,
    parse_query,
    parse_rsm,
    query_form,
    restamp,
    result_element,
    result_text,
    stanza_ids,
)
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element, XMLStreamParser

SEC = StanzaErrorCondition
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def parse_xml(text: str) -> Element:
    """One element as a client stream would read it."""
    parser = XMLStreamParser()
    parser.feed(HEADER)
    (element,) = [e for e in parser.feed(text.encode()) if isinstance(e, Element)]
    return element


def query(fields: dict[str, list[str]] | None = None, *, form_type: str | None = NS_MAM,
          rsm: str = "", extra: str = "", form_kind: str = "submit") -> Element:
    """<iq><query/></iq> as bytes on the wire; returns the query element."""
    form = ""
    if fields is not None or form_type != NS_MAM:
        parts = []
        if form_type is not None:
            parts.append(f"<field var='FORM_TYPE' type='hidden'><value>{form_type}</value>"
                         "</field>")
        for var, values in (fields or {}).items():
            parts.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values)
                         + "</field>")
        form = f"<x xmlns='{NS_DATA}' type='{form_kind}'>{''.join(parts)}</x>"
    rsm_xml = f"<set xmlns='{NS_RSM}'>{rsm}</set>" if rsm else ""
    iq = parse_xml(f"<iq type='set' id='q1'><query xmlns='{NS_MAM}' queryid='f27'>{form}"
                   f"{rsm_xml}{extra}</query></iq>")
    element = iq.find(NS_MAM, "query")
    assert element is not None
    return element


def refused(element: Element, condition: StanzaErrorCondition, max_page_size: int = 50) -> None:
    with pytest.raises(StanzaError) as caught:
        parse_query(element, max_page_size=max_page_size)
    assert caught.value.condition is condition


# ---------------------------------------------------------------------------- stamps


@pytest.mark.parametrize(("text", "expected_us"), [
    ("1970-01-01T00:00:00Z", 0),
    ("2010-07-10T23:08:25Z", 1_278_803_305_000_000),
    ("2010-07-10T23:08:25.5Z", 1_278_803_305_500_000),
    ("2010-07-10T23:08:25.123456789Z", 1_278_803_305_123_456),  # finer than µs is cut
    ("2010-07-11T01:08:25+02:00", 1_278_803_305_000_000),
    ("2010-07-10T18:38:25-04:30", 1_278_803_305_000_000),
])
def test_datetime_parsing(text: str, expected_us: int) -> None:
    assert parse_datetime(text) == expected_us


@pytest.mark.parametrize("text", [
    "2010-07-10", "2010-07-10T23:08:25", "2010-07-10 23:08:25Z", "2010-13-10T23:08:25Z",
    "2010-07-10T25:08:25Z", "2010-07-10T23:08:25+24:00", "yesterday", "",
    "\uff12\uff10\uff11\uff10-07-10T23:08:25Z",  # fullwidth digits
])
def test_datetime_parsing_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_stamps_have_microseconds_and_round_trip() -> None:
    assert format_stamp(1_278_803_305_123_456) == "2010-07-10T23:08:25.123456Z"
    assert format_stamp(0) == "1970-01-01T00:00:00.000000Z"
    for stamp in (1, 999_999, 1_700_000_000_000_001):
        assert parse_datetime(format_stamp(stamp)) == stamp


# ---------------------------------------------------------------------------- forms


def test_query_without_form_or_rsm_takes_everything() -> None:
    parsed = parse_query(query(), max_page_size=50)
    assert parsed.query_id == "f27"
    assert parsed.page == Page(50)
    assert (parsed.with_jid, parsed.start_us, parsed.end_us, parsed.ids, parsed.flip) == (
        None, None, None, (), False)


def test_query_fields_are_typed() -> None:
    parsed = parse_query(query({
        "with": ["Juliet@Capulet.lit/balcony"], "start": ["2010-06-07T00:00:00Z"],
        "end": ["2010-07-07T13:23:54.5Z"], "after-id": ["a1"], "before-id": ["b2"],
        "ids": ["x", "y"]}, extra="<flip-page/>"), max_page_size=50)
    assert parsed.with_jid == JID("juliet", "capulet.lit", "balcony")  # prepared
    assert parsed.start_us == parse_datetime("2010-06-07T00:00:00Z")
    assert parsed.end_us == parse_datetime("2010-07-07T13:23:54.5Z")
    assert (parsed.after_id, parsed.before_id, parsed.ids, parsed.flip) == ("a1", "b2",
                                                                            ("x", "y"), True)


def test_empty_fields_mean_no_filter() -> None:
    parsed = parse_query(query({"with": [], "start": [""]}), max_page_size=50)
    assert parsed.with_jid is None and parsed.start_us is None


def test_unknown_field_is_feature_not_implemented() -> None:
    refused(query({"{urn:example}full-text": ["Romeo"]}), SEC.FEATURE_NOT_IMPLEMENTED)
    refused(query({"include-groupchat": ["true"]}), SEC.FEATURE_NOT_IMPLEMENTED)


@pytest.mark.parametrize(("element", "condition"), [
    (query({}, form_type=None), SEC.BAD_REQUEST),  # FORM_TYPE is required
    (query({}, form_type="urn:xmpp:mam:1"), SEC.BAD_REQUEST),
    (query({}, form_kind="form"), SEC.BAD_REQUEST),
    (query({"with": ["a@b", "c@d"]}), SEC.BAD_REQUEST),
    (query({"start": ["2010-06-07"]}), SEC.BAD_REQUEST),
    (query({"end": ["soon"]}), SEC.BAD_REQUEST),
    (query({"with": ["@nobody"]}), SEC.JID_MALFORMED),
    (query({"ids": ["a", ""]}), SEC.BAD_REQUEST),
    (query({"ids": [f"id{i}" for i in range(51)]}), SEC.BAD_REQUEST),  # over the page size
])
def test_malformed_queries(element: Element, condition: StanzaErrorCondition) -> None:
    refused(element, condition)


def test_duplicate_field_and_two_forms_are_bad_requests() -> None:
    doubled = query({"with": ["a@b"]})
    form = doubled.find(NS_DATA, "x")
    assert form is not None
    form.append(Element(NS_DATA, "field", {"var": "with"}))
    refused(doubled, SEC.BAD_REQUEST)
    two_forms = query({"with": ["a@b"]})
    two_forms.append(Element(NS_DATA, "x", {"type": "submit"}))
    refused(two_forms, SEC.BAD_REQUEST)


def test_pubsub_node_queries_are_not_implemented() -> None:
    element = query()
    element.attrs["node"] = "urn:xmpp:microblog:0"
    refused(element, SEC.FEATURE_NOT_IMPLEMENTED)


def test_query_form_lists_every_field_without_required() -> None:
    form = query_form().find(NS_DATA, "x")
    assert form is not None and form.get("type") == "form"
    fields = {f.get("var"): f.get("type") for f in form.find_all(NS_DATA, "field")}
    assert fields == {"FORM_TYPE": "hidden", "with": "jid-single", "start": "text-single",
                      "end": "text-single", "before-id": "text-single",
                      "after-id": "text-single", "ids": "list-multi"}
    assert all(f.find(NS_DATA, "required") is None for f in form.find_all(NS_DATA, "field"))
    # What the server offers, it accepts.
    parse_query(query({var: ["a@b"] if var == "with" else ["2010-06-07T00:00:00Z"]
                       if var in ("start", "end") else ["id1"]
                       for var in fields if var != "FORM_TYPE"}), max_page_size=50)


# ---------------------------------------------------------------------------- RSM


@pytest.mark.parametrize(("rsm", "page"), [
    ("<max>10</max>", Page(10)),
    ("<max> 7 </max>", Page(7)),
    ("<max>0</max>", Page(0)),  # count only
    ("<max>5000</max>", Page(50)),  # clamped to the server's page size
    ("<max>10</max><after>abc</after>", Page(10, after="abc")),
    ("<max>10</max><before/>", Page(10, backwards=True)),  # the last page
    ("<before>abc</before>", Page(50, before="abc", backwards=True)),
])
def test_rsm_pages(rsm: str, page: Page) -> None:
    assert parse_query(query(rsm=rsm), max_page_size=50).page == page


@pytest.mark.parametrize(("rsm", "condition"), [
    ("<max>ten</max>", SEC.BAD_REQUEST),
    ("<max>-1</max>", SEC.BAD_REQUEST),
    ("<max>\u0661\u0660</max>", SEC.BAD_REQUEST),  # Arabic-Indic digits
    ("<max>99999999999999999999</max>", SEC.BAD_REQUEST),
    ("<after/>", SEC.BAD_REQUEST),
    ("<index>3</index>", SEC.FEATURE_NOT_IMPLEMENTED),
])
def test_rsm_refusals(rsm: str, condition: StanzaErrorCondition) -> None:
    refused(query(rsm=rsm), condition)


def test_no_rsm_means_a_full_page() -> None:
    assert parse_rsm(None, max_page_size=25) == Page(25)


# ---------------------------------------------------------------------------- results


ARCHIVED = Element(NS_CLIENT, "message", {"from": "romeo@montague.lit/orchard",
                                          "to": "juliet@capulet.lit/balcony", "type": "chat"})
ARCHIVED.sub(NS_CLIENT, "body", text="Call me but love & <I'll> be new baptized")


def test_result_text_and_element_say_the_same() -> None:
    args: dict[str, Any] = {"to": "juliet@capulet.lit/chamber", "archive": "juliet@capulet.lit",
            "message_id": "m1", "query_id": "f'27", "archive_id": "28482-98726",
            "stamp_us": 1_278_803_305_250_000}
    text = result_text(**args, stanza_xml=archived_xml(ARCHIVED))
    assert parse_xml(text) == result_element(**args, stanza=ARCHIVED)


def test_result_shape() -> None:
    message = parse_xml(result_text(
        to="juliet@capulet.lit/chamber", archive="juliet@capulet.lit", message_id="m1",
        query_id="f27", archive_id="28482", stamp_us=1_278_803_305_250_000,
        stanza_xml=archived_xml(ARCHIVED)))
    assert (message.get("to"), message.get("from")) == ("juliet@capulet.lit/chamber",
                                                        "juliet@capulet.lit")
    result = message.find(NS_MAM, "result")
    assert result is not None and result.attrs == {"queryid": "f27", "id": "28482"}
    forwarded = result.find(NS_FORWARD, "forwarded")
    assert forwarded is not None
    delay = forwarded.find(NS_DELAY, "delay")
    assert delay is not None and delay.get("stamp") == "2010-07-10T23:08:25.250000Z"
    assert forwarded.find(NS_CLIENT, "message") == ARCHIVED


def test_result_without_query_id_has_none() -> None:
    message = parse_xml(result_text(to="a@b/c", archive="a@b", message_id="m", query_id=None,
                                    archive_id="i", stamp_us=0,
                                    stanza_xml=archived_xml(ARCHIVED)))
    result = message.find(NS_MAM, "result")
    assert result is not None and "queryid" not in result.attrs


def test_fin_for_a_page_and_for_nothing() -> None:
    fin = fin_element("a", "z", 20, complete=False)
    assert fin.get("complete") == "false"
    rsm = fin.find(NS_RSM, "set")
    assert rsm is not None
    assert [(c.name, c.text) for c in rsm.elements()] == [("first", "a"), ("last", "z"),
                                                          ("count", "20")]
    empty = fin_element(None, None, 0, complete=True)
    assert empty.get("complete") == "true"
    rsm = empty.find(NS_RSM, "set")
    assert rsm is not None and [(c.name, c.text) for c in rsm.elements()] == [("count", "0")]


def test_metadata() -> None:
    metadata = metadata_element(("a", 0), ("z", 1_000_000))
    assert [(c.name, c.attrs) for c in metadata.elements()] == [
        ("start", {"id": "a", "timestamp": "1970-01-01T00:00:00.000000Z"}),
        ("end", {"id": "z", "timestamp": "1970-01-01T00:00:01.000000Z"})]
    assert list(metadata_element(None, None).elements()) == []


# ---------------------------------------------------------------------------- eligibility


def message(type_: str, *children: tuple[str, str]) -> Element:
    el = Element(NS_CLIENT, "message", {"type": type_})
    for ns, name in children:
        el.sub(ns, name, text="x" if name == "body" else None)
    return el


BODY = (NS_CLIENT, "body")


@pytest.mark.parametrize(("el", "expected"), [
    (message("chat", BODY), True),
    (message("normal", BODY), True),
    (message("chat"), False),  # a chat state alone
    (message("chat", ("http://jabber.org/protocol/chatstates", "active")), False),
    (message("headline", BODY), False),
    (message("error", BODY), False),
    (message("groupchat", BODY), False),  # not in user archives
    (message("chat", BODY, (NS_HINTS, "no-store")), False),
    (message("chat", BODY, (NS_HINTS, "no-permanent-store")), False),
    (message("chat", ("urn:xmpp:chat-markers:0", "displayed"), (NS_HINTS, "store")), True),
    (message("chat", BODY, (NS_HINTS, "store"), (NS_HINTS, "no-store")), False),
    (message("error", (NS_HINTS, "store")), False),
])
def test_what_a_user_archive_keeps(el: Element, expected: bool) -> None:
    assert is_archivable(el, el.attrs["type"]) is expected


def test_room_archives_keep_groupchat() -> None:
    assert is_archivable(message("groupchat", BODY), "groupchat", groupchat=True)


# ---------------------------------------------------------------------------- stanza ids


def with_ids(*ids: dict[str, str], origin: dict[str, str] | None = None) -> Element:
    el = message("chat", BODY)
    for attrs in ids:
        el.sub(NS_SID, "stanza-id", attrs)
    if origin is not None:
        el.sub(NS_SID, "origin-id", origin)
    return el


OWNED = {"juliet@capulet.lit", "capulet.lit"}


def test_restamp_replaces_forged_ids_and_keeps_others() -> None:
    el = with_ids({"id": "forged", "by": "juliet@capulet.lit"},
                  {"id": "forged2", "by": "Juliet@CAPULET.lit"},  # the same JID, prepared
                  {"id": "forged3", "by": "capulet.lit"},
                  {"id": "room", "by": "room@muc.example"},
                  origin={"id": "client-id"})
    out = restamp(el, OWNED, ("ours", "juliet@capulet.lit"))
    assert stanza_ids(out) == {"room@muc.example": "room", "juliet@capulet.lit": "ours"}
    origin = out.find(NS_SID, "origin-id")
    assert origin is not None and origin.attrs == {"id": "client-id"}  # XEP-0359 §3.2
    assert stanza_ids(el)["juliet@capulet.lit"] == "forged"  # the input is not changed
    assert out.find(NS_CLIENT, "body") is not None


def test_restamp_cleans_malformed_sid_elements() -> None:
    el = with_ids({"id": "x", "by": "room@muc.example", "evil": "1"}, {"by": "a@b"},
                  {"id": "y", "by": "@@"}, origin={"id": "o", "by": "someone@else"})
    bad_child = el.find_all(NS_SID, "stanza-id")[0]
    bad_child.sub("urn:example", "payload")
    out = restamp(el, OWNED)
    (kept,) = out.find_all(NS_SID, "stanza-id")
    assert kept.attrs == {"id": "x", "by": "room@muc.example"} and not kept.children
    origin = out.find(NS_SID, "origin-id")
    assert origin is not None and origin.attrs == {"id": "o"}


def test_restamp_changes_nothing_when_nothing_is_wrong() -> None:
    el = with_ids({"id": "room", "by": "room@muc.example"}, origin={"id": "o"})
    assert restamp(el, OWNED) is el


# ---------------------------------------------------------------------------- preferences


def prefs_element(default: str | None, always: tuple[str, ...] | list[str] = (),
                  never: tuple[str, ...] | list[str] = ()) -> Element:
    attrs = {} if default is None else {"default": default}
    el = Element(NS_MAM, "prefs", attrs)
    for name, jids in (("always", always), ("never", never)):
        listing = el.sub(NS_MAM, name)
        for jid in jids:
            listing.sub(NS_MAM, "jid", text=jid)
    return el


def test_prefs_rules() -> None:
    prefs = ArchivePrefs.from_element(prefs_element(
        "roster", always=["romeo@montague.lit"], never=["montague@montague.lit",
                                                        "nurse@capulet.lit/kitchen"]))
    assert prefs.rule_for(JID.parse("romeo@montague.lit/orchard")) == "always"
    assert prefs.rule_for(JID.parse("montague@montague.lit")) == "never"
    assert prefs.rule_for(JID.parse("nurse@capulet.lit/kitchen")) == "never"
    assert prefs.rule_for(JID.parse("nurse@capulet.lit/garden")) == "roster"  # full JID only
    assert prefs.rule_for(JID.parse("tybalt@capulet.lit")) == "roster"


def test_a_jid_in_both_lists_is_not_archived() -> None:
    prefs = ArchivePrefs("always", (JID.parse("a@b"),), (JID.parse("a@b"),))
    assert prefs.rule_for(JID.parse("a@b/c")) == "never"


def test_prefs_round_trip_through_json_and_xml() -> None:
    prefs = ArchivePrefs("never", (JID.parse("a@b"), JID.parse("c@d/e")), (JID.parse("f@g"),))
    assert ArchivePrefs.from_json(prefs.to_json()) == prefs
    assert ArchivePrefs.from_element(prefs.to_element()) == prefs
    empty = ArchivePrefs("always").to_element()
    assert [c.name for c in empty.elements()] == ["always", "never"]  # present even if empty


@pytest.mark.parametrize(("el", "condition"), [
    (prefs_element(None), SEC.BAD_REQUEST),
    (prefs_element("sometimes"), SEC.BAD_REQUEST),
    (prefs_element("always", always=["@bad"]), SEC.JID_MALFORMED),
    (prefs_element("always", never=[f"u{i}@x" for i in range(MAX_PREF_JIDS + 1)]),
     SEC.NOT_ACCEPTABLE),
])
def test_prefs_refusals(el: Element, condition: StanzaErrorCondition) -> None:
    with pytest.raises(StanzaError) as caught:
        ArchivePrefs.from_element(el)
    assert caught.value.condition is condition


@pytest.mark.parametrize("text", ["[]", '{"default": "maybe"}', '{"default": "always", '
                                  '"never": "a@b"}', '{"default":"always","always":["@"]}'])
def test_prefs_json_refusals(text: str) -> None:
    with pytest.raises(ValueError):
        ArchivePrefs.from_json(text)
