"""``stockade audit`` against a real, independent server: Debian's Prosody 0.12 on loopback,
once hardened and once deliberately weak, audited by the real runner and probes.

Where a finding depends on what this machine's OpenSSL lets Prosody do (TLS 1.0, CBC),
the test first finds out with an ordinary stdlib TLS handshake and then asserts that the
audit says the same, rather than assuming either way. ``make test`` installs Prosody when
it may (root or sudo); without it these tests are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from pathlib import Path

import pytest
import trustme
from prosody_server import (
    DOMAIN,
    HOST,
    PROSODY,
    STRICT,
    WEAK,
    ProsodyServer,
    Security,
    running_prosody,
)

from stockade.audit.runner import default_probes, run_audit
from stockade.core.audit import grading
from stockade.core.audit.model import Endpoint, Finding, Report, Severity

pytestmark = pytest.mark.skipif(
    PROSODY is None,
    reason="prosody is not installed: `make test` installs Debian's package when it runs "
           "as root or with passwordless sudo; otherwise `apt-get install prosody`")

AUDIT_TIMEOUT_S = 3.0
INJECTION = "stream.starttls.injection"
INJECTED_ID = "injected-ping"
SEVERE = (Severity.HIGH, Severity.CRITICAL)


async def audit(prosody: ProsodyServer, ca: trustme.CA, tmp_path: Path) -> Report:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return await run_audit(DOMAIN, [prosody.starttls_endpoint, prosody.direct_tls_endpoint],
                           timeout_s=AUDIT_TIMEOUT_S, probes=default_probes(str(ca_file)))


def checks(report: Report, endpoint: Endpoint) -> dict[str, Finding]:
    """The findings on one endpoint by check id (each check appears once per endpoint)."""
    found = [f for f in report.findings if f.endpoint == str(endpoint)]
    by_id = {f.check: f for f in found}
    assert len(by_id) == len(found), [f.check for f in found]
    return by_id


def assert_severity(found: dict[str, Finding], check: str, severity: Severity) -> None:
    assert check in found, sorted(found)
    assert found[check].severity is severity, found[check]


async def handshake_succeeds(port: int, version: ssl.TLSVersion, ciphers: str) -> bool:
    """Whether a plain stdlib TLS client limited to ``version``/``ciphers`` gets through
    (the ground truth for what this Prosody + OpenSSL accept)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1; asking for them is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers(ciphers)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, ssl=ctx, server_hostname=DOMAIN), 3)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def assert_matches_ground_truth(report: Report, prosody: ProsodyServer, check: str,
                                accepted: bool, weak: Severity) -> None:
    """On both endpoints: ``weak`` if the handshake got through, PASS if it did not."""
    for endpoint in (prosody.starttls_endpoint, prosody.direct_tls_endpoint):
        assert_severity(checks(report, endpoint), check, weak if accepted else Severity.PASS)


async def tls10_accepted(prosody: ProsodyServer) -> bool:
    return await handshake_succeeds(prosody.direct_tls_port, ssl.TLSVersion.TLSv1,
                                    "DEFAULT:@SECLEVEL=0")


