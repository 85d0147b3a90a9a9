"""TLS audit rules (stockade.core.audit.tls): hello contents and how answers become findings."""

from __future__ import annotations

import pytest

from stockade.core.audit import tls as rules
from stockade.core.audit.model import Finding, Severity
from stockade.core.errors import LocalProtocolError
from stockade.core.tls.clienthello import (
    Alert,
    AlertDescription,
    AlertLevel,
    ExtensionType,
    NamedGroup,
    ServerHello,
    TLSVersion,
    build_client_hello,
)
from stockade.core.tls.suites import SUITES

V = TLSVersion
PROTOCOL_VERSION = Alert(AlertLevel.FATAL, AlertDescription.PROTOCOL_VERSION)
HANDSHAKE_FAILURE = Alert(AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE)


def server_hello(version: TLSVersion, suite: int, *, extensions: tuple[int, ...] = (),
                 compression: int = 0, group: int | None = None,
                 hrr: bool = False) -> ServerHello:
    return ServerHello(version=version, cipher_suite=suite, selected_group=group,
                       is_hello_retry_request=hrr, legacy_version=min(version, V.TLS1_2),
                       random=bytes(32), session_id=b"", compression_method=compression,
                       extensions=tuple((e, b"") for e in extensions))


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def client_hello_fields(data: bytes) -> tuple[list[int], bytes, dict[int, bytes]]:
    """(suites, compression methods, extensions) of a one-record ClientHello."""
    body = data[5 + 4:]
    pos = 2 + 32
    pos += 1 + body[pos]
    n = int.from_bytes(body[pos:pos + 2], "big")
    suites = [int.from_bytes(body[pos + 2 + i:pos + 4 + i], "big") for i in range(0, n, 2)]
    pos += 2 + n
    compression = body[pos + 1:pos + 1 + body[pos]]
    pos += 1 + body[pos]
    extensions: dict[int, bytes] = {}
    end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    while pos < end:
        kind = int.from_bytes(body[pos:pos + 2], "big")
        size = int.from_bytes(body[pos + 2:pos + 4], "big")
        extensions[kind] = body[pos + 4:pos + 4 + size]
        pos += 4 + size
    return suites, compression, extensions


# ------------------------------------------------------------------------------ hellos


def test_version_hello_offers_every_suite_the_version_allows_strongest_first() -> None:
    suites, compression, _ = client_hello_fields(rules.version_hello(V.TLS1_0, "example.org"))
    assert 0x000A in suites and 0x0005 in suites and 0xC013 in suites
    assert all(SUITES[s].allows(V.TLS1_0) for s in suites)
    assert 0xC02F not in suites  # AEAD suites are TLS 1.2+ (RFC 5288 §4)
    assert rules.weakness(SUITES[suites[0]])[1] <= rules.weakness(SUITES[suites[-1]])[1]
    assert compression == b"\x00"


def test_compression_hello_offers_deflate_before_null() -> None:
    _, compression, _ = client_hello_fields(rules.compression_hello(V.TLS1_2, "example.org"))
    assert compression == b"\x01\x00"


def test_compression_methods_must_include_null() -> None:
    with pytest.raises(LocalProtocolError):
        build_client_hello(version=V.TLS1_2, cipher_suites=[0xC02F], server_name=None,
                           compression_methods=(1,))


def test_ocsp_hello_carries_status_request() -> None:
    _, _, extensions = client_hello_fields(rules.ocsp_hello("example.org"))
    assert extensions[ExtensionType.STATUS_REQUEST] == b"\x01\x00\x00\x00\x00"
    _, _, plain = client_hello_fields(rules.version_hello(V.TLS1_2, "example.org"))
    assert ExtensionType.STATUS_REQUEST not in plain


def test_group_hello_offers_only_that_group() -> None:
    _, _, extensions = client_hello_fields(rules.group_hello(NamedGroup.SECP384R1, None))
    assert extensions[ExtensionType.SUPPORTED_GROUPS] == b"\x00\x02\x00\x18"


# --------------------------------------------------------------------------- versions


def test_old_versions_accepted_are_high_and_ssl3_critical() -> None:
    findings = by_check(rules.version_findings({
        V.SSL3: server_hello(V.SSL3, 0x000A),
        V.TLS1_0: server_hello(V.TLS1_0, 0x000A),
        V.TLS1_1: server_hello(V.TLS1_1, 0x000A),
        V.TLS1_2: server_hello(V.TLS1_2, 0x000A),
        V.TLS1_3: HANDSHAKE_FAILURE,
    }))
    assert findings["tls.version.ssl3"].severity is Severity.CRITICAL
    assert findings["tls.version.tls1_0"].severity is Severity.HIGH
    assert findings["tls.version.tls1_1"].severity is Severity.HIGH
    assert findings["tls.version.tls1_2"].severity is Severity.PASS
    assert findings["tls.version.tls1_3"].severity is Severity.MEDIUM
    assert "handshake_failure" in findings["tls.version.tls1_3"].observed
    assert "tls.version.none" not in findings


