"""Sans-I/O parts of the stream audit: reading server output, classifying reactions, rules."""

from __future__ import annotations

import pytest

from stockade.core.audit import stream as a
from stockade.core.audit.model import Finding, Severity
from stockade.core.errors import RemoteProtocolError
from stockade.core.xml.parser import StreamHeader, XMLStreamParser

S = Severity
OUT = a.Outcome
HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.org' "
          b"version='1.0' xml:lang='en'>")
PRE_TLS = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
           b"</starttls></stream:features>")
POST_TLS = (
    b"<stream:features>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-256</mechanism>"
    b"<mechanism>PLAIN</mechanism><mechanism>EXTERNAL</mechanism></mechanisms>"
    b"<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
    b"<channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>"
    b"</sasl-channel-binding>"
    b"<authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-256</mechanism>"
    b"<inline><fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-ENDP</mechanism></fast>"
    b"</inline></authentication>"
    b"<compression xmlns='http://jabber.org/features/compress'><method>zlib</method>"
    b"<method>lzw</method></compression>"
    b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://prosody.im' "
    b"ver='x'/>"
    b"</stream:features>")


def stream_of(*chunks: bytes) -> a.ServerStream:
    s = a.ServerStream()
    for chunk in chunks:
        s.feed(chunk)
    return s


def error(condition: str) -> bytes:
    return (f"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></stream:error>"
            ).encode()


# --- parsing ---------------------------------------------------------------------------------


def test_stream_is_read_across_arbitrary_chunk_boundaries() -> None:
    data = HEADER + PRE_TLS
    s = stream_of(*(data[i:i + 7] for i in range(0, len(data), 7)))
    assert s.header is not None and s.header.attrs["from"] == "example.org"
    features = a.parse_features(s.features)
    assert features.starttls and features.starttls_required
    assert features.mechanisms == ()


def test_features_after_tls_are_all_read() -> None:
    f = a.parse_features(stream_of(HEADER + POST_TLS).features)
    assert f.mechanisms == ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "EXTERNAL")
    assert f.channel_bindings == ("tls-exporter", "tls-server-end-point")
    assert f.sasl2 and f.sasl2_mechanisms == ("SCRAM-SHA-256",)
    assert f.fast_mechanisms == ("HT-SHA-256-ENDP",)
    assert f.compression and f.compression_methods == ("zlib", "lzw")
    assert f.caps_node == "http://prosody.im"
    assert not f.starttls


def test_no_features_reads_as_nothing_offered() -> None:
    assert a.parse_features(None) == a.Features()


def test_bare_stream_error_without_header_is_still_read() -> None:
    s = stream_of(error("restricted-xml"))
    assert s.headerless and s.malformed is None
    assert a.stream_error_condition(s.error) == "restricted-xml"


def test_garbage_is_recorded_not_raised() -> None:
    s = stream_of(HEADER, b"<a><b></a>")
    assert s.malformed is not None
    s.feed(b"more")  # still no exception; what showed the breakage is kept as evidence
    assert s.raw.endswith(b"<a><b></a>")


def test_a_flood_is_cut_off() -> None:
    s = stream_of(HEADER, b" " * a.MAX_RECEIVED)
    assert s.malformed is not None and "more than" in s.malformed
    assert len(s.raw) == len(HEADER)


def test_stream_end_is_seen() -> None:
    s = stream_of(HEADER + error("not-authorized") + b"</stream:stream>")
    assert s.ended and a.stream_error_condition(s.error) == "not-authorized"


def test_stream_error_without_defined_condition() -> None:
    s = stream_of(HEADER + b"<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'"
                  b">x</text></stream:error>")
    assert a.stream_error_condition(s.error) == "undefined-condition"
    assert a.stream_error_condition(None) is None


VERSION_RESULT = (b"<iq type='result' id='v1'><query xmlns='jabber:iq:version'>"
                  b"<name>Prosody</name><version>0.12.4</version><os>Linux</os></query></iq>")


