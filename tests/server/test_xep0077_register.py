"""XEP-0077 in-band registration on a real host: off by default, the form, new accounts
(legacy fields and data form), the password rule, conflicts, the per-IP limit, password
change and account removal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.errors import StreamErrorCondition
from stockade.core.sasl import SCRAM_HASHES, derive_credential
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0077_register import (
    NS_DATA,
    NS_FEATURE,
    NS_REGISTER,
    password_problem,
)
from tests.server.small_modules import condition, error_text, open_host, query, subscribe
from tests.server.test_routing import online

GOOD = "Correct horse 42"
ENABLED: dict[str, dict[str, object]] = {
    "register": {"enabled": True, "max_registrations_per_ip_per_hour": 2}}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host(tmp_path, "juliet", "romeo", config=ENABLED) as h:
        yield h


def register_iq(type_: str, *, username: str | None = None, password: str | None = None,
                form: dict[str, str] | None = None, remove: bool = False) -> Element:
    iq = Element(NS_CLIENT, "iq", {"type": type_, "id": "reg1"})
    q = iq.sub(NS_REGISTER, "query")
    if remove:
        q.sub(NS_REGISTER, "remove")
    for name, value in (("username", username), ("password", password)):
        if value is not None:
            q.sub(NS_REGISTER, name, text=value)
    if form is not None:
        x = q.sub(NS_DATA, "x", {"type": "submit"})
        for var, value in form.items():
            x.sub(NS_DATA, "field", {"var": var}).sub(NS_DATA, "value", text=value)
    return iq


async def preauth(host: Host, iq: Element, peer: str = "192.0.2.1") -> Element:
    reply = await host.preauth_iqs[(NS_REGISTER, "query")].handler(iq, peer, "example.com")
    assert reply is not None and reply.get("id") == "reg1"
    return reply


async def logs_in(host: Host, username: str, password: str,
                  hashes: tuple[str, ...] = tuple(SCRAM_HASHES)) -> bool:
    """Whether SCRAM keys for ``password`` are stored for each of ``hashes``."""
    for name in hashes:
        stored = await host.storage.get_credential(username, name)
        if stored is None:
            return False
        derived = derive_credential(password, name, stored.iterations, stored.salt)
        if derived.stored_key != stored.stored_key:
            return False
    return True


def test_password_rule() -> None:
    assert password_problem(GOOD, "bill", 10, 2) is None
    assert "10 characters" in (password_problem("Short1", "bill", 10, 2) or "")
    assert "mix" in (password_problem("alllowercaseletters", "bill", 10, 2) or "")
    assert password_problem("alllowercaseletters", "bill", 10, 1) is None
    assert "different" in (password_problem("aaaaaaaaA1", "bill", 10, 2) or "")
    assert "username" in (password_problem("MyNameIsBill99", "bill", 10, 2) or "")
    assert password_problem("\u00e9t\u00e9 \u00e0 Paris!", "bill", 10, 2) is None  # non-ASCII


async def test_off_by_default(tmp_path: Path) -> None:
    async with open_host(tmp_path, "juliet") as host:
        assert host.preauth_iqs == {}
        assert not any(NS_FEATURE in xml for xml in host.stream_features["sasl"])
        juliet, conn = await online(host, "juliet", "balcony")
        reply = await query(host, juliet, conn, "get", Element(NS_REGISTER, "query"))
    assert condition(reply) == "service-unavailable"


async def test_form_offers_legacy_fields_and_a_data_form(host: Host) -> None:
    assert f"<register xmlns='{NS_FEATURE}'/>" in host.stream_features["sasl"]
    reply = await preauth(host, register_iq("get"))
    q = reply.find(NS_REGISTER, "query")
    assert reply.get("type") == "result" and q is not None
    assert q.find(NS_REGISTER, "username") is not None
    assert q.find(NS_REGISTER, "password") is not None
    form = q.find(NS_DATA, "x")
    assert form is not None
    assert [f.get("var") for f in form.find_all(NS_DATA, "field")] == [
        "FORM_TYPE", "username", "password"]


async def test_register_with_fields_then_with_a_form(host: Host) -> None:
    reply = await preauth(host, register_iq("set", username="Bill", password=GOOD))
    assert condition(reply) is None
    assert await logs_in(host, "bill", GOOD)  # prepared username, SCRAM keys only
    reply = await preauth(host, register_iq("set", form={"username": "anne",
                                                         "password": "Hathaway 1582"}),
                          peer="192.0.2.2")
    assert condition(reply) is None and await logs_in(host, "anne", "Hathaway 1582")


async def test_conflict_weak_password_and_bad_username(host: Host) -> None:
    for iq, expected, text in (
            (register_iq("set", username="juliet", password=GOOD), "conflict", "taken"),
            (register_iq("set", username="bill", password="short"), "not-acceptable",
             "characters"),
            (register_iq("set", username="b@d name", password=GOOD), "not-acceptable",
             "username"),
            (register_iq("set", username="bill", password=""), "not-acceptable",
             "password"),
            (register_iq("set", password=GOOD), "not-acceptable", "username"),
            (register_iq("set", remove=True), "registration-required", "log in")):
        reply = await preauth(host, iq, peer="198.51.100.7")
        assert condition(reply) == expected, (iq, reply)
        assert text in error_text(reply)
    assert not await host.storage.account_exists("bill")
    assert await logs_in(host, "juliet", "secret-pass", ("SHA-256",))  # conflict: untouched


async def test_registrations_per_ip_are_limited(host: Host) -> None:
    for n in range(2):
        reply = await preauth(host, register_iq("set", username=f"u{n}", password=GOOD))
        assert condition(reply) is None
    third = await preauth(host, register_iq("set", username="u2", password=GOOD))
    assert condition(third) == "policy-violation"
    assert third.find(NS_CLIENT, "error").get("type") == "wait"  # type: ignore[union-attr]
    other = await preauth(host, register_iq("set", username="u2", password=GOOD),
                          peer="192.0.2.99")
    assert condition(other) is None


async def test_results_and_errors_are_not_answered(host: Host) -> None:
    handler = host.preauth_iqs[(NS_REGISTER, "query")].handler
    assert await handler(register_iq("result"), "192.0.2.1", "example.com") is None


async def test_logged_in_get_says_registered(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    reply = await query(host, juliet, conn, "get", Element(NS_REGISTER, "query"))
    q = reply.find(NS_REGISTER, "query")
    assert q is not None and q.find(NS_REGISTER, "registered") is not None
    assert q.find(NS_REGISTER, "username").text == "juliet"  # type: ignore[union-attr]


async def test_password_change(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")

    def change(username: str, password: str) -> Element:
        q = Element(NS_REGISTER, "query")
        q.sub(NS_REGISTER, "username", text=username)
        q.sub(NS_REGISTER, "password", text=password)
        return q

    assert condition(await query(host, juliet, conn, "set", change("romeo", GOOD))) == \
        "not-allowed"
    assert condition(await query(host, juliet, conn, "set", change("juliet", ""))) == \
        "not-acceptable"  # §3.3: never a null password
    assert condition(await query(host, juliet, conn, "set", change("juliet", "weak"))) == \
        "not-acceptable"
    assert await logs_in(host, "juliet", "secret-pass", ("SHA-256",))
    reply = await query(host, juliet, conn, "set", change("Juliet", GOOD), to="example.com")
    assert condition(reply) is None
    assert await logs_in(host, "juliet", GOOD)
    assert await logs_in(host, "romeo", "secret-pass", ("SHA-256",))


async def test_account_removal(host: Host) -> None:
    await subscribe(host, "juliet", "romeo")
    await subscribe(host, "romeo", "juliet")
    await host.storage.put_data("juliet", "vcard-temp", "vcard", "<vCard xmlns='vcard-temp'/>")
    juliet, jconn = await online(host, "juliet", "balcony")
    _, other = await online(host, "juliet", "chamber")
    romeo, rconn = await online(host, "romeo", "orchard")
    romeo.interested = True
    bad = Element(NS_REGISTER, "query")
    bad.sub(NS_REGISTER, "remove")
    bad.sub(NS_REGISTER, "username", text="juliet")
    assert condition(await query(host, juliet, jconn, "set", bad)) == "bad-request"
    remove = Element(NS_REGISTER, "query")
    remove.sub(NS_REGISTER, "remove")
    reply = await query(host, juliet, jconn, "set", remove)
    assert condition(reply) is None  # §3.2: the result, before the stream ends
    assert jconn.terminated is StreamErrorCondition.NOT_AUTHORIZED
    assert other.terminated is StreamErrorCondition.NOT_AUTHORIZED
    assert not await host.storage.account_exists("juliet")
    assert await host.storage.get_data("juliet", "vcard-temp", "vcard") is None
    # Romeo saw her leave and lost the subscription both ways.
    assert ("presence", "unavailable") in rconn.kinds()
    item = await host.storage.get_roster_item("romeo", "juliet@example.com")
    assert item is None or item.subscription == "none"


def test_rate_limit_counts_an_ipv6_slash64_as_one_client() -> None:
    from stockade.server.modules.xep0077_register import _RateLimit

    limit = _RateLimit(2)
    assert limit.take("2001:db8:1:2::1", 0.0) and limit.take("2001:db8:1:2::ffff", 1.0)
    assert not limit.take("2001:db8:1:2:abcd::9", 2.0)  # same /64: the third is refused
    assert limit.take("2001:db8:1:3::1", 3.0)  # another /64 is another client
    assert limit.take("192.0.2.7", 4.0) and limit.take("::ffff:192.0.2.7", 5.0)
    assert not limit.take("192.0.2.7", 6.0)  # the IPv4-mapped form is the same address


def test_a_full_rate_limit_table_forgets_the_oldest_instead_of_refusing_everyone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.server.modules import xep0077_register

    monkeypatch.setattr(xep0077_register, "MAX_TRACKED_IPS", 3)
    limit = xep0077_register._RateLimit(1)
    for i in range(3):
        assert limit.take(f"198.51.100.{i}", float(i))
    assert limit.take("203.0.113.9", 10.0)  # a newcomer still gets in
    assert limit.take("198.51.100.0", 11.0)  # the oldest was forgotten to make room