def test_modern_server_passes_every_version_check() -> None:
    findings = rules.version_findings({
        V.SSL3: HANDSHAKE_FAILURE, V.TLS1_0: PROTOCOL_VERSION,
        V.TLS1_1: rules.NoAnswer("connection closed without answering"),
        V.TLS1_2: server_hello(V.TLS1_2, 0xC02F),
        V.TLS1_3: server_hello(V.TLS1_3, 0x1301, group=NamedGroup.X25519),
    })
    assert {f.severity for f in findings} == {Severity.PASS}


def test_server_hello_for_another_version_is_no_acceptance() -> None:
    # A TLS 1.2-only server answering a TLS 1.3 hello with TLS 1.2 did not accept 1.3.
    findings = by_check(rules.version_findings({
        V.TLS1_0: server_hello(V.TLS1_2, 0xC013), V.TLS1_3: server_hello(V.TLS1_2, 0xC02F)}))
    assert findings["tls.version.tls1_0"].severity is Severity.PASS
    assert findings["tls.version.tls1_3"].severity is Severity.MEDIUM
    assert findings["tls.version.none"].severity is Severity.HIGH


# ----------------------------------------------------------------------------- suites


@pytest.mark.parametrize(("code", "group", "severity"), [
    (0x0001, "null", Severity.CRITICAL),  # RSA_WITH_NULL_MD5
    (0x0018, "anon", Severity.CRITICAL),  # DH_anon_WITH_RC4_128_MD5: anon is the worse
    (0x0003, "export", Severity.CRITICAL),  # RSA_EXPORT_WITH_RC4_40_MD5
    (0x0005, "rc4", Severity.CRITICAL),
    (0x000A, "3des", Severity.CRITICAL),  # TLS_RSA_WITH_3DES_EDE_CBC_SHA
    (0xC012, "3des", Severity.CRITICAL),  # ECDHE_RSA 3DES: forward secrecy does not save it
    (0x0009, "3des", Severity.CRITICAL),  # single DES
    (0x009C, "no_forward_secrecy", Severity.MEDIUM),  # RSA_WITH_AES_128_GCM
    (0xC031, "no_forward_secrecy", Severity.MEDIUM),  # static ECDH_RSA
    (0xC013, "cbc", Severity.LOW),  # ECDHE_RSA_WITH_AES_128_CBC_SHA
    (0xC02F, "aead", Severity.PASS),
    (0xCCA9, "aead", Severity.PASS),
    (0x1301, "aead", Severity.PASS),
])
def test_weakness_of_suites(code: int, group: str, severity: Severity) -> None:
    assert rules.weakness(SUITES[code]) == (group, severity)


class FakeServer:
    """Picks the first suite of its own preference list that the hello offers."""

    def __init__(self, preference: list[int]) -> None:
        self.preference = preference

    def answer(self, offered: list[int], version: TLSVersion) -> rules.Answer:
        for code in self.preference:
            if code in offered:
                return server_hello(version, code)
        return HANDSHAKE_FAILURE


def run_enumeration(server: FakeServer, version: TLSVersion,
                    max_connections: int) -> rules.SuiteEnumeration:
    run = rules.SuiteEnumeration(version, "example.org", max_connections)
    first = rules.version_hello(version, "example.org")
    run.record(server.answer(client_hello_fields(first)[0], version))
    while (hello := run.next_hello()) is not None:
        run.record(server.answer(client_hello_fields(hello)[0], version))
    return run


def test_enumeration_finds_every_accepted_suite_in_server_order() -> None:
    preference = [0xC02F, 0xC013, 0x000A, 0x0005]
    run = run_enumeration(FakeServer(preference), V.TLS1_2, max_connections=20)
    assert run.accepted == preference
    assert run.connections == len(preference)  # 3 more acceptances, 1 refusal
    assert not run.truncated


def test_enumeration_stops_at_its_connection_limit() -> None:
    run = run_enumeration(FakeServer([0xC02F, 0xC013, 0x000A, 0x0005]), V.TLS1_2,
                          max_connections=2)
    assert run.accepted == [0xC02F, 0xC013, 0x000A]
    assert run.truncated
    listing = by_check(rules.suite_findings([run]))["tls.cipher.list"]
    assert "connection limit" in listing.observed


def test_enumeration_stops_when_the_server_picks_a_suite_not_offered() -> None:
    run = rules.SuiteEnumeration(V.TLS1_2, None, 10)
    run.record(server_hello(V.TLS1_2, 0x1301))
    assert run.done and run.next_hello() is None and run.anomalies


