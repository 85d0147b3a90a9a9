"""The c2s stream state machine, sans-I/O: RFC 6120 §4-§7 flows and every refusal.

A scripted client (ScramClient for the SASL maths) drives the server core in memory; input is
fed whole, byte by byte and in random splits.
"""

from __future__ import annotations

import base64
import random
import re

import pytest

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.sasl import ScramClient, derive_credential
from stockade.core.stream import events as ev
from stockade.core.stream.c2s import C2SPolicy, C2SServerStream, Phase
from stockade.core.xml import serialize

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
CB = ("tls-server-end-point", b"\x01" * 32)
CRED = derive_credential("pencil-sharp", "SHA-256", 4096)
POLICY = C2SPolicy(domains=frozenset({"example.com"}))


class Driver:
    """Feeds the server core and collects its output."""

    def __init__(self, split: str = "whole", policy: C2SPolicy = POLICY) -> None:
        self.stream = C2SServerStream(policy, stream_id=lambda: "sid")
        self.split = split
        self.rng = random.Random(7)
        self.events: list[ev.Event] = []

    def send(self, data: bytes) -> bytes:
        for chunk in self._chunks(data):
            self.events.extend(self.stream.receive_data(chunk))
        return self.stream.data_to_send()

    def _chunks(self, data: bytes) -> list[bytes]:
        if self.split == "bytes":
            return [data[i:i + 1] for i in range(len(data))]
        if self.split == "random" and len(data) > 2:
            cuts = sorted(self.rng.sample(range(1, len(data)), k=min(5, len(data) - 1)))
            return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        return [data]

    def last(self, kind: type) -> object:
        found = [e for e in self.events if isinstance(e, kind)]
        assert found, f"no {kind.__name__} in {self.events}"
        return found[-1]

    def to_tls(self) -> bytes:
        out = self.send(HEADER)
        assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>" in out
        assert b"mechanisms" not in out
        out = self.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert out == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        self.stream.tls_established(CB)
        return self.send(HEADER)

    def scram_login(self, mech: str = "SCRAM-SHA-256-PLUS", password: str = "pencil-sharp",
                    credential: object = CRED) -> bytes:
        plus = mech.endswith("-PLUS")
        client = ScramClient("SHA-256", "juliet", password, channel_binding=CB if plus else None,
                             plus=plus, server_offers_plus=True)
        first = base64.b64encode(client.first()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech}'>"
                  f"{first}</auth>".encode())
        request = self.last(ev.CredentialsRequested)
        assert request == ev.CredentialsRequested("juliet", "SHA-256")
        self.events.extend(self.stream.provide_credential(credential))  # type: ignore[arg-type]
        out = self.stream.data_to_send()
        challenge = re.search(rb"<challenge[^>]*>([^<]*)</challenge>", out)
        assert challenge, out
        final = client.final(base64.b64decode(challenge.group(1)))
        out = self.send(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                        + base64.b64encode(final) + b"</response>")
        success = re.search(rb"<success[^>]*>([^<]*)</success>", out)
        if success:
            client.verify(base64.b64decode(success.group(1)))
        return out

    def bind(self, resource: str = "balcony") -> bytes:
        out = self.send(HEADER)
        assert b"urn:ietf:params:xml:ns:xmpp-bind" in out
        self.send(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  b"<resource>" + resource.encode() + b"</resource></bind></iq>")
        assert self.last(ev.BindRequested) == ev.BindRequested(resource)
        self.events.extend(self.stream.provide_bind(JID.parse(f"juliet@example.com/{resource}")))
        return self.stream.data_to_send()

    def stream_error(self) -> str:
        failed = self.last(ev.StreamFailed)
        assert isinstance(failed, ev.StreamFailed)
        assert self.stream.phase is Phase.CLOSED
        return failed.condition.value


@pytest.fixture(params=["whole", "bytes", "random"])
def driver(request: pytest.FixtureRequest) -> Driver:
    return Driver(request.param)


def test_full_login_flow(driver: Driver) -> None:
    features = driver.to_tls()
    for mech in ("SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"):
        assert f"<mechanism>{mech}</mechanism>".encode() in features
    assert b"EXTERNAL" not in features  # no client certificate was presented
    assert b"<channel-binding type='tls-server-end-point'/>" in features  # XEP-0440
    out = driver.scram_login()
    assert b"<success" in out
    assert driver.last(ev.AuthSucceeded) == ev.AuthSucceeded("juliet", "SCRAM-SHA-256-PLUS")
    out = driver.bind()
    assert b"<jid>juliet@example.com/balcony</jid>" in out
    assert driver.stream.phase is Phase.ESTABLISHED


