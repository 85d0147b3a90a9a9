"""XEP-0115 verification strings and the checks before a 'ver' is trusted (§5, §8.3)."""

from __future__ import annotations

import pytest

from stockade.core.pubsub.caps import (
    NS_CAPS,
    NS_DATA,
    NS_DISCO_INFO,
    CapsClaim,
    CapsMismatch,
    compute_ver,
    disco_query,
    notify_nodes,
    parse_caps,
    verification_input,
    verified_features,
)
from stockade.core.xml import XML_LANG, Element

BASIC_FEATURES = ["http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
                  "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"]


def query(identities: list[dict[str, str]], features: list[str]) -> Element:
    q = Element(NS_DISCO_INFO, "query")
    for attrs in identities:
        q.sub(NS_DISCO_INFO, "identity", attrs)
    for var in features:
        q.sub(NS_DISCO_INFO, "feature", {"var": var})
    return q


def add_form(q: Element, fields: list[tuple[str, list[str], str | None]]) -> Element:
    x = q.sub(NS_DATA, "x", {"type": "result"})
    for var, values, type_ in fields:
        attrs = {"var": var}
        if type_:
            attrs["type"] = type_
        field = x.sub(NS_DATA, "field", attrs)
        for value in values:
            field.sub(NS_DATA, "value", text=value)
    return x


def answer(q: Element, type_: str = "result") -> Element:
    iq = Element("jabber:client", "iq", {"type": type_, "id": "x"})
    iq.append(q)
    return iq


# XEP-0115 §5.2 "Simple Generation Example" (the XEP states this result).
def test_simple_generation_example() -> None:
    q = query([{"category": "client", "type": "pc", "name": "Exodus 0.9.1"}], BASIC_FEATURES)
    assert verification_input(q) == (
        "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<"
        "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
        "http://jabber.org/protocol/muc<")
    assert compute_ver(q) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def _complex() -> Element:
    # XEP-0115 §5.3 "Complex Generation Example": two languages and a software form.
    q = query([{"category": "client", "type": "pc", "name": "Psi 0.11", XML_LANG: "en"},
               {"category": "client", "type": "pc", "name": "Ψ 0.11", XML_LANG: "el"}],
              list(reversed(BASIC_FEATURES)))
    add_form(q, [("FORM_TYPE", ["urn:xmpp:dataforms:softwareinfo"], "hidden"),
                 ("software_version", ["0.11"], None), ("os", ["Mac"], None),
                 ("ip_version", ["ipv6", "ipv4"], "text-multi"),
                 ("os_version", ["10.5.1"], None), ("software", ["Psi"], None)])
    return q


def test_complex_generation_example_with_languages_and_forms() -> None:
    assert compute_ver(_complex()) == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_other_hashes() -> None:
    q = _complex()
    assert compute_ver(q, "sha-256") != compute_ver(q, "sha-1")
    assert len(compute_ver(q, "sha-512")) == 88  # base64 of 64 bytes
    with pytest.raises(CapsMismatch, match="unsupported hash"):
        compute_ver(q, "md5")


def test_forms_without_hidden_form_type_are_ignored() -> None:
    q = query([{"category": "client", "type": "pc", "name": "Exodus 0.9.1"}], BASIC_FEATURES)
    add_form(q, [("FORM_TYPE", ["urn:x"], None), ("a", ["1"], None)])  # not hidden
    add_form(q, [("b", ["2"], None)])  # no FORM_TYPE
    assert compute_ver(q) == "QgayPKawpkPSDYmwT/WM94uAlu0="


@pytest.mark.parametrize("mutate", [
    lambda q: q.sub(NS_DISCO_INFO, "feature", {"var": BASIC_FEATURES[0]}),
    lambda q: q.sub(NS_DISCO_INFO, "identity", {"category": "client", "type": "pc",
                                                "name": "Exodus 0.9.1"}),
    lambda q: [add_form(q, [("FORM_TYPE", ["urn:x"], "hidden")]) for _ in range(2)],
    lambda q: add_form(q, [("FORM_TYPE", ["urn:x", "urn:y"], "hidden")]),
], ids=["duplicate-feature", "duplicate-identity", "duplicate-form-type",
        "form-type-two-values"])
def test_ill_formed_answers_are_rejected(mutate: object) -> None:
    q = query([{"category": "client", "type": "pc", "name": "Exodus 0.9.1"}], BASIC_FEATURES)
    mutate(q)  # type: ignore[operator]
    with pytest.raises(CapsMismatch):
        compute_ver(q)


def presence_with(**attrs: str) -> Element:
    p = Element("jabber:client", "presence")
    p.sub(NS_CAPS, "c", attrs)
    return p


def test_parse_caps() -> None:
    claim = parse_caps(presence_with(hash="sha-1", node="http://client", ver="abc="))
    assert claim == CapsClaim("sha-1", "http://client", "abc=")
    assert claim.key == ("sha-1", "abc=")
    assert parse_caps(Element("jabber:client", "presence")) is None
    # §8.4 legacy caps (no 'hash') cannot be verified; nor can an unknown hash.
    assert parse_caps(presence_with(node="http://client", ver="1.0", ext="x")) is None
    assert parse_caps(presence_with(hash="md5", node="n", ver="v")) is None
    assert parse_caps(presence_with(hash="sha-1", node="n", ver="v" * 200)) is None
    assert parse_caps(presence_with(hash="sha-1", ver="v")) is None


def test_disco_query_names_node_and_ver() -> None:
    iq = disco_query(CapsClaim("sha-1", "http://client", "abc="))
    assert iq.get("type") == "get"
    q = iq.find(NS_DISCO_INFO, "query")
    assert q is not None and q.get("node") == "http://client#abc="


def test_verified_features_accepts_only_a_matching_answer() -> None:
    features = [*BASIC_FEATURES, "urn:xmpp:omemo:2:devices+notify"]
    q = query([{"category": "client", "type": "phone"}], features)
    claim = CapsClaim("sha-1", "n", compute_ver(q))
    assert verified_features(answer(q), claim) == frozenset(features)
    liar = CapsClaim("sha-1", "n", compute_ver(query([], BASIC_FEATURES)))
    with pytest.raises(CapsMismatch, match="does not hash"):
        verified_features(answer(q), liar)
    with pytest.raises(CapsMismatch):
        verified_features(answer(q, "error"), claim)
    with pytest.raises(CapsMismatch):
        verified_features(Element("jabber:client", "iq", {"type": "result"}), claim)


def test_notify_nodes() -> None:
    assert notify_nodes(["urn:xmpp:avatar:metadata+notify", "urn:xmpp:avatar:metadata",
                         "+notify", "http://jabber.org/protocol/nick+notify"]) == {
        "urn:xmpp:avatar:metadata", "http://jabber.org/protocol/nick"}
