"""SASL2 (XEP-0388), Bind 2 (XEP-0386), FAST (XEP-0484) and XEP-0198 inline, sans-I/O: a
scripted client drives the server core in memory; the shell's answers are given by hand.

Input is fed whole, byte by byte and in random splits where the flow is the main one.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence

import pytest

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.sasl import ScramClient, derive_credential, ssdp_input
from stockade.core.sasl.ht import FastToken, initiator_message, responder_proof
from stockade.core.stream import events as ev
from stockade.core.stream.c2s import C2SPolicy, C2SServerStream, Phase
from stockade.core.stream.sasl2 import xep0082_datetime
from stockade.core.stream.sm import SMState
from stockade.core.xml import Element, XMLStreamParser, parse_fragment, serialize

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
CB = ("tls-server-end-point", b"\x01" * 32)
PASSWORD = "pencil-sharp"
CRED = derive_credential(PASSWORD, "SHA-256", 4096)
NS_SASL2 = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
NS_SM = "urn:xmpp:sm:3"
NS_CSI = "urn:xmpp:csi:0"
NOW = 1_750_000_000.0
AGENT = "<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>t</software>" \
        "<device>d</device></user-agent>"
CLIENT_ID = "d4565fa7-4d72-4749-b3d3-740edbf87770"
POLICY = C2SPolicy(domains=frozenset({"example.com"}),
                   bind2_features=frozenset({(NS_CSI, "inactive")}), bind2_vars=(NS_CSI,))


class Driver:
    """Feeds the server core, parses what it answers, and plays the shell."""

    def __init__(self, split: str = "whole", policy: C2SPolicy = POLICY, *,
                 clock: bool = True, framed: bool = False) -> None:
        self.stream = C2SServerStream(policy, stream_id=lambda: "sid", framed=framed,
                                      tls_active=framed)
        if clock:
            self.stream.wall_clock = lambda: NOW
        self.split = split
        self.rng = random.Random(11)
        self.events: list[ev.Event] = []
        self.parser = XMLStreamParser()
        self.parser.feed(HEADER.replace(b"to='example.com' ", b""))

    def send(self, data: bytes | str) -> list[Element]:
        raw = data.encode() if isinstance(data, str) else data
        for chunk in self._chunks(raw):
            self.events.extend(self.stream.receive_data(chunk))
        return self.output()

    def output(self) -> list[Element]:
        """What the server sent since the last call, as elements (headers skipped)."""
        data = self.stream.data_to_send()
        if data.startswith(b"<?xml"):
            self.parser = XMLStreamParser()
        items = self.parser.feed(data)
        return [item for item in items if isinstance(item, Element)]

    def answer(self, events: list[ev.Event]) -> list[Element]:
        self.events.extend(events)
        return self.output()

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

    def to_sasl(self) -> Element:
        """Through STARTTLS to the SASL features."""
        self.send(HEADER)
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.stream.tls_established(CB)
        (features,) = self.send(HEADER)
        return features

    def stream_error(self) -> str:
        failed = self.last(ev.StreamFailed)
        assert isinstance(failed, ev.StreamFailed)
        assert self.stream.phase is Phase.CLOSED
        return failed.condition.value


def child(el: Element, ns: str, name: str) -> Element:
    found = el.find(ns, name)
    assert found is not None, f"no <{name} xmlns='{ns}'/> in {serialize(el)}"
    return found


def authenticate(mechanism: str, initial: bytes | None, *extra: str) -> str:
    response = "" if initial is None else \
        f"<initial-response>{base64.b64encode(initial).decode()}</initial-response>"
    return (f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>{response}"
            f"{''.join(extra)}</authenticate>")


def scram(d: Driver, *extra: str, password: str = PASSWORD) -> list[Element]:
    """SCRAM-SHA-256-PLUS over SASL2 up to where the core stops (success or a lookup)."""
    client = ScramClient("SHA-256", "juliet", password, channel_binding=CB, plus=True,
                         server_offers_plus=True)
    d.send(authenticate("SCRAM-SHA-256-PLUS", client.first(), *extra))
    assert d.last(ev.CredentialsRequested) == ev.CredentialsRequested("juliet", "SHA-256")
    (challenge,) = d.answer(d.stream.provide_credential(CRED))
    assert challenge.tag == (NS_SASL2, "challenge")
    final = client.final(base64.b64decode(challenge.text))
    out = d.send(f"<response xmlns='{NS_SASL2}'>{base64.b64encode(final).decode()}</response>")
    d.scram_client = client  # type: ignore[attr-defined]
    return out


def bind(d: Driver, resource: str = "Tag/abc") -> list[Element]:
    request = d.last(ev.BindRequested)
    assert isinstance(request, ev.BindRequested)
    return d.answer(d.stream.provide_bind(JID("juliet", "example.com", resource)))


# ---------------------------------------------------------------------- features


def test_sasl2_is_offered_over_tls_beside_sasl_with_its_inline_features() -> None:
    d = Driver()
    before_tls = d.send(HEADER)
    assert b"sasl:2" not in serialize(before_tls[0]).encode()  # never before TLS
    d.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    d.stream.tls_established(CB)
    (features,) = d.send(HEADER)
    assert features.find(NS_SASL, "mechanisms") is not None  # RFC 6120 SASL stays
    auth = child(features, NS_SASL2, "authentication")
    assert [m.text for m in auth.find_all(NS_SASL2, "mechanism")] == [
        m.text for m in child(features, NS_SASL, "mechanisms").find_all(NS_SASL, "mechanism")]
    inline = child(auth, NS_SASL2, "inline")
    bind_inline = child(child(inline, NS_BIND2, "bind"), NS_BIND2, "inline")
    assert [f.attrs["var"] for f in bind_inline.find_all(NS_BIND2, "feature")] == [NS_SM,
                                                                                  NS_CSI]
    assert inline.find(NS_SM, "sm") is not None  # XEP-0198 resumption inline
    fast = child(inline, NS_FAST, "fast")
    assert [m.text for m in fast.find_all(NS_FAST, "mechanism")] == ["HT-SHA-256-ENDP",
                                                                     "HT-SHA-256-NONE"]


def test_fast_needs_a_clock_and_sasl2_can_be_switched_off() -> None:
    features = Driver(clock=False).to_sasl()
    assert child(child(features, NS_SASL2, "authentication"), NS_SASL2, "inline").find(
        NS_FAST, "fast") is None
    off = Driver(policy=C2SPolicy(domains=frozenset({"example.com"}), sasl2=False))
    assert off.to_sasl().find(NS_SASL2, "authentication") is None
    off.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    assert off.stream_error() == "unsupported-stanza-type"


def test_sasl2_before_tls_is_refused() -> None:
    d = Driver()
    d.send(HEADER)
    out = d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    assert out[0].tag == (NS_SASL2, "failure")
    assert out[0].find(NS_SASL, "encryption-required") is not None
    assert d.stream_error() == "policy-violation"
    assert not [e for e in d.events if isinstance(e, ev.CredentialsRequested)]


# ---------------------------------------------------------------------- SCRAM + Bind 2


@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
def test_one_round_trip_login_binds_and_enables_sm(split: str) -> None:
    d = Driver(split)
    d.to_sasl()
    assert scram(d, AGENT, f"<bind xmlns='{NS_BIND2}'><tag>Awesome XMPP!</tag>"
                           f"<enable xmlns='{NS_SM}' resume='true'/></bind>") == []
    assert d.last(ev.AuthSucceeded) == ev.AuthSucceeded("juliet", "SCRAM-SHA-256-PLUS")
    request = d.last(ev.BindRequested)
    assert isinstance(request, ev.BindRequested) and request.client_id == CLIENT_ID
    assert request.resource is not None
    tag, _, generated = request.resource.partition("/")
    assert tag == "AwesomeXMPP" and len(generated) >= 12  # XEP-0386: "[tag]/[server id]"
    success, features = bind(d, request.resource)
    assert success.tag == (NS_SASL2, "success")
    d.scram_client.verify(base64.b64decode(child(  # type: ignore[attr-defined]
        success, NS_SASL2, "additional-data").text))
    assert child(success, NS_SASL2, "authorization-identifier").text == \
        f"juliet@example.com/{request.resource}"
    enabled = child(child(success, NS_BIND2, "bound"), NS_SM, "enabled")
    assert enabled.attrs["resume"] == "true" and enabled.attrs["id"]
    sm = d.last(ev.SMEnabled)
    assert isinstance(sm, ev.SMEnabled) and sm.state.id == enabled.attrs["id"]
    # No stream restart; the features after it offer no binding and no second SM enable.
    assert features.tag == ("http://etherx.jabber.org/streams", "features")
    assert features.find("urn:ietf:params:xml:ns:xmpp-bind", "bind") is None
    assert features.find(NS_SM, "sm") is None
    assert d.stream.phase is Phase.ESTABLISHED
    d.send("<message to='romeo@example.com'><body>hi</body></message>")
    received = d.last(ev.StanzaReceived)
    assert isinstance(received, ev.StanzaReceived)
    assert str(received.stanza.from_) == f"juliet@example.com/{request.resource}"


def test_plain_without_bind_gets_a_bare_jid_and_rfc6120_binding() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    out = d.answer(d.stream.provide_credential(CRED))
    success, features = out
    assert child(success, NS_SASL2, "authorization-identifier").text == "juliet@example.com"
    assert success.find(NS_SASL2, "additional-data") is None
    assert features.find("urn:ietf:params:xml:ns:xmpp-bind", "bind") is not None
    assert d.stream.phase is Phase.BIND
    d.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert d.last(ev.BindRequested) == ev.BindRequested(None)


def test_a_scram_client_without_initial_response_gets_an_empty_challenge() -> None:
    d = Driver()
    d.to_sasl()
    (challenge,) = d.send(authenticate("SCRAM-SHA-256", None))
    assert challenge.tag == (NS_SASL2, "challenge") and challenge.text == ""
    # A SASL1 <response/> is not part of this exchange.
    d.send(f"<response xmlns='{NS_SASL}'>eA==</response>")
    assert d.stream_error() == "unsupported-stanza-type"


def test_a_refused_bind_still_authenticates_and_offers_rfc6120_binding() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode(), f"<bind xmlns='{NS_BIND2}'/>"))
    d.answer(d.stream.provide_credential(CRED))
    success, features = d.answer(d.stream.provide_bind(
        StanzaError(StanzaErrorCondition.RESOURCE_CONSTRAINT)))
    assert child(success, NS_SASL2, "authorization-identifier").text == "juliet@example.com"
    assert success.find(NS_BIND2, "bound") is None
    assert features.find("urn:ietf:params:xml:ns:xmpp-bind", "bind") is not None


def test_module_session_features_run_inside_bind() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode(),
                        f"<bind xmlns='{NS_BIND2}'><inactive xmlns='{NS_CSI}'/>"
                        "<unknown xmlns='urn:example'/></bind>"))
    d.answer(d.stream.provide_credential(CRED))
    assert bind(d) == []  # waiting for the modules
    request = d.last(ev.Bind2FeaturesRequested)
    assert isinstance(request, ev.Bind2FeaturesRequested)
    assert [e.tag for e in request.elements] == [(NS_CSI, "inactive")]  # unknown: ignored
    success, _ = d.answer(d.stream.provide_bind2_features([Element("urn:example:r", "done")]))
    assert child(child(success, NS_BIND2, "bound"), "urn:example:r", "done") is not None


# ---------------------------------------------------------------------- failures


def test_wrong_password_fails_like_sasl_and_counts() -> None:
    d = Driver()
    d.to_sasl()
    for attempt in range(3):
        failure = scram(d, password="wrong-password")[0]
        assert failure.tag == (NS_SASL2, "failure")
        assert failure.find(NS_SASL, "not-authorized") is not None
        failed = d.last(ev.AuthFailed)
        assert failed == ev.AuthFailed("juliet", "SCRAM-SHA-256-PLUS", True)
        if attempt < 2:
            assert d.stream.phase is Phase.SASL
    assert d.stream_error() == "policy-violation"  # max_auth_failures, as with SASL


def test_throttled_plain_fails_even_with_the_right_password() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    (failure,) = d.answer(d.stream.provide_credential(CRED, refuse=True))
    assert failure.find(NS_SASL, "not-authorized") is not None


@pytest.mark.parametrize(("extra", "condition"), [
    ((f"<fast xmlns='{NS_FAST}'/>",), "malformed-request"),  # fast without FAST mechanism
    ((f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>",),
     "malformed-request"),  # no user-agent id
    ((AGENT, f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-512-NONE'/>"),
     "malformed-request"),  # not offered
    ((AGENT, AGENT), "malformed-request"),
    (("<initial-response>AA==</initial-response>",), "malformed-request"),  # a second one
    (("<user-agent id='has space'/>",), "malformed-request"),
])
def test_bad_authenticate_children_are_malformed(extra: tuple[str, ...],
                                                 condition: str) -> None:
    d = Driver()
    d.to_sasl()
    (failure,) = d.send(authenticate("PLAIN", b"\0juliet\0x", *extra))
    assert failure.tag == (NS_SASL2, "failure")
    assert failure.find(NS_SASL, condition) is not None, serialize(failure)
    assert not [e for e in d.events if isinstance(e, ev.CredentialsRequested)]


@pytest.mark.parametrize(("text", "mechanism", "condition"), [
    ("<initial-response>!!!</initial-response>", "PLAIN", "incorrect-encoding"),
    ("", "DIGEST-MD5", "invalid-mechanism"),
    ("", "", "invalid-mechanism"),
    (f"<fast xmlns='{NS_FAST}' count='0'/>{AGENT}", "HT-SHA-256-NONE", "malformed-request"),
    (f"<fast xmlns='{NS_FAST}' invalidate='yes'/>{AGENT}", "HT-SHA-256-NONE",
     "malformed-request"),
    (AGENT, "HT-SHA-256-NONE", "malformed-request"),  # a token mechanism without <fast/>
])
def test_bad_requests_get_the_sasl_condition(text: str, mechanism: str,
                                             condition: str) -> None:
    d = Driver()
    d.to_sasl()
    (failure,) = d.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>{text}"
                        "</authenticate>")
    assert failure.find(NS_SASL, condition) is not None, serialize(failure)


def test_traffic_while_authentication_is_in_progress_ends_the_stream() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    d.send("<presence/>")  # XEP-0388 §2.4: only response/abort while authenticating
    assert d.stream_error() == "policy-violation"


def test_abort_ends_the_exchange_without_counting_a_failure() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("SCRAM-SHA-256", None))
    (failure,) = d.send(f"<abort xmlns='{NS_SASL2}'/>")
    assert failure.tag == (NS_SASL2, "failure") and failure.find(NS_SASL, "aborted") is not None
    assert not [e for e in d.events if isinstance(e, ev.AuthFailed)]
    assert d.stream.phase is Phase.SASL


def test_authenticate_after_success_is_a_stream_error() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    d.answer(d.stream.provide_credential(CRED))
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode()))
    assert d.stream_error() == "unsupported-stanza-type"  # XEP-0388 §3.8


# ---------------------------------------------------------------------- FAST


def issue(d: Driver, mechanism: str = "HT-SHA-256-ENDP") -> tuple[str, FastToken]:
    """Log in with SCRAM asking for a token; return the token and what the shell stored."""
    d.to_sasl()
    scram(d, AGENT, f"<request-token xmlns='{NS_FAST}' mechanism='{mechanism}'/>")
    issued = d.last(ev.FastTokenIssued)
    assert isinstance(issued, ev.FastTokenIssued)
    assert (issued.username, issued.client_id) == ("juliet", CLIENT_ID)
    success, _ = d.answer(d.stream.provide_fast_stored(True))
    token = child(success, NS_FAST, "token")
    assert token.attrs["expiry"] == xep0082_datetime(NOW + POLICY.fast_token_lifetime_s)
    assert token.attrs["token"].encode() not in issued.token.verifier + issued.token.responder
    return token.attrs["token"], issued.token


def fast_login(token: str, stored: Sequence[FastToken], *extra: str,
               mechanism: str = "HT-SHA-256-ENDP", count: int | None = None,
               refuse: bool = False) -> tuple[Driver, list[Element]]:
    d = Driver()
    d.to_sasl()
    cb = CB[1] if mechanism.endswith("ENDP") else b""
    counted = f" count='{count}'" if count is not None else ""
    d.send(authenticate(mechanism, initiator_message(mechanism, "juliet", token, cb), AGENT,
                        f"<fast xmlns='{NS_FAST}'{counted}/>", *extra))
    request = d.last(ev.FastAuthRequested)
    assert isinstance(request, ev.FastAuthRequested)
    assert (request.username, request.client_id) == ("juliet", CLIENT_ID)
    return d, d.answer(d.stream.provide_fast_auth(request.choose(stored), refuse=refuse))


def test_token_request_then_fast_login_without_the_password() -> None:
    token, stored = issue(Driver())
    d, out = fast_login(token, [stored], f"<bind xmlns='{NS_BIND2}'><tag>t</tag></bind>")
    assert d.last(ev.AuthSucceeded) == ev.AuthSucceeded("juliet", "HT-SHA-256-ENDP")
    assert not [e for e in d.events if isinstance(e, ev.CredentialsRequested)]
    assert out == []  # binding
    bind(d)
    rotated = d.last(ev.FastTokenIssued)  # XEP-0484 §3.5: a fresh token on every use
    assert isinstance(rotated, ev.FastTokenIssued) and rotated.token.slot == "new"
    success, _ = d.answer(d.stream.provide_fast_stored(True))
    # Mutual authentication: the server proves it knows the token too (draft §3.3).
    assert base64.b64decode(child(success, NS_SASL2, "additional-data").text) == \
        responder_proof("HT-SHA-256-ENDP", token, CB[1])
    new_token = child(success, NS_FAST, "token").attrs["token"]
    assert new_token != token
    assert d.stream.phase is Phase.ESTABLISHED


@pytest.mark.parametrize("case", ["wrong", "other-mechanism", "replayed-count", "throttled",
                                  "none-stored"])
def test_bad_token_logins_fail_like_a_wrong_password(case: str) -> None:
    token, stored = issue(Driver())
    stored = FastToken(stored.mechanism, stored.verifier, stored.responder,
                       stored.expires_at, "current", last_count=7)
    args: dict[str, object] = {}
    tokens: list[FastToken] = [stored]
    if case == "wrong":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif case == "other-mechanism":
        args["mechanism"] = "HT-SHA-256-NONE"
    elif case == "replayed-count":
        args["count"] = 7
    elif case == "throttled":
        args["refuse"] = True
    else:
        tokens = []
    d, (failure,) = fast_login(token, tokens, **args)  # type: ignore[arg-type]
    assert failure.tag == (NS_SASL2, "failure")
    assert [c.tag for c in failure.elements()] == [(NS_SASL, "not-authorized")]
    mechanism = str(args.get("mechanism", "HT-SHA-256-ENDP"))
    assert d.last(ev.AuthFailed) == ev.AuthFailed("juliet", mechanism, True)


def test_an_expired_token_fails() -> None:
    token, stored = issue(Driver())
    expired = FastToken(stored.mechanism, stored.verifier, stored.responder, NOW - 1)
    _, (failure,) = fast_login(token, [expired])
    assert failure.find(NS_SASL, "not-authorized") is not None


def test_invalidate_logs_in_and_issues_no_new_token_unless_asked() -> None:
    token, stored = issue(Driver())
    d = Driver()
    d.to_sasl()
    d.send(authenticate("HT-SHA-256-ENDP", initiator_message("HT-SHA-256-ENDP", "juliet", token,
                                                              CB[1]),
                        AGENT, f"<fast xmlns='{NS_FAST}' invalidate='true'/>"))
    request = d.last(ev.FastAuthRequested)
    assert isinstance(request, ev.FastAuthRequested)
    use = request.choose([stored])
    assert use is not None and use.invalidate  # storage deletes the client's tokens
    success, _ = d.answer(d.stream.provide_fast_auth(use))
    assert success.tag == (NS_SASL2, "success") and success.find(NS_FAST, "token") is None
    assert not [e for e in d.events if isinstance(e, ev.FastTokenIssued)]


def test_a_token_that_could_not_be_stored_is_not_handed_out() -> None:
    d = Driver()
    d.to_sasl()
    scram(d, AGENT, f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>")
    success, _ = d.answer(d.stream.provide_fast_stored(False))
    assert success.tag == (NS_SASL2, "success") and success.find(NS_FAST, "token") is None


def test_none_token_works_without_channel_binding() -> None:
    token, stored = issue(Driver(), "HT-SHA-256-NONE")
    d, out = fast_login(token, [stored], mechanism="HT-SHA-256-NONE")
    assert out == []  # the rotated token is being stored
    success, _ = d.answer(d.stream.provide_fast_stored(True))
    assert base64.b64decode(child(success, NS_SASL2, "additional-data").text) == \
        responder_proof("HT-SHA-256-NONE", token, b"")


# ---------------------------------------------------------------------- XEP-0198 inline


def hibernated() -> SMState:
    state = SMState("prev-1", resumable=True, max_unacked=100)
    state.inbound = 4
    state.record_outbound("<message to='juliet@example.com/Tag/abc' id='m1'/>")
    state.record_outbound("<message to='juliet@example.com/Tag/abc' id='m2'/>")
    return state


def test_resumption_inline_skips_binding_and_retransmits() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode(),
                        f"<resume xmlns='{NS_SM}' previd='prev-1' h='1'/>",
                        f"<bind xmlns='{NS_BIND2}'/>"))
    d.answer(d.stream.provide_credential(CRED))
    assert d.last(ev.ResumeRequested) == ev.ResumeRequested("prev-1", 1)
    out = d.answer(d.stream.provide_resume(JID("juliet", "example.com", "Tag/abc"),
                                           hibernated()))
    success, features, retransmitted = out[0], out[1], out[2:]
    assert child(success, NS_SASL2, "authorization-identifier").text == \
        "juliet@example.com/Tag/abc"
    resumed = child(success, NS_SM, "resumed")
    assert resumed.attrs == {"h": "4", "previd": "prev-1"}
    assert success.find(NS_BIND2, "bound") is None  # XEP-0386: resumed, so no bind
    assert not [e for e in d.events if isinstance(e, ev.BindRequested)]
    assert features.find(NS_SM, "sm") is None
    assert [m.attrs["id"] for m in retransmitted if m.name == "message"] == ["m2"]  # h=1
    assert d.stream.phase is Phase.ESTABLISHED


def test_failed_resumption_inline_then_binds() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode(),
                        f"<resume xmlns='{NS_SM}' previd='gone' h='0'/>",
                        f"<bind xmlns='{NS_BIND2}'/>"))
    d.answer(d.stream.provide_credential(CRED))
    d.answer(d.stream.provide_resume(None, None))
    success, _ = bind(d)
    failed = child(success, NS_SM, "failed")
    assert failed.find("urn:ietf:params:xml:ns:xmpp-stanzas", "item-not-found") is not None
    assert success.find(NS_BIND2, "bound") is not None


def test_malformed_resume_inline_fails_with_bad_request() -> None:
    d = Driver()
    d.to_sasl()
    d.send(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode(),
                        f"<resume xmlns='{NS_SM}' previd='x' h='-1'/>"))
    success, _ = d.answer(d.stream.provide_credential(CRED))
    failed = child(success, NS_SM, "failed")
    assert failed.find("urn:ietf:params:xml:ns:xmpp-stanzas", "bad-request") is not None
    assert not [e for e in d.events if isinstance(e, ev.ResumeRequested)]


# ---------------------------------------------------------------------- WebSocket framing


def test_framed_streams_get_one_message_per_element() -> None:
    d = Driver(framed=True)
    d.stream.receive_data(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' "
                          b"to='example.com' version='1.0'/>")
    frames = d.stream.take_frames()
    assert b"urn:xmpp:sasl:2" in frames[-1].encode()
    d.stream.receive_data(authenticate("PLAIN", b"\0juliet\0" + PASSWORD.encode(),
                                       f"<bind xmlns='{NS_BIND2}'/>").encode())
    d.stream.provide_credential(CRED)
    d.stream.provide_bind(JID("juliet", "example.com", "r"))
    success, features = d.stream.take_frames()
    assert success.startswith(f"<success xmlns='{NS_SASL2}'>")
    assert features.startswith("<stream:features xmlns:stream=")
    assert parse_fragment(success).find(NS_SASL2, "authorization-identifier") is not None


def test_scram_downgrade_protection_covers_the_sasl2_mechanism_list() -> None:
    d = Driver()
    features = d.to_sasl()
    offered = [m.text for m in child(features, NS_SASL2, "authentication").find_all(
        NS_SASL2, "mechanism")]
    # XEP-0474: the h= hash the client checks is over what it saw advertised.
    client = ScramClient("SHA-256", "juliet", PASSWORD, channel_binding=CB, plus=True,
                         server_offers_plus=True,
                         expected_ssdp=ssdp_input(offered, [CB[0]]))
    d.send(authenticate("SCRAM-SHA-256-PLUS", client.first()))
    (challenge,) = d.answer(d.stream.provide_credential(CRED))
    client.final(base64.b64decode(challenge.text))  # raises on a missing or wrong h=
    # A client that supports channel binding but saw no -PLUS ("y") is a downgrade.
    d = Driver()
    d.to_sasl()
    downgraded = ScramClient("SHA-256", "juliet", PASSWORD, channel_binding=CB,
                             server_offers_plus=False)
    (failure,) = d.send(authenticate("SCRAM-SHA-256", downgraded.first()))
    assert failure.find(NS_SASL, "not-authorized") is not None