def test_stanza_from_is_stamped_and_spoofing_refused(driver: Driver) -> None:
    driver.to_tls()
    driver.scram_login()
    driver.bind()
    driver.send(b"<message to='romeo@example.com'><body>x</body></message>")
    received = driver.last(ev.StanzaReceived)
    assert isinstance(received, ev.StanzaReceived)
    assert str(received.stanza.from_) == "juliet@example.com/balcony"
    assert received.stanza.element.attrs["from"] == "juliet@example.com/balcony"
    driver.send(b"<message from='juliet@example.com' to='romeo@example.com'/>")
    stamped = driver.last(ev.StanzaReceived)
    assert isinstance(stamped, ev.StanzaReceived)
    assert str(stamped.stanza.from_) == "juliet@example.com/balcony"
    out = driver.send(b"<message from='romeo@example.com/x' to='nurse@example.com'/>")
    assert driver.stream_error() == "invalid-from"
    assert b"<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in out


def test_plain_login_over_tls() -> None:
    d = Driver()
    d.to_tls()
    d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
           + base64.b64encode(b"\x00juliet\x00pencil-sharp") + b"</auth>")
    d.events.extend(d.stream.provide_credential(CRED))
    assert b"<success" in d.stream.data_to_send()


def test_plain_authzid_must_match() -> None:
    d = Driver()
    d.to_tls()
    out = d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                 + base64.b64encode(b"romeo@example.com\x00juliet\x00pencil-sharp") + b"</auth>")
    assert b"<invalid-authzid/>" in out


def test_sasl_before_tls_is_refused(driver: Driver) -> None:
    driver.send(HEADER)
    out = driver.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                      + base64.b64encode(b"\x00juliet\x00pencil-sharp") + b"</auth>")
    assert b"<encryption-required/>" in out
    assert driver.stream_error() == "policy-violation"
    assert not any(isinstance(e, ev.CredentialsRequested) for e in driver.events)


@pytest.mark.parametrize("stage", ["pre-tls", "pre-sasl", "pre-bind"])
def test_stanza_before_authentication(stage: str) -> None:
    d = Driver()
    if stage == "pre-tls":
        d.send(HEADER)
    else:
        d.to_tls()
    if stage == "pre-bind":
        d.scram_login()
        d.send(HEADER)
    d.send(b"<message to='romeo@example.com'><body>hi</body></message>")
    assert d.stream_error() == "not-authorized"
    assert not any(isinstance(e, ev.StanzaReceived) for e in d.events)


def test_starttls_injection_is_discarded() -> None:
    """CVE-2011-0411 class: bytes pipelined after <starttls/> never reach the parser."""
    d = Driver()
    d.send(HEADER)
    out = d.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + HEADER
                 + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                 + base64.b64encode(b"\x00juliet\x00pencil-sharp") + b"</auth>")
    assert out == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    assert d.send(b"<message to='x@example.com'/>") == b""  # still discarded
    d.stream.tls_established(CB)
    assert d.stream.phase is Phase.HEADER  # a fresh stream is expected on the TLS layer
    assert not any(isinstance(e, ev.CredentialsRequested) for e in d.events)
    assert b"<mechanisms" in d.send(HEADER)


def test_wrong_password_then_limit(driver: Driver) -> None:
    driver.to_tls()
    for attempt in range(3):
        out = driver.scram_login(password="wrong")
        assert b"<not-authorized/>" in out
        assert driver.last(ev.AuthFailed) == ev.AuthFailed("juliet", "SCRAM-SHA-256-PLUS")
        if attempt < 2:
            assert driver.stream.phase is Phase.SASL
    assert driver.stream_error() == "policy-violation"


def test_unknown_user_looks_like_a_wrong_password() -> None:
    d = Driver()
    d.to_tls()
    out = d.scram_login(credential=None)
    assert out.count(b"<not-authorized/>") == 1 and b"<success" not in out