async def tls12_cbc_accepted(prosody: ProsodyServer) -> bool:
    return await handshake_succeeds(prosody.direct_tls_port, ssl.TLSVersion.TLSv1_2,
                                    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0")


async def plaintext_after_starttls_answered(port: int) -> str:
    """Pipeline a stream header and a ping behind <starttls/> in one write, as a
    man-in-the-middle would, and return what came back in plaintext after <proceed/>."""
    reader, writer = await asyncio.open_connection(HOST, port)
    header = (f"<stream:stream to='{DOMAIN}' xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
    received = b""
    try:
        writer.write(b"<?xml version='1.0'?>" + header)
        while b"</stream:features>" not in received:
            received += await asyncio.wait_for(reader.read(65536), 3)
        writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + header
                     + f"<iq type='get' id='{INJECTED_ID}' to='{DOMAIN}'>".encode()
                     + b"<ping xmlns='urn:xmpp:ping'/></iq>")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while f"id='{INJECTED_ID}'".encode() not in received:
                    data = await reader.read(65536)
                    if not data:
                        break
                    received += data
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return received.partition(b"<proceed")[2].decode(errors="replace")


async def test_strict_prosody_passes_the_stream_and_tls_checks(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_prosody(tmp_path, ca, STRICT) as prosody:
        report = await audit(prosody, ca, tmp_path)
        tls10 = await tls10_accepted(prosody)
    starttls = checks(report, prosody.starttls_endpoint)
    assert not [f for f in report.findings if f.check.endswith(".probe")], prosody.log_tail()
    for check in ("stream.starttls.offered", "stream.starttls.required", "sasl.before_tls",
                  "sasl.plain_before_tls", "sasl.enforced_before_tls"):
        assert_severity(starttls, check, Severity.PASS)
    assert "<required/>" in starttls["stream.starttls.required"].observed
    assert "encryption-required" in starttls["sasl.enforced_before_tls"].observed
    # tlsv1_2+ : TLS 1.0 and 1.1 refused, 1.2 and 1.3 spoken, on both ports.
    assert not tls10
    for endpoint in (prosody.starttls_endpoint, prosody.direct_tls_endpoint):
        found = checks(report, endpoint)
        for check in ("tls.version.ssl3", "tls.version.tls1_0", "tls.version.tls1_1",
                      "tls.version.tls1_2", "tls.version.tls1_3", "cert.chain",
                      "cert.identity", "cert.expiry"):
            assert_severity(found, check, Severity.PASS)
        assert "PLAIN" in found["sasl.mechanisms"].observed
        # Prosody answers a stanza before authentication with a stanza error and keeps the
        # stream open (RFC 6120 wants <not-authorized/> and a closed stream).
        assert_severity(found, "stream.stanza_before_auth", Severity.MEDIUM)
        assert "service-unavailable" in found["stream.stanza_before_auth"].observed
    # STARTTLS injection is left out here: see the injection tests below.
    severe = [f for f in report.findings if f.severity in SEVERE and f.check != INJECTION]
    assert not severe, severe
    letter, _, reasons = grading.grade([f for f in report.findings if f.check != INJECTION])
    assert letter == "C", reasons  # 100 - 2 MEDIUM - 2 LOW = 60
    # With the injection, as the report grades it: CRITICAL caps everything at F.
    assert grading.grade(report.findings)[0] == "F"


async def test_weak_prosody_gets_f_with_each_weakness_found(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_prosody(tmp_path, ca, WEAK) as prosody:
        report = await audit(prosody, ca, tmp_path)
        tls10, cbc = await tls10_accepted(prosody), await tls12_cbc_accepted(prosody)
    starttls = checks(report, prosody.starttls_endpoint)
    assert not [f for f in report.findings if f.check.endswith(".probe")], prosody.log_tail()
    assert_severity(starttls, "stream.starttls.offered", Severity.PASS)
    assert_severity(starttls, "stream.starttls.required", Severity.HIGH)
    assert_severity(starttls, "sasl.before_tls", Severity.CRITICAL)
    assert_severity(starttls, "sasl.plain_before_tls", Severity.CRITICAL)
    # Prosody ran the PLAIN exchange in the clear: it answered the made-up credentials.
    assert_severity(starttls, "sasl.enforced_before_tls", Severity.CRITICAL)
    assert "not-authorized" in starttls["sasl.enforced_before_tls"].observed
    assert_matches_ground_truth(report, prosody, "tls.version.tls1_0", tls10, Severity.HIGH)
    assert_matches_ground_truth(report, prosody, "tls.version.tls1_1", tls10, Severity.HIGH)
    assert_matches_ground_truth(report, prosody, "tls.cipher.cbc", cbc, Severity.LOW)
    for endpoint in (prosody.starttls_endpoint, prosody.direct_tls_endpoint):
        assert_severity(checks(report, endpoint), "tls.version.tls1_3", Severity.PASS)
        assert_severity(checks(report, endpoint), "cert.identity", Severity.PASS)
    assert report.grade == "F"


@pytest.mark.parametrize("security", [STRICT, WEAK], ids=lambda s: s.name)
async def test_prosody_answers_plaintext_pipelined_after_starttls(
        tmp_path: Path, ca: trustme.CA, security: Security) -> None:
    """The ground truth the injection check must report: Prosody 0.12.3 parses a stream
    header and a stanza sent in the same write as <starttls/>, in plaintext, and the audit
    must at least not call that a pass."""
    async with running_prosody(tmp_path, ca, security) as prosody:
        after_proceed = await plaintext_after_starttls_answered(prosody.starttls_port)
        report = await audit(prosody, ca, tmp_path)
    assert "<stream:stream" in after_proceed and f"id='{INJECTED_ID}'" in after_proceed
    finding = checks(report, prosody.starttls_endpoint)[INJECTION]
    assert finding.severity is Severity.CRITICAL, finding


async def test_audit_reports_prosody_starttls_injection_as_critical(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_prosody(tmp_path, ca, STRICT) as prosody:
        report = await audit(prosody, ca, tmp_path)
    assert_severity(checks(report, prosody.starttls_endpoint), INJECTION, Severity.CRITICAL)
