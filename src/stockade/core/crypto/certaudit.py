"""Audit of a server certificate for XMPP (sans-I/O; the probe fetches the bytes).

Rules (version 1): chain not trusted HIGH (self-signed or unknown issuer: the documents behind
Stockade name "users trusting unknown certificates" as a typical failure); no identity for
the domain HIGH (RFC 6125 §6 with the XMPP identifiers of RFC 7590 §4 / RFC 6120 §13.7.1.4:
DNS-ID, SRV-ID ``_xmpp-client.<domain>``, XmppAddr); a match only through the subject CN LOW;
expired CRITICAL, not yet valid HIGH, expiring within 14 days MEDIUM; RSA/DSA below 2048 bits
or EC below 256 bits HIGH; SHA-1 or MD5 signature HIGH.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from stockade.core.audit.model import Finding, Fix, Severity
from stockade.core.crypto.certs import XMPP_ADDR_OID

__all__ = ["EXPIRY_WARNING_DAYS", "ChainVerdict", "analyze", "dns_id_matches"]

EXPIRY_WARNING_DAYS: Final = 14
SRV_NAME_OID: Final = ObjectIdentifier("1.3.6.1.5.5.7.8.7")  # id-on-dnsSRV, RFC 4985 §2
_UTF8STRING: Final = 0x0C
_IA5STRING: Final = 0x16

_FIX_CERT: Final = Fix(
    stockade="Set [tls] cert and key to a certificate from a public CA (e.g. ACME / Let's "
             "Encrypt) whose subjectAltName carries the XMPP domain; the generated self-signed "
             "one is only for testing.",
    prosody="Run `prosodyctl cert import /etc/letsencrypt/live` (or set ssl = { certificate, "
            "key } per VirtualHost) with a CA-issued certificate naming the domain.",
    ejabberd="List the CA-issued PEM in certfiles: (or enable acme:) so a certificate naming "
             "the host is served; check with `ejabberdctl list_certificates`.",
)
_FIX_RENEW: Final = Fix(
    stockade="Renew the certificate and point [tls] cert/key at it (restart or reload); "
             "automate renewal with an ACME client.",
    prosody="Renew (certbot renew) and `prosodyctl cert import`, then `prosodyctl reload`.",
    ejabberd="Renew (acme: auto: true renews itself) and `ejabberdctl reload_config`.",
)
_FIX_KEY: Final = Fix(
    stockade="Issue a new certificate with a P-256 or RSA-3072 key signed with SHA-256 and "
             "set [tls] cert/key.",
    prosody="Reissue with a P-256 or RSA >= 2048 key (SHA-256 signature) and re-import it.",
    ejabberd="Reissue with a P-256 or RSA >= 2048 key (SHA-256 signature) in certfiles:.",
)


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """What the verifying handshake said.

    Attributes:
        error: None if the chain verified, else OpenSSL's message ("self-signed
            certificate", "unable to get local issuer certificate", ...).
        trust: what it was verified against ("system trust store", a CA file path).
    """

    error: str | None
    trust: str


def analyze(der: bytes, *, domain: str, srv_service: str, now: datetime.datetime,
            chain: ChainVerdict) -> list[Finding]:
    """Findings for the leaf certificate ``der`` served for XMPP ``domain``.

    Args:
        der: the leaf certificate, DER.
        domain: the XMPP domain the certificate must name.
        srv_service: "xmpp-client" or "xmpp-server" (for the SRV-ID).
        now: timezone-aware current time (the core reads no clock).
        chain: the verifying handshake's result.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as error:
        return [Finding("cert.parse", "Certificate cannot be parsed", Severity.HIGH,
                        f"{len(der)} bytes: {error}",
                        why="Clients will refuse a certificate they cannot parse.",
                        fix=_FIX_CERT)]
    return [
        _chain_finding(cert, chain),
        _identity_finding(cert, domain, srv_service),
        _expiry_finding(cert, now),
        _key_finding(cert),
        _signature_finding(cert),
    ]


def _chain_finding(cert: x509.Certificate, chain: ChainVerdict) -> Finding:
    subject = cert.subject.rfc4514_string()
    if chain.error is None:
        return Finding("cert.chain", "Certificate chain verifies", Severity.PASS,
                       f"subject {subject}, issuer {cert.issuer.rfc4514_string()}; verified "
                       f"against {chain.trust}")
    self_signed = cert.issuer == cert.subject or "self-signed" in chain.error \
        or "self signed" in chain.error
    title = "Self-signed certificate" if self_signed else "Certificate not trusted"
    return Finding("cert.chain", title, Severity.HIGH,
                   f"verification against {chain.trust} failed: {chain.error}; subject "
                   f"{subject}, issuer {cert.issuer.rfc4514_string()}",
                   why="Clients either refuse the connection or teach their users to accept "
                       "unknown certificates, which lets any attacker on the path read the "
                       "stream.",
                   fix=_FIX_CERT)