def test_throttled_login_fails_even_with_the_right_password() -> None:
    d = Driver()
    d.to_tls()
    client = ScramClient("SHA-256", "juliet", "pencil-sharp")
    d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
           + base64.b64encode(client.first()) + b"</auth>")
    d.events.extend(d.stream.provide_credential(CRED, refuse=True))
    challenge = re.search(rb"<challenge[^>]*>([^<]*)</challenge>", d.stream.data_to_send())
    assert challenge
    out = d.send(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                 + base64.b64encode(client.final(base64.b64decode(challenge.group(1))))
                 + b"</response>")
    assert b"<not-authorized/>" in out


def test_plus_downgrade_is_detected() -> None:
    """A client that supports binding but was shown no -PLUS (flag y) must fail."""
    d = Driver()
    d.to_tls()
    client = ScramClient("SHA-256", "juliet", "pencil-sharp", channel_binding=CB,
                         server_offers_plus=False)
    first = client.first()
    assert first.startswith(b"y,")
    out = d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
                 + base64.b64encode(first) + b"</auth>")
    # RFC 5802 §6: "y" while -PLUS was offered means someone stripped it: refuse.
    assert re.search(rb"<failure[^>]*><not-authorized/></failure>", out), out
    assert not any(isinstance(e, ev.CredentialsRequested) for e in d.events)


def test_unoffered_mechanism() -> None:
    d = Driver()
    d.to_tls()
    out = d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
    assert b"<invalid-mechanism/>" in out


def test_bad_base64() -> None:
    d = Driver()
    d.to_tls()
    out = d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>")
    assert b"<incorrect-encoding/>" in out
    # Nothing was checked, so login throttling must not count it against anyone.
    assert d.last(ev.AuthFailed) == ev.AuthFailed(None, "PLAIN", credentials_tested=False)


def test_external_offered_only_with_a_client_certificate() -> None:
    d = Driver()
    d.send(HEADER)
    d.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    d.stream.tls_established(CB, has_client_cert=True)
    assert b"<mechanism>EXTERNAL</mechanism>" in d.send(HEADER)
    d.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
    assert d.last(ev.ExternalAuthRequested) == ev.ExternalAuthRequested(None)
    d.events.extend(d.stream.provide_external("juliet"))
    assert b"<success" in d.stream.data_to_send()


