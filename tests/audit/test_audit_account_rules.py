"""The ``--account`` rules, sans-I/O: which mechanism the auditor uses, how disco#info and
bind answers are read, and how features become findings."""

from __future__ import annotations

import pytest

from stockade.audit import runner
from stockade.core.audit import account as rules
from stockade.core.audit.model import Endpoint, Finding, Service, Severity
from stockade.core.xml.element import Element
from stockade.core.xml.parser import XMLStreamParser

S = Severity
ALL_SERVER = rules.DiscoInfo(frozenset({("server", "im"), rules.PEP_IDENTITY}),
                             frozenset({rules.NS_CARBONS, rules.NS_BLOCKING,
                                        rules.PUBLISH_OPTIONS}))
ALL_ACCOUNT = rules.DiscoInfo(frozenset({rules.PEP_IDENTITY}), frozenset({rules.NS_MAM}))
NOTHING = rules.DiscoInfo(frozenset({("server", "im")}), frozenset())


def parse(xml: str) -> Element:
    parser = XMLStreamParser()
    events = parser.feed(b"<stream:stream xmlns='jabber:client' "
                         b"xmlns:stream='http://etherx.jabber.org/streams'>" + xml.encode())
    (element,) = [e for e in events if isinstance(e, Element)]
    return element


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