def test_version_reply_is_parsed() -> None:
    reply = stream_of(HEADER + VERSION_RESULT).reply_to("v1")
    version = a.parse_version_reply(reply)
    assert version == a.SoftwareVersion("Prosody", "0.12.4", "Linux")
    assert str(version) == "Prosody 0.12.4 (Linux)"


@pytest.mark.parametrize("iq", [
    b"<iq type='error' id='v1'><query xmlns='jabber:iq:version'><name>x</name></query></iq>",
    b"<iq type='result' id='v1'><query xmlns='jabber:iq:version'/></iq>",
    b"<iq type='result' id='v1'/>",
])
def test_no_version_in_errors_or_empty_answers(iq: bytes) -> None:
    assert a.parse_version_reply(stream_of(HEADER + iq).reply_to("v1")) is None


def test_probe_requests_are_what_they_claim() -> None:
    # The DOCTYPE probe carries a real DTD: our own restricted parser refuses it.
    with pytest.raises(RemoteProtocolError) as exc:
        XMLStreamParser().feed(a.doctype_header("example.org", "jabber:client"))
    assert exc.value.condition.value == "restricted-xml"
    events = XMLStreamParser().feed(a.stream_header("example.org", "jabber:server"))
    assert isinstance(events[0], StreamHeader) and events[0].default_ns == "jabber:server"
    assert events[0].attrs["to"] == "example.org"


def test_evidence_is_cut_to_a_readable_length() -> None:
    assert a.evidence(b"x" * 10) == "x" * 10
    assert len(a.evidence(b"x" * 5000)) < 700


# --- reactions -------------------------------------------------------------------------------

PING_RESULT = b"<iq type='result' id='p'/>"
PING_ERROR = (b"<iq type='error' id='p'><error type='auth'><not-authorized "
              b"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")


@pytest.mark.parametrize(("data", "closed", "outcome", "condition"), [
    (PING_RESULT, False, OUT.ANSWERED, None),
    (PING_RESULT + error("not-authorized"), True, OUT.ANSWERED, "not-authorized"),
    (error("not-authorized") + b"</stream:stream>", True, OUT.STREAM_ERROR, "not-authorized"),
    (PING_ERROR, False, OUT.STANZA_ERROR, None),
    (b"</stream:stream>", False, OUT.CLOSED, None),
    (b"", True, OUT.CLOSED, None),
    (b"", False, OUT.SILENT, None),
    (b"<iq type='result' id='other'/>", False, OUT.SILENT, None),
])
def test_stanza_reaction(data: bytes, closed: bool, outcome: a.Outcome,
                         condition: str | None) -> None:
    reaction = a.stanza_reaction(stream_of(HEADER + data), "p", closed=closed)
    assert (reaction.outcome, reaction.condition) == (outcome, condition)


SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


@pytest.mark.parametrize(("data", "outcome"), [
    (f"<failure xmlns='{SASL}'><encryption-required/></failure>".encode()
     + error("policy-violation"), OUT.STREAM_ERROR),
    (f"<failure xmlns='{SASL}'><encryption-required/></failure>".encode(), OUT.STANZA_ERROR),
    (error("policy-violation"), OUT.STREAM_ERROR),
    (f"<failure xmlns='{SASL}'><not-authorized/></failure>".encode(), OUT.ANSWERED),
    (f"<success xmlns='{SASL}'/>".encode(), OUT.ANSWERED),
    (f"<challenge xmlns='{SASL}'>AA==</challenge>".encode(), OUT.ANSWERED),
    (b"", OUT.SILENT),
])
def test_sasl_reaction(data: bytes, outcome: a.Outcome) -> None:
    assert a.sasl_reaction(stream_of(HEADER + data), closed=False).outcome is outcome


# --- rules -----------------------------------------------------------------------------------


def severities(findings: list[Finding]) -> dict[str, Severity]:
    return {f.check: f.severity for f in findings}