def test_suite_findings_group_by_weakness() -> None:
    run = run_enumeration(FakeServer([0x000A, 0x002F, 0x0005]), V.TLS1_0, max_connections=20)
    findings = by_check(rules.suite_findings([run]))
    assert findings["tls.cipher.3des"].severity is Severity.CRITICAL
    assert "TLS 1.0 TLS_RSA_WITH_3DES_EDE_CBC_SHA" in findings["tls.cipher.3des"].observed
    assert findings["tls.cipher.rc4"].severity is Severity.CRITICAL
    assert findings["tls.cipher.no_forward_secrecy"].severity is Severity.MEDIUM
    assert findings["tls.cipher.null"].severity is Severity.PASS
    assert findings["tls.cipher.aead"].severity is Severity.MEDIUM  # no ECDHE-AEAD at all
    assert findings["tls.cipher.list"].observed.startswith(
        "TLS 1.0: TLS_RSA_WITH_3DES_EDE_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA")


# ------------------------------------------------------------------- the other checks


def test_compression_accepted_is_high() -> None:
    assert rules.compression_findings(
        server_hello(V.TLS1_2, 0xC02F, compression=1))[0].severity is Severity.HIGH
    assert rules.compression_findings(
        server_hello(V.TLS1_2, 0xC02F))[0].severity is Severity.PASS


def test_renegotiation_indication() -> None:
    with_ri = server_hello(V.TLS1_2, 0xC02F, extensions=(ExtensionType.RENEGOTIATION_INFO,))
    assert rules.renegotiation_findings(with_ri, tls13_accepted=True)[0].severity \
        is Severity.PASS
    without = server_hello(V.TLS1_2, 0xC02F, extensions=(ExtensionType.EXTENDED_MASTER_SECRET,))
    assert rules.renegotiation_findings(without, tls13_accepted=True)[0].severity \
        is Severity.MEDIUM
    assert rules.renegotiation_findings(None, tls13_accepted=True)[0].severity \
        is Severity.PASS
    assert rules.renegotiation_findings(None, tls13_accepted=False)[0].severity \
        is Severity.NOT_TESTED


def test_ocsp_stapling() -> None:
    stapled = server_hello(V.TLS1_2, 0xC02F, extensions=(ExtensionType.STATUS_REQUEST,))
    assert rules.ocsp_findings(stapled)[0].severity is Severity.PASS
    assert rules.ocsp_findings(server_hello(V.TLS1_2, 0xC02F))[0].severity is Severity.LOW
    assert rules.ocsp_findings(PROTOCOL_VERSION)[0].severity is Severity.NOT_TESTED


def test_groups_count_only_the_group_selected() -> None:
    answers: dict[int, rules.Answer] = {
        NamedGroup.X25519: server_hello(V.TLS1_3, 0x1301, group=NamedGroup.X25519),
        NamedGroup.FFDHE2048: server_hello(V.TLS1_3, 0x1301, group=NamedGroup.FFDHE2048,
                                           hrr=True),
        NamedGroup.X448: server_hello(V.TLS1_3, 0x1301, group=NamedGroup.X25519),  # ignored ours
        NamedGroup.SECP521R1: HANDSHAKE_FAILURE,
    }
    observed = rules.group_findings(answers)[0].observed
    assert observed == "accepted: x25519, ffdhe2048; refused: x448, secp521r1"


def test_small_curves() -> None:
    assert rules.small_curve_findings(server_hello(V.TLS1_2, 0xC02F))[0].severity \
        is Severity.MEDIUM
    assert rules.small_curve_findings(HANDSHAKE_FAILURE)[0].severity is Severity.PASS


def test_every_problem_finding_says_why_and_how_to_fix() -> None:
    run = run_enumeration(FakeServer([0x0001, 0x0018, 0x0003, 0x0005, 0x000A, 0x002F, 0xC013]),
                          V.TLS1_0, max_connections=20)
    findings = [
        *rules.version_findings({V.SSL3: server_hello(V.SSL3, 0x000A),
                                 V.TLS1_0: server_hello(V.TLS1_0, 0x000A),
                                 V.TLS1_3: PROTOCOL_VERSION}),
        *rules.suite_findings([run]),
        *rules.compression_findings(server_hello(V.TLS1_0, 0x000A, compression=1)),
        *rules.renegotiation_findings(server_hello(V.TLS1_0, 0x000A), tls13_accepted=False),
        *rules.ocsp_findings(server_hello(V.TLS1_2, 0xC02F)),
        *rules.small_curve_findings(server_hello(V.TLS1_2, 0xC02F)),
    ]
    problems = [f for f in findings if f.severity > Severity.INFO]
    assert len(problems) >= 12
    for finding in problems:
        assert finding.why and finding.fix is not None, finding
        assert finding.fix.stockade and finding.fix.prosody and finding.fix.ejabberd
        assert finding.check.startswith("tls.")