@pytest.mark.parametrize(("offered", "bindings", "expected"), [
    (["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"], [],
     ("SCRAM-SHA-256-PLUS", True)),
    (["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], ["tls-exporter"], ("SCRAM-SHA-256", False)),
    (["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], ["tls-exporter", "tls-server-end-point"],
     ("SCRAM-SHA-256-PLUS", True)),
    (["SCRAM-SHA-1", "PLAIN"], [], ("SCRAM-SHA-1", False)),
    (["SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS"], [], ("SCRAM-SHA-512-PLUS", True)),
])
def test_strongest_scram_with_a_usable_channel_binding(
        offered: list[str], bindings: list[str], expected: tuple[str, bool]) -> None:
    chosen = rules.choose_mechanism(offered, bindings)
    assert chosen is not None
    assert (chosen.name, chosen.plus) == expected
    assert chosen.hash_name == expected[0].removeprefix("SCRAM-").removesuffix("-PLUS")
    assert chosen.server_offers_plus == any(m.endswith("-PLUS") for m in offered)


@pytest.mark.parametrize("offered", [["PLAIN"], [], ["EXTERNAL", "X-OAUTH2"]])
def test_never_plain_or_anything_but_scram(offered: list[str]) -> None:
    assert rules.choose_mechanism(offered, []) is None


def test_disco_info_result_is_read() -> None:
    info = rules.parse_disco_info(parse(
        "<iq type='result' id='x'><query xmlns='http://jabber.org/protocol/disco#info'>"
        "<identity category='pubsub' type='pep'/><feature var='urn:xmpp:mam:2'/>"
        "<feature var='urn:xmpp:carbons:2'/><feature/></query></iq>"))
    assert info == rules.DiscoInfo(frozenset({("pubsub", "pep")}),
                                   frozenset({"urn:xmpp:mam:2", "urn:xmpp:carbons:2"}))


@pytest.mark.parametrize("xml", [
    "<iq type='error' id='x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<iq type='result' id='x'/>",
    "<iq type='result' id='x'><query xmlns='jabber:iq:version'/></iq>",
])
def test_disco_errors_and_odd_results_are_no_answer(xml: str) -> None:
    assert rules.parse_disco_info(parse(xml)) is None
    assert rules.parse_disco_info(None) is None


def test_bound_jid() -> None:
    ok = parse("<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<jid>a@example.org/r</jid></bind></iq>")
    assert rules.bound_jid(ok) == "a@example.org/r"
    refused = parse("<iq type='error' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    "<jid>a@example.org/r</jid></bind></iq>")
    assert rules.bound_jid(refused) is None
    assert rules.bound_jid(parse("<iq type='result' id='b'/>")) is None


def test_every_feature_present_passes() -> None:
    found = by_check(rules.rule_features(ALL_SERVER, ALL_ACCOUNT))
    assert set(found) == {"account.carbons", "account.mam", "account.blocking", "account.pep",
                          "account.pep.publish_options"}
    assert {f.severity for f in found.values()} == {S.PASS}
    assert found["account.mam"].observed.endswith("advertised by the account")
    assert "server and account" in found["account.pep"].observed


def test_missing_omemo_prerequisites_are_graded_with_fixes() -> None:
    found = by_check(rules.rule_features(NOTHING, None))
    assert found["account.pep"].severity is S.MEDIUM
    assert found["account.pep.publish_options"].severity is S.LOW
    assert found["account.blocking"].severity is S.LOW
    assert found["account.carbons"].severity is S.INFO
    assert found["account.mam"].severity is S.INFO
    assert "account: no disco#info answer" in found["account.mam"].observed
    for f in found.values():
        assert f.why and f.fix is not None
        assert f.fix.stockade and f.fix.prosody and f.fix.ejabberd
    assert found["account.pep"].fix is not None
    assert "mod_pep" in found["account.pep"].fix.prosody
    assert "mod_pubsub" in found["account.pep"].fix.ejabberd


def test_pep_without_publish_options() -> None:
    server = rules.DiscoInfo(frozenset({rules.PEP_IDENTITY}), frozenset())
    found = by_check(rules.rule_features(server, None))
    assert found["account.pep"].severity is S.PASS
    assert found["account.pep.publish_options"].severity is S.LOW


def test_stream_management_from_the_post_login_features() -> None:
    with_sm = parse("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                    "<sm xmlns='urn:xmpp:sm:3'/></stream:features>")
    without = parse("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                    "<sm xmlns='urn:xmpp:sm:2'/></stream:features>")
    assert rules.rule_sm(with_sm).severity is S.PASS
    assert rules.rule_sm(without).severity is S.INFO
    assert rules.rule_sm(None).severity is S.INFO


def test_sessions_rule() -> None:
    seen = rules.rule_sessions("a@x/1", "a@x/2", first_saw=True, second_saw=False, wait_s=2)
    assert seen.severity is S.PASS and "a@x/2" in seen.observed
    unseen = rules.rule_sessions("a@x/1", "a@x/2", first_saw=False, second_saw=True, wait_s=2)
    assert unseen.severity is S.LOW and unseen.fix is not None and unseen.why


def test_no_login_makes_every_check_not_tested_and_says_why() -> None:
    findings = rules.rule_login_refused("SCRAM", "<failure><not-authorized/></failure>")
    assert {f.severity for f in findings} == {S.NOT_TESTED}
    checks = [f.check for f in findings]
    assert checks == ["account.login"] + [c for c, _ in rules.FEATURE_CHECKS]
    assert "not-authorized" in findings[0].observed
    assert "password file" in findings[0].observed
    assert "PLAIN" in rules.rule_no_scram(["PLAIN"])[0].observed
    assert "--ca-file" in rules.rule_unverified_certificate("self-signed")[0].observed


def test_disco_requests_are_well_formed() -> None:
    iq = parse(rules.disco_info_iq("a@example.org", rules.DISCO_ACCOUNT_ID).decode())
    assert (iq.get("to"), iq.get("id"), iq.get("type")) == \
        ("a@example.org", rules.DISCO_ACCOUNT_ID, "get")
    assert iq.find(rules.NS_DISCO_INFO, "query") is not None
    bind = parse(rules.bind_iq("res").decode())
    assert bind.find(rules.NS_BIND, "bind") is not None


async def test_the_account_probe_runs_only_when_given_and_only_on_client_endpoints(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert [p.area for p in runner.default_probes()] == ["tls", "cert", "stream"]
    calls: list[tuple[Endpoint, str, str, str | None]] = []

    async def fake_probe(endpoint: Endpoint, *, timeout_s: float, jid: str, password: str,
                         ca_file: str | None) -> list[Finding]:
        calls.append((endpoint, jid, password, ca_file))
        return [Finding("account.login", "t", S.PASS, "ok")]

    from stockade.audit import account
    monkeypatch.setattr(account, "probe", fake_probe)
    login = runner.AccountLogin("a@example.org", "pw")
    assert "pw" not in repr(login)
    (probe,) = [p for p in runner.default_probes("ca.pem", login) if p.area == "account"]
    c2s = Endpoint("example.org", "127.0.0.1", 5222, Service.C2S_STARTTLS)
    s2s = Endpoint("example.org", "127.0.0.1", 5269, Service.S2S_STARTTLS)
    assert await probe.run(s2s, 1.0) == []
    assert [f.check for f in await probe.run(c2s, 1.0)] == ["account.login"]
    assert calls == [(c2s, "a@example.org", "pw", "ca.pem")]
