"""Certificate helpers: self-signed certificates, fingerprints, RFC 5929 channel-binding data."""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

#: id-on-xmppAddr, RFC 6120 §13.7.1.4.
XMPP_ADDR_OID = ObjectIdentifier("1.3.6.1.5.5.7.8.5")


def self_signed(domain: str, now: datetime.datetime, days: int = 825) -> tuple[bytes, bytes]:
    """A P-256 key and a self-signed certificate for ``domain`` (PEM cert, PEM key).

    The certificate names the domain as DNS-ID (RFC 6125) so clients that pin it can check it.
    ``now`` (timezone-aware) starts its validity: the core reads no clock.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def fingerprint_sha256(der: bytes) -> str:
    """Lower-case hex SHA-256 of a DER certificate, as stored for SASL EXTERNAL."""
    return hashlib.sha256(der).hexdigest()


def first_cert_der(pem_chain: bytes) -> bytes:
    """The DER of the first (leaf) certificate in a PEM chain."""
    return x509.load_pem_x509_certificate(pem_chain).public_bytes(serialization.Encoding.DER)


def tls_server_end_point(der: bytes) -> bytes:
    """RFC 5929 §4.1: the certificate hashed with its signature hash (MD5/SHA-1 → SHA-256)."""
    cert = x509.load_der_x509_certificate(der)
    algo = cert.signature_hash_algorithm
    name = algo.name if algo is not None else "sha256"
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, der).digest()


def is_ca_certificate(der: bytes) -> bool:
    """Whether the certificate may sign others (basicConstraints CA:TRUE)."""
    cert = x509.load_der_x509_certificate(der)
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def issued_by_any(der: bytes, ca_pem_bundle: bytes) -> bool:
    """Whether a CA in the PEM bundle signed this certificate directly."""
    cert = x509.load_der_x509_certificate(der)
    for ca in x509.load_pem_x509_certificates(ca_pem_bundle):
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def xmpp_addresses(der: bytes) -> list[str]:
    """The XmppAddr identities (RFC 6120 §13.7.1.4) in a certificate's subjectAltName."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    found = []
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == XMPP_ADDR_OID:
            found.append(_der_utf8string(other.value))
    return [f for f in found if f]


def _der_utf8string(value: bytes) -> str:
    # The otherName value is a DER UTF8String (tag 0x0C) with a short or long length.
    if len(value) < 2 or value[0] != 0x0C:
        return ""
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(value[2:2 + count], "big")
        offset = 2 + count
    try:
        return value[offset:offset + length].decode("utf-8")
    except UnicodeDecodeError:
        return ""
