"""Certificate analysis (stockade.core.crypto.certaudit) on certificates made here."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from stockade.core.audit.model import Finding, Severity
from stockade.core.crypto.certaudit import ChainVerdict, analyze, dns_id_matches

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
TRUSTED = ChainVerdict(error=None, trust="test CA")
XMPP_ADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
DNS_SRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")
_EC_KEY = ec.generate_private_key(ec.SECP256R1())
# RSA-1024 signed with SHA-1 for example.org, valid 2026-12-02 to 2126-11-08. Made with
# `openssl req -x509 -newkey rsa:1024 -sha1`: cryptography no longer signs with SHA-1.
SHA1_RSA1024_PEM = b"""\
-----BEGIN CERTIFICATE-----
MIICIjCCAYugAwIBAgIUPKqXqmxJ2gZQz0CB0xVC/JRhv3owDQYJKoZIhvcNAQEF
BQAwFjEUMBIGA1UEAwwLZXhhbXBsZS5vcmcwIBcNMjYxMjAyMDIzNjE5WhgPMjEy
NjExMDgwMjM2MTlaMBYxFDASBgNVBAMMC2V4YW1wbGUub3JnMIGfMA0GCSqGSIb3
DQEBAQUAA4GNADCBiQKBgQDIUtPeCatGb+4sjutF0lJIs3LXZwvJBDownDYjn3/q
rFfLblUsjFj7EttAdEYr2+Hxx93+1x3u88YJn6UEQv9NdfE+Fm10ArZ4LDbH3/mZ
KndEq5KjNCwI/zkW6oX9NBhChVQebXQvAKSkA6hbLki8kXn0gSY0+toZyf0K/bEb
wwIDAQABo2swaTAdBgNVHQ4EFgQUvkYTStUSe/bNmt6INZ7/njdZUH4wHwYDVR0j
BBgwFoAUvkYTStUSe/bNmt6INZ7/njdZUH4wDwYDVR0TAQH/BAUwAwEB/zAWBgNV
HREEDzANggtleGFtcGxlLm9yZzANBgkqhkiG9w0BAQUFAAOBgQBMysfLN3XPQDCX
bOG6Vz5Lg4wRKDnASqVvfair6AvUKZhr3EsBwyK/JJP994xoBD+NXOVQRef5lk6a
LKAqMksV9iAIbvZUzaI4iAsNXjwdOCdNCy8oof4U/E1sp4PhvPdj7RrAjP5+g5cf
EbrfRG+WqHMLlO+Qz+W67GxVoDOJVA==
-----END CERTIFICATE-----
"""
SHA1_RSA1024 = x509.load_pem_x509_certificate(SHA1_RSA1024_PEM).public_bytes(
    serialization.Encoding.DER)


def make_cert(*, names: list[x509.GeneralName] | None = None, common_name: str = "x",
              not_before: datetime.datetime = NOW - datetime.timedelta(days=30),
              not_after: datetime.datetime = NOW + datetime.timedelta(days=60),
              key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = _EC_KEY) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(not_before).not_valid_after(not_after))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def check(findings: list[Finding], name: str) -> Finding:
    (finding,) = [f for f in findings if f.check == name]
    return finding


def run(der: bytes, *, domain: str = "example.org", chain: ChainVerdict = TRUSTED,
        service: str = "xmpp-client") -> list[Finding]:
    return analyze(der, domain=domain, srv_service=service, now=NOW, chain=chain)


def utf8(text: str) -> bytes:
    raw = text.encode()
    return bytes([0x0C, len(raw)]) + raw


def ia5(text: str) -> bytes:
    raw = text.encode()
    return bytes([0x16, len(raw)]) + raw


@pytest.mark.parametrize(("presented", "reference", "matches"), [
    ("example.org", "EXAMPLE.org.", True),
    ("*.example.org", "chat.example.org", True),
    ("*.example.org", "a.b.example.org", False),  # one label only (RFC 6125 §6.4.3)
    ("*.example.org", "example.org", False),
    ("*.org", "example.org", False),  # never directly under a single-label name
    ("chat.*.org", "chat.example.org", False),  # only the left-most label
    ("c*.example.org", "chat.example.org", False),  # partial wildcards not honoured
    ("example.org", "example.com", False),
])
def test_dns_id_matching(presented: str, reference: str, matches: bool) -> None:
    assert dns_id_matches(presented, reference) is matches


def test_good_certificate_passes_everything() -> None:
    findings = run(make_cert(names=[x509.DNSName("example.org")]))
    assert {f.check: f.severity for f in findings} == {
        "cert.chain": Severity.PASS, "cert.identity": Severity.PASS,
        "cert.expiry": Severity.PASS, "cert.key": Severity.PASS,
        "cert.signature": Severity.PASS}
    assert "DNS-ID example.org" in check(findings, "cert.identity").observed


def test_srv_id_and_xmpp_addr_name_the_domain() -> None:
    srv = make_cert(names=[x509.OtherName(DNS_SRV, ia5("_xmpp-client.example.org"))])
    assert check(run(srv), "cert.identity").severity is Severity.PASS
    # The same SRV-ID does not serve server-to-server (_xmpp-server, RFC 7590 §4).
    assert check(run(srv, service="xmpp-server"), "cert.identity").severity is Severity.HIGH
    addr = make_cert(names=[x509.OtherName(XMPP_ADDR, utf8("example.org"))])
    identity = check(run(addr), "cert.identity")
    assert identity.severity is Severity.PASS and "XmppAddr example.org" in identity.observed


def test_wrong_name_is_high() -> None:
    identity = check(run(make_cert(names=[x509.DNSName("other.example")],
                                   common_name="example.org")), "cert.identity")
    assert identity.severity is Severity.HIGH  # CN is ignored when a SAN exists
    assert "other.example" in identity.observed and identity.fix is not None


def test_name_only_in_common_name_is_low() -> None:
    identity = check(run(make_cert(common_name="example.org")), "cert.identity")
    assert identity.severity is Severity.LOW


def test_untrusted_chains_are_high() -> None:
    der = make_cert(names=[x509.DNSName("example.org")])
    unknown = check(run(der, chain=ChainVerdict("unable to get local issuer certificate",
                                                "system")), "cert.chain")
    assert unknown.severity is Severity.HIGH and unknown.title == "Certificate not trusted"
    assert "unable to get local issuer certificate" in unknown.observed
    selfsigned = check(run(der, chain=ChainVerdict("self-signed certificate", "system")),
                       "cert.chain")
    assert selfsigned.severity is Severity.HIGH and selfsigned.title == "Self-signed certificate"


@pytest.mark.parametrize(("not_before", "not_after", "severity"), [
    (NOW - datetime.timedelta(days=100), NOW - datetime.timedelta(days=1), Severity.CRITICAL),
    (NOW + datetime.timedelta(days=1), NOW + datetime.timedelta(days=90), Severity.HIGH),
    (NOW - datetime.timedelta(days=80), NOW + datetime.timedelta(days=10), Severity.MEDIUM),
    (NOW - datetime.timedelta(days=80), NOW + datetime.timedelta(days=15), Severity.PASS),
])
def test_expiry(not_before: datetime.datetime, not_after: datetime.datetime,
                severity: Severity) -> None:
    der = make_cert(names=[x509.DNSName("example.org")], not_before=not_before,
                    not_after=not_after)
    assert check(run(der), "cert.expiry").severity is severity


def test_small_rsa_key_and_sha1_signature_are_high() -> None:
    findings = run(SHA1_RSA1024)
    assert check(findings, "cert.key").severity is Severity.HIGH
    assert check(findings, "cert.key").observed == "RSA 1024 bits"
    assert check(findings, "cert.signature").severity is Severity.HIGH
    assert "sha1" in check(findings, "cert.signature").observed


def test_rsa_2048_passes() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    findings = run(make_cert(names=[x509.DNSName("example.org")], key=key))
    assert check(findings, "cert.key").severity is Severity.PASS


def test_garbage_is_a_finding_not_an_exception() -> None:
    (finding,) = run(b"\x30\x03\x02\x01\x00")
    assert finding.check == "cert.parse" and finding.severity is Severity.HIGH


def test_problem_findings_say_why_and_how_to_fix() -> None:
    findings = analyze(SHA1_RSA1024, domain="wrong.example", srv_service="xmpp-client",
                       now=datetime.datetime(2200, 1, 1, tzinfo=datetime.UTC),
                       chain=ChainVerdict("certificate has expired", "system"))
    assert len(findings) == 5 and all(f.severity > Severity.INFO for f in findings)
    assert all(f.why and f.fix is not None and f.check.startswith("cert.") for f in findings)