def test_bind_conflict_error_is_returned() -> None:
    d = Driver()
    d.to_tls()
    d.scram_login()
    d.send(HEADER)
    d.send(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert d.last(ev.BindRequested) == ev.BindRequested(None)
    d.events.extend(d.stream.provide_bind(StanzaError(StanzaErrorCondition.CONFLICT)))
    out = d.stream.data_to_send()
    assert b"type='error'" in out and b"<conflict" in out
    assert d.stream.phase is Phase.BIND  # the client may try another resource


def test_stanzas_pipelined_during_a_lookup_keep_their_order() -> None:
    d = Driver()
    d.to_tls()
    d.scram_login()
    d.send(HEADER)
    d.send(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
           b"<message id='1' to='a@example.com'/><message id='2' to='a@example.com'/>")
    assert not any(isinstance(e, ev.StanzaReceived) for e in d.events)
    events = d.stream.provide_bind(JID.parse("juliet@example.com/r"))
    ids = [e.stanza.id for e in events if isinstance(e, ev.StanzaReceived)]
    assert ids == ["1", "2"]


@pytest.mark.parametrize(("header", "condition"), [
    (HEADER.replace(b"example.com", b"other.example"), "host-unknown"),
    (HEADER.replace(b"jabber:client", b"jabber:server"), "invalid-namespace"),
    (HEADER.replace(b"streams' version='1.0'", b"streams'"), "unsupported-version"),
    (HEADER.replace(b"xmlns:stream=", b"xmlns:s=").replace(b"stream:stream", b"s:stream"),
     "bad-namespace-prefix"),
])
def test_bad_headers(header: bytes, condition: str) -> None:
    d = Driver()
    out = d.send(header)
    assert d.stream_error() == condition
    assert out.startswith(b"<?xml version='1.0'?><stream:stream")  # header before the error
    assert out.endswith(b"</stream:stream>")


def test_peer_close_is_answered() -> None:
    d = Driver()
    d.send(HEADER)
    assert d.send(b"</stream:stream>").endswith(b"</stream:stream>")
    assert isinstance(d.events[-1], ev.StreamClosed)


def test_bad_to_gets_a_stanza_error_not_a_stream_error() -> None:
    d = Driver()
    d.to_tls()
    d.scram_login()
    d.bind()
    d.send(b"<message to='a@b@c' id='x'><body>hi</body></message>")
    reply = d.last(ev.ReplyReady)
    assert isinstance(reply, ev.ReplyReady) and d.stream.phase is Phase.ESTABLISHED
    text = serialize(reply.element, "jabber:client")
    assert "<jid-malformed" in text and "from=" not in text  # no echo of the bad address
    assert "hi" not in text  # the offending payload is not echoed


def test_own_from_in_another_spelling_is_rewritten_canonically() -> None:
    d = Driver()
    d.to_tls()
    d.scram_login()
    d.bind()
    d.send(b"<message from='JULIET@Example.COM./balcony' to='romeo@example.com'/>")
    received = d.last(ev.StanzaReceived)
    assert isinstance(received, ev.StanzaReceived)
    assert received.stanza.element.attrs["from"] == "juliet@example.com/balcony"


EXTENDED = C2SPolicy(
    domains=frozenset({"example.com"}),
    bind_features=("<csi xmlns='urn:xmpp:csi:0'/>",),
    sasl_features=("<register xmlns='http://jabber.org/features/iq-register'/>",),
    nonzas=frozenset({("urn:xmpp:csi:0", "active")}),
    preauth_iqs=frozenset({("jabber:iq:register", "query")}),
    max_preauth_iqs=2,
)
REGISTER_GET = b"<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>"


def test_module_features_are_offered_in_their_stage() -> None:
    d = Driver(policy=EXTENDED)
    assert b"iq-register" not in d.send(HEADER)  # never before TLS
    d.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    d.stream.tls_established(CB)
    features = d.send(HEADER)
    assert features.endswith(b"<register xmlns='http://jabber.org/features/iq-register'/>"
                             b"</stream:features>")
    assert b"csi" not in features
    d.scram_login()
    assert b"<csi xmlns='urn:xmpp:csi:0'/></stream:features>" in d.send(HEADER)


def test_registered_nonza_reaches_the_shell_and_others_do_not() -> None:
    d = Driver(policy=EXTENDED)
    d.to_tls()
    d.scram_login()
    d.bind()
    d.send(b"<active xmlns='urn:xmpp:csi:0'/>")
    nonza = d.last(ev.NonzaReceived)
    assert isinstance(nonza, ev.NonzaReceived) and nonza.element.tag == ("urn:xmpp:csi:0",
                                                                         "active")
    d.send(b"<inactive xmlns='urn:xmpp:csi:0'/>")
    assert d.stream_error() == "unsupported-stanza-type"


def test_preauth_iq_only_over_tls_only_registered_payloads_and_bounded() -> None:
    plain = Driver(policy=EXTENDED)
    plain.send(HEADER)
    plain.send(REGISTER_GET)
    assert plain.stream_error() == "not-authorized"  # before TLS: a stanza before auth

    d = Driver(policy=EXTENDED)
    d.to_tls()
    d.send(REGISTER_GET)
    request = d.last(ev.PreauthIQReceived)
    assert isinstance(request, ev.PreauthIQReceived) and request.element.get("id") == "r1"
    d.send(REGISTER_GET)
    d.send(REGISTER_GET)
    assert d.stream_error() == "policy-violation"  # max_preauth_iqs=2

    other = Driver(policy=EXTENDED)
    other.to_tls()
    other.send(b"<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>")
    assert other.stream_error() == "not-authorized"


def test_preauth_iq_is_not_accepted_without_registration() -> None:
    d = Driver()
    d.to_tls()
    d.send(REGISTER_GET)
    assert d.stream_error() == "not-authorized"


def test_error_on_a_restarted_stream_is_preceded_by_a_new_header() -> None:
    # RFC 6120 §4.9.1.2: the error comes after our response header, on the restarted stream
    # too (found by the audit's stream probe: the header was skipped after STARTTLS).
    d = Driver()
    d.send(HEADER)
    d.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    d.stream.tls_established(CB)
    out = d.send(b"<!DOCTYPE stream>")
    assert out.startswith(b"<?xml version='1.0'?><stream:stream ")
    assert out.index(b"<stream:stream ") < out.index(b"<restricted-xml")
    assert d.stream_error() == "restricted-xml"