def test_starttls_rules() -> None:
    required = a.Features(starttls=True, starttls_required=True)
    optional = a.Features(starttls=True)
    assert a.rule_starttls_offered(required, b"").severity is S.PASS
    assert a.rule_starttls_offered(a.Features(), b"<x/>").severity is S.CRITICAL
    assert a.rule_starttls_required(required).severity is S.PASS
    assert a.rule_starttls_required(optional).severity is S.HIGH


@pytest.mark.parametrize(("mechanisms", "expected"), [
    ((), {"sasl.before_tls": S.PASS, "sasl.plain_before_tls": S.PASS}),
    (("SCRAM-SHA-1",), {"sasl.before_tls": S.CRITICAL, "sasl.plain_before_tls": S.PASS}),
    (("SCRAM-SHA-1", "PLAIN"),
     {"sasl.before_tls": S.CRITICAL, "sasl.plain_before_tls": S.CRITICAL}),
])
def test_sasl_before_tls(mechanisms: tuple[str, ...], expected: dict[str, Severity]) -> None:
    found = a.rule_sasl_before_tls(a.Features(mechanisms=mechanisms))
    assert severities(found) == expected


def test_mechanisms_after_tls_report_scram_plus_bindings_external_plain() -> None:
    f = a.parse_features(stream_of(HEADER + POST_TLS).features)
    found = {x.check: x for x in a.rule_mechanisms_after_tls(f)}
    assert severities(list(found.values())) == {
        "sasl.mechanisms": S.INFO, "sasl.scram": S.PASS, "sasl.channel_binding": S.INFO,
        "sasl.external": S.INFO, "sasl.plain_over_tls": S.INFO}
    assert "tls-exporter, tls-server-end-point" in found["sasl.channel_binding"].observed
    assert "SCRAM-SHA-256-PLUS" in found["sasl.channel_binding"].observed


def test_obsolete_or_missing_scram_is_flagged() -> None:
    found = severities(a.rule_mechanisms_after_tls(
        a.Features(mechanisms=("DIGEST-MD5", "PLAIN", "ANONYMOUS"))))
    assert found["sasl.weak_mechanisms"] is S.MEDIUM
    assert found["sasl.scram"] is S.LOW
    assert found["sasl.anonymous"] is S.INFO
    assert "no -PLUS" in a.rule_mechanisms_after_tls(
        a.Features(mechanisms=("SCRAM-SHA-1",)))[2].observed


def test_sasl2_and_fast() -> None:
    f = a.parse_features(stream_of(HEADER + POST_TLS).features)
    found = {x.check: x.observed for x in a.rule_sasl2(f)}
    assert "SCRAM-SHA-256" in found["sasl.sasl2"] and "HT-SHA-256-ENDP" in found["sasl.fast"]
    assert severities(a.rule_sasl2(a.Features())) == {"sasl.sasl2": S.INFO}


def test_compression_before_or_after_tls_is_high() -> None:
    post = a.parse_features(stream_of(HEADER + POST_TLS).features)
    finding = a.rule_compression([a.Features(), post])
    assert finding.severity is S.HIGH and "lzw, zlib" in finding.observed
    assert a.rule_compression([a.Features(), a.Features()]).severity is S.PASS


@pytest.mark.parametrize(("reaction", "severity"), [
    (a.Reaction(OUT.ANSWERED), S.CRITICAL),
    (a.Reaction(OUT.STREAM_ERROR, "not-authorized"), S.PASS),
    (a.Reaction(OUT.STREAM_ERROR, "policy-violation"), S.LOW),
    (a.Reaction(OUT.CLOSED), S.LOW),
    (a.Reaction(OUT.STANZA_ERROR), S.MEDIUM),
    (a.Reaction(OUT.SILENT), S.MEDIUM),
])
def test_stanza_before_auth_and_before_tls(reaction: a.Reaction, severity: Severity) -> None:
    assert a.rule_stanza_before_auth(reaction).severity is severity
    assert a.rule_stanza_before_tls(reaction).severity is severity


