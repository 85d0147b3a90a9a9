"""JIDs, RFC 7622 (examples from §3.5 and §3.6)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.core.errors import JIDError
from stockade.core.jid import JID


@pytest.mark.parametrize(("text", "local", "domain", "resource"), [
    ("juliet@example.com", "juliet", "example.com", None),
    ("juliet@example.com/foo", "juliet", "example.com", "foo"),
    ("juliet@example.com/foo bar", "juliet", "example.com", "foo bar"),
    ("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar", "example.com", None),
    ("fussball@example.com", "fussball", "example.com", None),
    ("fußball@example.com", "fußball", "example.com", None),
    ("π@example.com", "π", "example.com", None),
    ("Σ@example.com/foo", "σ", "example.com", "foo"),  # noqa: RUF001 - case mapping
    ("example.com", None, "example.com", None),
    ("example.com/foobar", None, "example.com", "foobar"),
    ("a.example.com/b@example.net", None, "a.example.com", "b@example.net"),
    ("Juliet@EXAMPLE.com/Balcony", "juliet", "example.com", "Balcony"),
    ("juliet@example.com.", "juliet", "example.com", None),
    ("juliet@[::1]", "juliet", "[::1]", None),
])
def test_valid(text: str, local: str | None, domain: str, resource: str | None) -> None:
    jid = JID.parse(text)
    assert (jid.local, jid.domain, jid.resource) == (local, domain, resource)


@pytest.mark.parametrize("text", [
    '"juliet"@example.com',
    "foo bar@example.com",
    "henry\u2163@example.com",
    "\u265a@example.com",
    "@example.com",
    "user@example.com/",
    "user@/foo",
    "",
    "a@b@c",
    "juliet@exa mple.com",
    "x" * 1024 + "@example.com",
    "juliet@example.com/" + "r" * 1024,
    "juliet@" + ".".join(["a" * 63] * 17),
])
def test_invalid(text: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(text)


def test_part_limit_is_in_bytes_not_characters() -> None:
    JID.parse("a" * 1023 + "@example.com")
    with pytest.raises(JIDError):
        JID.parse("é" * 512 + "@example.com")  # 1024 bytes in UTF-8


def test_bare_and_str() -> None:
    jid = JID.parse("romeo@montague.lit/orchard")
    assert str(jid.bare) == "romeo@montague.lit"
    assert jid.bare.is_bare and not jid.is_bare
    assert str(jid.bare.with_resource("balcony")) == "romeo@montague.lit/balcony"
    assert JID.parse("montague.lit").is_domain


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_jid_error(text: str) -> None:
    try:
        jid = JID.parse(text)
    except JIDError:
        return
    assert JID.parse(str(jid)) == jid  # a prepared JID is stable


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z0-9._-]{1,20}", fullmatch=True),
       st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
       st.text(alphabet="abcXYZ019 ._-éßπ@/", min_size=1, max_size=20).filter(
           lambda r: r.strip() == r))
def test_round_trip(local: str, domain: str, resource: str) -> None:
    jid = JID.make(local, domain, resource)
    assert JID.parse(str(jid)) == jid