def dns_id_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4: case-insensitive label match; a wildcard only as the whole left-most
    label, standing for exactly one label, and never directly above a single-label name."""
    pattern = presented.rstrip(".").lower().split(".")
    name = reference.rstrip(".").lower().split(".")
    if len(pattern) != len(name) or not all(pattern):
        return False
    if pattern[0] == "*":
        if len(pattern) < 3 or "*" in ".".join(pattern[1:]):
            return False
        return pattern[1:] == name[1:]
    return "*" not in ".".join(pattern) and pattern == name


def _identity_finding(cert: x509.Certificate, domain: str, srv_service: str) -> Finding:
    dns, srv, xmpp = _identifiers(cert)
    matched = [f"DNS-ID {d}" for d in dns if dns_id_matches(d, domain)]
    srv_id = f"_{srv_service}.{domain}".lower()
    matched += [f"SRV-ID {s}" for s in srv if s.lower() == srv_id]
    matched += [f"XmppAddr {x}" for x in xmpp if x.lower() == domain.lower()]
    presented = (f"DNS-IDs {dns or 'none'}, SRV-IDs {srv or 'none'}, "
                 f"XmppAddrs {xmpp or 'none'}")
    if matched:
        return Finding("cert.identity", "Certificate names the domain", Severity.PASS,
                       f"{domain} matched by {', '.join(matched)}")
    common_names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not (dns or srv or xmpp) and any(dns_id_matches(cn, domain) for cn in common_names):
        return Finding("cert.identity", "Domain only in the subject CN", Severity.LOW,
                       f"no subjectAltName; CN {common_names}",
                       why="RFC 6125 §6.4.4 lets clients ignore the CN; modern ones do and "
                           "will refuse this certificate.", fix=_FIX_CERT)
    return Finding("cert.identity", "Certificate does not name the domain", Severity.HIGH,
                   f"{domain} not matched; {presented}; CN {common_names}",
                   why="A client that checks identity (RFC 6120 §13.7.2) refuses the "
                       "connection; one that does not can be served any certificate by an "
                       "attacker.", fix=_FIX_CERT)


def _identifiers(cert: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
    """(DNS-IDs, SRV-IDs, XmppAddrs) from subjectAltName (RFC 6120 §13.7.1.4)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [], []
    dns = [str(d) for d in san.get_values_for_type(x509.DNSName)]
    srv: list[str] = []
    xmpp: list[str] = []
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == SRV_NAME_OID:
            srv += _der_string(other.value, _IA5STRING)
        elif other.type_id == XMPP_ADDR_OID:
            xmpp += _der_string(other.value, _UTF8STRING)
    return dns, srv, xmpp


def _der_string(value: bytes, tag: int) -> list[str]:
    """Decode one short-form or long-form DER string of ``tag``; [] if it is not one."""
    if len(value) < 2 or value[0] != tag:
        return []
    length, start = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(value[2:2 + count], "big"), 2 + count
    body = value[start:start + length]
    if len(body) != length:
        return []
    try:
        return [body.decode("utf-8")]
    except UnicodeDecodeError:
        return []


def _expiry_finding(cert: x509.Certificate, now: datetime.datetime) -> Finding:
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    observed = f"valid {not_before.isoformat()} to {not_after.isoformat()}"
    if not_after <= now:
        return Finding("cert.expiry", "Certificate expired", Severity.CRITICAL, observed,
                       why="Every verifying client refuses it; users are pushed to click "
                           "through warnings.", fix=_FIX_RENEW)
    if not_before > now:
        return Finding("cert.expiry", "Certificate not yet valid", Severity.HIGH, observed,
                       why="Verifying clients refuse it (or the server's clock is wrong).",
                       fix=_FIX_RENEW)
    left = not_after - now
    if left < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return Finding("cert.expiry", "Certificate expires soon", Severity.MEDIUM,
                       f"{observed}; {left.days} days left",
                       why="Renewal seems not to be automated; clients will refuse it soon.",
                       fix=_FIX_RENEW)
    return Finding("cert.expiry", "Certificate within its validity", Severity.PASS,
                   f"{observed}; {left.days} days left")


def _key_finding(cert: x509.Certificate) -> Finding:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        bits, weak = key.key_size, key.key_size < 2048
    elif isinstance(key, ec.EllipticCurvePublicKey):
        kind, bits, weak = f"EC {key.curve.name}", key.curve.key_size, key.curve.key_size < 256
    else:
        kind, bits, weak = type(key).__name__.removeprefix("_"), 0, False
    observed = f"{kind} {bits} bits" if bits else kind
    if weak:
        return Finding("cert.key", "Weak certificate key", Severity.HIGH, observed,
                       why="Keys this small can be factored or solved by a well-funded "
                           "attacker; RFC 9325 §4.3 wants RSA >= 2048, EC >= 224/256 bits.",
                       fix=_FIX_KEY)
    return Finding("cert.key", "Certificate key size", Severity.PASS, observed)


def _signature_finding(cert: x509.Certificate) -> Finding:
    algorithm = cert.signature_hash_algorithm
    name = algorithm.name if algorithm is not None else cert.signature_algorithm_oid.dotted_string
    observed = f"signature hash {name} (OID {cert.signature_algorithm_oid.dotted_string})"
    if isinstance(algorithm, hashes.SHA1 | hashes.MD5):
        return Finding("cert.signature", "Weak certificate signature", Severity.HIGH, observed,
                       why="SHA-1 and MD5 collisions are practical; forged certificates with "
                           "the same signature can be made.", fix=_FIX_KEY)
    return Finding("cert.signature", "Certificate signature algorithm", Severity.PASS, observed)