@pytest.mark.parametrize(("reaction", "severity"), [
    (a.Reaction(OUT.ANSWERED), S.CRITICAL),
    (a.Reaction(OUT.STREAM_ERROR, "policy-violation"), S.PASS),
    (a.Reaction(OUT.STANZA_ERROR), S.PASS),  # <failure><encryption-required/>
    (a.Reaction(OUT.SILENT), S.LOW),
])
def test_auth_before_tls(reaction: a.Reaction, severity: Severity) -> None:
    assert a.rule_auth_before_tls(reaction).severity is severity


@pytest.mark.parametrize(("reaction", "severity"), [
    (a.Reaction(OUT.STREAM_ERROR, "restricted-xml"), S.PASS),
    (a.Reaction(OUT.STREAM_ERROR, "not-well-formed"), S.LOW),
    (a.Reaction(OUT.CLOSED), S.LOW),
    (a.Reaction(OUT.ANSWERED), S.HIGH),
    (a.Reaction(OUT.SILENT), S.HIGH),
])
def test_doctype(reaction: a.Reaction, severity: Severity) -> None:
    assert a.rule_doctype(reaction).severity is severity


def test_injection() -> None:
    assert a.rule_injection(a.Reaction(OUT.ANSWERED, raw=b"<x/>")).severity is S.CRITICAL
    assert a.rule_injection(a.Reaction(OUT.SILENT)).severity is S.PASS


def test_version_query() -> None:
    reply = stream_of(HEADER + VERSION_RESULT).reply_to("v1")
    found = a.rule_version_query(a.Reaction(OUT.ANSWERED, reply=reply))
    assert found.severity is S.LOW and "Prosody 0.12.4 (Linux)" in found.observed
    refused = a.rule_version_query(a.Reaction(OUT.STREAM_ERROR, "not-authorized"))
    assert refused.severity is S.PASS


def test_header_disclosure() -> None:
    plain = stream_of(HEADER).header
    assert a.rule_header_disclosure(plain, [a.Features()]).severity is S.PASS
    chatty = stream_of(HEADER.replace(b"xml:lang", b"server='ejabberd 23' xml:lang"))
    found = a.rule_header_disclosure(chatty.header, [a.Features(caps_node="http://p.im")])
    assert found.severity is S.INFO
    assert "server='ejabberd 23'" in found.observed and "http://p.im" in found.observed


def _every_bad_finding() -> list[Finding]:
    bad = [a.Reaction(o, c) for o, c in [(OUT.ANSWERED, None), (OUT.SILENT, None),
                                          (OUT.CLOSED, None), (OUT.STREAM_ERROR, "x")]]
    weak = a.Features(mechanisms=("DIGEST-MD5", "PLAIN"), compression=True)
    found = [a.rule_starttls_offered(weak, b""), a.rule_starttls_required(weak),
             *a.rule_sasl_before_tls(weak), *a.rule_mechanisms_after_tls(weak),
             a.rule_compression([weak])]
    for r in bad:
        found += [a.rule_auth_before_tls(r), a.rule_stanza_before_tls(r), a.rule_injection(r),
                  a.rule_stanza_before_auth(r), a.rule_doctype(r)]
    found.append(a.rule_version_query(a.Reaction(OUT.ANSWERED, reply=stream_of(
        HEADER + VERSION_RESULT).reply_to("v1"))))
    return [f for f in found if f.severity > S.INFO]


def test_every_problem_says_why_and_how_to_fix_it_everywhere() -> None:
    bad = _every_bad_finding()
    assert len({f.check for f in bad}) >= 12
    for f in bad:
        assert f.why and f.fix is not None, f
        assert f.fix.stockade and f.fix.prosody and f.fix.ejabberd, f
        assert f.check.split(".")[0] in ("stream", "sasl"), f
