"""Build a TLS ClientHello and read the server's first answer (RFC 8446 §4.1, RFC 5246 §7.4.1).

Sans-I/O: bytes in, bytes or a dataclass out. Tests and ``stockade audit`` use it to ask a
server which protocol versions and cipher suites it accepts, including ones this machine's
OpenSSL can no longer offer (3DES, RC4, EXPORT). Only the first flight matters: the server
answers a ClientHello with a ServerHello (RFC 8446 §4.1.3) or an Alert (RFC 8446 §6), and
nothing after that is read, so no key is ever derived and the handshake is never finished.
"""

from __future__ import annotations

import enum
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from stockade.core.errors import LocalProtocolError, StockadeError

__all__ = [
    "DEFAULT_GROUPS",
    "DEFAULT_SIGNATURE_ALGORITHMS",
    "MAX_RECORD_BYTES",
    "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    "Alert",
    "AlertDescription",
    "AlertLevel",
    "ContentType",
    "ExtensionType",
    "HandshakeType",
    "NamedGroup",
    "ServerHello",
    "ServerResponse",
    "SignatureScheme",
    "TLSDecodeError",
    "TLSVersion",
    "build_client_hello",
    "parse_server_response",
]


class TLSDecodeError(StockadeError, ValueError):
    """The peer's bytes are not a well-formed TLS ServerHello or Alert.

    Typical cause: the peer is not speaking TLS (an XMPP server still sending XML, an HTTP
    server), or it broke a MUST of RFC 8446 / RFC 5246.
    """


class TLSVersion(enum.IntEnum):
    """ProtocolVersion code points (RFC 8446 §4.1.2, RFC 5246 Appendix E, RFC 6101 §5.2)."""

    SSL3 = 0x0300
    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303
    TLS1_3 = 0x0304


class ContentType(enum.IntEnum):
    """TLSPlaintext.type (RFC 8446 §5.1, RFC 5246 §6.2.1)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class HandshakeType(enum.IntEnum):
    """Handshake.msg_type values this module writes or reads (RFC 8446 §4)."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2


class ExtensionType(enum.IntEnum):
    """Extension code points used here (RFC 8446 §4.2, IANA TLS ExtensionType registry)."""

    SERVER_NAME = 0  # RFC 6066 §3
    STATUS_REQUEST = 5  # RFC 6066 §8 (OCSP stapling)
    SUPPORTED_GROUPS = 10  # RFC 8422 §5.1.1, RFC 8446 §4.2.7
    EC_POINT_FORMATS = 11  # RFC 8422 §5.1.2
    SIGNATURE_ALGORITHMS = 13  # RFC 5246 §7.4.1.4.1, RFC 8446 §4.2.3
    EXTENDED_MASTER_SECRET = 23  # RFC 7627 §5.1
    SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
    KEY_SHARE = 51  # RFC 8446 §4.2.8
    RENEGOTIATION_INFO = 0xFF01  # RFC 5746 §3.2


class NamedGroup(enum.IntEnum):
    """Key-exchange groups (RFC 8446 §4.2.7, RFC 7919 §2)."""

    SECP256R1 = 0x0017
    SECP384R1 = 0x0018
    SECP521R1 = 0x0019
    X25519 = 0x001D
    X448 = 0x001E
    FFDHE2048 = 0x0100
    FFDHE3072 = 0x0101
    FFDHE4096 = 0x0102


class SignatureScheme(enum.IntEnum):
    """Signature schemes (RFC 8446 §4.2.3; 0x0401-0x0601 also RFC 5246 §7.4.1.4.1 pairs)."""

    RSA_PKCS1_SHA256 = 0x0401
    RSA_PKCS1_SHA384 = 0x0501
    RSA_PKCS1_SHA512 = 0x0601
    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    RSA_PSS_RSAE_SHA256 = 0x0804
    RSA_PSS_RSAE_SHA384 = 0x0805
    RSA_PSS_RSAE_SHA512 = 0x0806
    ED25519 = 0x0807
    ED448 = 0x0808


class AlertLevel(enum.IntEnum):
    """AlertLevel (RFC 8446 §6, RFC 5246 §7.2)."""

    WARNING = 1
    FATAL = 2


class AlertDescription(enum.IntEnum):
    """AlertDescription (RFC 8446 §6, plus the older codes of RFC 5246 §7.2 and RFC 6101)."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    DECRYPTION_FAILED = 21
    RECORD_OVERFLOW = 22
    DECOMPRESSION_FAILURE = 30
    HANDSHAKE_FAILURE = 40
    NO_CERTIFICATE = 41
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    EXPORT_RESTRICTION = 60
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    NO_RENEGOTIATION = 100
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    CERTIFICATE_UNOBTAINABLE = 111
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    BAD_CERTIFICATE_HASH_VALUE = 114
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    NO_APPLICATION_PROTOCOL = 120


TLS_EMPTY_RENEGOTIATION_INFO_SCSV: Final = 0x00FF
"""RFC 5746 §3.3: signals secure renegotiation where extensions cannot be sent (SSL 3.0)."""

DEFAULT_GROUPS: Final[tuple[int, ...]] = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
)

DEFAULT_SIGNATURE_ALGORITHMS: Final[tuple[int, ...]] = (
    SignatureScheme.ECDSA_SECP256R1_SHA256,
    SignatureScheme.ECDSA_SECP384R1_SHA384,
    SignatureScheme.ECDSA_SECP521R1_SHA512,
    SignatureScheme.ED25519,
    SignatureScheme.ED448,
    SignatureScheme.RSA_PSS_RSAE_SHA256,
    SignatureScheme.RSA_PSS_RSAE_SHA384,
    SignatureScheme.RSA_PSS_RSAE_SHA512,
    SignatureScheme.RSA_PKCS1_SHA256,
    SignatureScheme.RSA_PKCS1_SHA384,
    SignatureScheme.RSA_PKCS1_SHA512,
)

MAX_RECORD_BYTES: Final = 2**14 + 2048
"""Largest record fragment accepted: RFC 5246 §6.2.3 TLSCiphertext.length bound.

RFC 8446 §5.1 caps plaintext at 2^14; the looser ciphertext bound is the most any record
may carry in any version, so anything longer is refused without buffering it.
"""

_MAX_PLAINTEXT_FRAGMENT: Final = 2**14  # RFC 8446 §5.1 / RFC 5246 §6.2.1: what we send
_RECORD_HEADER_BYTES: Final = 5
_HANDSHAKE_HEADER_BYTES: Final = 4
_RANDOM_BYTES: Final = 32
_MAX_SESSION_ID_BYTES: Final = 32
_MAX_SERVER_HELLO_BYTES: Final = 2 + _RANDOM_BYTES + 1 + _MAX_SESSION_ID_BYTES + 2 + 1 + 2 + 0xFFFF
_MAX_WARNING_ALERTS: Final = 4  # bound on tolerated warning alerts before the ServerHello
# Bound on records before the ServerHello completes: RFC 5246 §6.2.1 allows 1-byte
# fragments, but a 100-byte ServerHello needs no more than this even then.
_MAX_RECORDS: Final = 512

# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello whose Random is SHA-256 of
# "HelloRetryRequest".
_HRR_RANDOM: Final = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
# RFC 8446 §4.1.3: last 8 bytes of ServerHello.random when a TLS 1.3 server negotiates 1.2
# ("...01") or 1.1 and below ("...00").
_DOWNGRADE_PREFIX: Final = b"DOWNGRD"

# SEC 1 §2.4.1 base points, uncompressed (RFC 8446 §4.2.8.2 UncompressedPointRepresentation).
# They are valid public keys that need no EC arithmetic here; the handshake is never finished.
_P256_GENERATOR: Final = bytes.fromhex(
    "04"
    "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
)
_P384_GENERATOR: Final = bytes.fromhex(
    "04"
    "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a38"
    "5502f25dbf55296c3a545e3872760ab7"
    "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c0"
    "0a60b1ce1d7e819d7a431d7c90ea0e5f"
)


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """An Alert record (RFC 8446 §6, RFC 5246 §7.2).

    Attributes:
        level: warning or fatal.
        description: the AlertDescription code; an ``int`` so unknown codes survive.
    """

    level: AlertLevel
    description: int

    @property
    def description_name(self) -> str:
        """The RFC name of the description, e.g. ``"protocol_version"``."""
        try:
            return AlertDescription(self.description).name.lower()
        except ValueError:
            return f"unknown_{self.description}"

    @property
    def is_fatal(self) -> bool:
        """Whether the level is fatal (RFC 8446 §6 treats most warnings as fatal too)."""
        return self.level is AlertLevel.FATAL


@dataclass(frozen=True, slots=True)
class ServerHello:
    """The server's ServerHello or HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4, RFC 5246 §7.4.1.3).

    Attributes:
        version: negotiated version; from ``supported_versions`` when present (RFC 8446
            §4.2.1), else ``legacy_version``.
        cipher_suite: chosen cipher suite code point (see ``stockade.core.tls.suites``).
        selected_group: group from ``key_share`` (RFC 8446 §4.2.8), or None.
        is_hello_retry_request: the Random is the RFC 8446 §4.1.3 HelloRetryRequest value.
        legacy_version: the ServerHello.version / legacy_version field as sent.
        random: ServerHello.random.
        session_id: legacy_session_id_echo.
        compression_method: chosen compression method (0 = null).
        extensions: ``(type, data)`` pairs in the order the server sent them.
        warning_alerts: warning alerts the server sent before its ServerHello.
    """

    version: TLSVersion
    cipher_suite: int
    selected_group: int | None
    is_hello_retry_request: bool
    legacy_version: int
    random: bytes
    session_id: bytes
    compression_method: int
    extensions: tuple[tuple[int, bytes], ...]
    warning_alerts: tuple[Alert, ...] = ()

    @property
    def extension_types(self) -> tuple[int, ...]:
        """The extension types present, in order."""
        return tuple(ext_type for ext_type, _ in self.extensions)

    @property
    def downgrade_sentinel(self) -> TLSVersion | None:
        """The version named by an RFC 8446 §4.1.3 downgrade sentinel, if present.

        ``TLS1_2``: a TLS 1.3 server negotiated TLS 1.2; ``TLS1_1``: a TLS 1.2+ server
        negotiated TLS 1.1 or below. None when the Random carries no sentinel.
        """
        tail = self.random[-8:]
        if tail[:7] != _DOWNGRADE_PREFIX or tail[7] not in (0, 1):
            return None
        return TLSVersion.TLS1_2 if tail[7] == 1 else TLSVersion.TLS1_1


ServerResponse: TypeAlias = ServerHello | Alert


# ---------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------


def build_client_hello(
    *,
    version: TLSVersion,
    cipher_suites: Sequence[int],
    server_name: str | None,
    groups: Sequence[int] = DEFAULT_GROUPS,
    signature_algorithms: Sequence[int] = DEFAULT_SIGNATURE_ALGORITHMS,
    include_tls13_key_share: bool = True,
    compression_methods: Sequence[int] = (0,),
    request_ocsp_status: bool = False,
) -> bytes:
    """Build TLS record(s) carrying one ClientHello that offers exactly ``version``.

    TLS 1.3 (RFC 8446 §4.1.2): legacy_version 0x0303, ``supported_versions`` = {1.3},
    a 32-byte legacy_session_id (middlebox compatibility, RFC 8446 Appendix D.4) and, if
    ``include_tls13_key_share``, one ``key_share`` entry for the first of ``groups`` we can
    fill (X25519/X448 random bytes, P-256/P-384 base point); otherwise an empty key_share,
    which makes a willing server answer with a HelloRetryRequest (RFC 8446 §4.1.4).

    TLS 1.0-1.2 (RFC 5246 §7.4.1.2): client_version = ``version``; SSL 3.0 (RFC 6101
    §5.6.1.2) sends no extensions and signals RFC 5746 with the SCSV instead.

    The record version is 0x0301 for TLS 1.2 and 1.3 (RFC 8446 §5.1, what real clients
    send) and ``version`` itself below. Messages over 2^14 bytes are split into several
    records (RFC 5246 §6.2.1).

    Args:
        version: the one protocol version to offer.
        cipher_suites: code points to offer, in preference order.
        server_name: DNS host name for SNI (RFC 6066 §3), or None to omit it.
        groups: ``supported_groups`` contents; empty omits the extension.
        signature_algorithms: ``signature_algorithms`` contents (TLS 1.2+ only).
        include_tls13_key_share: whether a TLS 1.3 hello carries a key share.
        compression_methods: CompressionMethod values (RFC 5246 §7.4.1.2; 1 = DEFLATE,
            RFC 3749 §2), in preference order; must include null (0). Audits offer DEFLATE
            to learn whether a server still compresses (CRIME).
        request_ocsp_status: add an OCSP ``status_request`` (RFC 6066 §8); a TLS 1.2 server
            that will staple a response echoes it empty in its ServerHello.

    Returns:
        The bytes to write to the socket.

    Raises:
        LocalProtocolError: an argument cannot be encoded.
    """
    version = _check_version(version)
    suites = _check_code_points("cipher_suites", cipher_suites, allow_empty=False)
    body = _client_hello_body(
        version,
        suites,
        _check_compression_methods(compression_methods),
        _extensions(
            version,
            _encode_server_name(server_name),
            _check_code_points("groups", groups, allow_empty=True),
            _check_code_points("signature_algorithms", signature_algorithms, allow_empty=True),
            include_tls13_key_share=include_tls13_key_share,
            request_ocsp_status=request_ocsp_status,
        ),
    )
    message = _u8(HandshakeType.CLIENT_HELLO) + _u24(len(body)) + body
    return _records(ContentType.HANDSHAKE, _record_version(version), message)


def _check_version(version: int) -> TLSVersion:
    try:
        return TLSVersion(version)
    except ValueError:
        raise LocalProtocolError(f"unknown TLS version {version:#06x}") from None


def _check_code_points(what: str, values: Sequence[int], *, allow_empty: bool) -> tuple[int, ...]:
    """Validate a uint16 list; RFC 8446 §3.4 vectors hold at most 2^16-2 bytes here."""
    checked = tuple(values)
    if not checked and not allow_empty:
        raise LocalProtocolError(f"{what} must not be empty")
    if len(checked) > 0x7FFE:
        raise LocalProtocolError(f"{what}: more than {0x7FFE} entries")
    for value in checked:
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise LocalProtocolError(f"{what}: {value!r} is not a uint16 code point")
    return checked


def _check_compression_methods(methods: Sequence[int]) -> bytes:
    """RFC 5246 §7.4.1.2: the list "MUST contain, and all implementations MUST support,
    CompressionMethod.null"; each method is one byte."""
    checked = tuple(methods)
    if 0 not in checked:
        raise LocalProtocolError("compression_methods must include null (0)")
    if len(checked) > 0xFF or any(not isinstance(m, int) or not 0 <= m <= 0xFF for m in checked):
        raise LocalProtocolError(f"compression_methods: {checked!r} are not uint8 values")
    return bytes(checked)


def _encode_server_name(server_name: str | None) -> bytes | None:
    """Validate an SNI HostName (RFC 6066 §3): ASCII DNS name, no IP literal, no final dot."""
    if server_name is None:
        return None
    try:
        ipaddress.ip_address(server_name)
    except ValueError:
        pass
    else:
        # RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in "HostName"."
        raise LocalProtocolError("server_name must be a DNS name, not an IP address")
    if not server_name.isascii() or not 0 < len(server_name) <= 253 or server_name.endswith("."):
        raise LocalProtocolError("server_name must be an ASCII (A-label) DNS name")
    return server_name.encode("ascii")


def _client_hello_body(
    version: TLSVersion, suites: tuple[int, ...], compression: bytes, extensions: bytes | None
) -> bytes:
    """ClientHello fields in order (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2)."""
    if version is TLSVersion.SSL3:
        suites = (*suites, TLS_EMPTY_RENEGOTIATION_INFO_SCSV)
    session_id = secrets.token_bytes(32) if version is TLSVersion.TLS1_3 else b""
    return b"".join(
        (
            _u16(min(version, TLSVersion.TLS1_2)),
            secrets.token_bytes(_RANDOM_BYTES),
            _vector(session_id, 1),
            _vector(b"".join(_u16(s) for s in suites), 2),
            _vector(compression, 1),  # null only unless an audit asks (RFC 8446 §4.1.2)
            b"" if extensions is None else _vector(extensions, 2),
        )
    )


def _extensions(
    version: TLSVersion,
    host_name: bytes | None,
    groups: tuple[int, ...],
    signature_algorithms: tuple[int, ...],
    *,
    include_tls13_key_share: bool,
    request_ocsp_status: bool,
) -> bytes | None:
    """The extension block a mainstream client sends, or None for SSL 3.0."""
    if version is TLSVersion.SSL3:
        return None
    exts: list[tuple[int, bytes]] = []
    if host_name is not None:
        exts.append((ExtensionType.SERVER_NAME, _server_name_ext(host_name)))
    exts.append((ExtensionType.EXTENDED_MASTER_SECRET, b""))
    # RFC 5746 §3.4: an initial ClientHello carries an empty renegotiated_connection.
    exts.append((ExtensionType.RENEGOTIATION_INFO, b"\x00"))
    if groups:
        exts.append((ExtensionType.SUPPORTED_GROUPS, _u16_list(groups)))
        exts.append((ExtensionType.EC_POINT_FORMATS, _vector(b"\x00", 1)))  # uncompressed
    if request_ocsp_status:
        # RFC 6066 §8 CertificateStatusRequest: ocsp(1), no responder ids, no extensions.
        exts.append((ExtensionType.STATUS_REQUEST, b"\x01\x00\x00\x00\x00"))
    # RFC 5246 §7.4.1.4.1: "Clients MUST NOT offer it if they are offering prior versions."
    if signature_algorithms and version >= TLSVersion.TLS1_2:
        exts.append((ExtensionType.SIGNATURE_ALGORITHMS, _u16_list(signature_algorithms)))
    if version is TLSVersion.TLS1_3:
        exts.append((ExtensionType.SUPPORTED_VERSIONS, _vector(_u16(TLSVersion.TLS1_3), 1)))
        key_share = _key_share_entry(groups) if include_tls13_key_share else b""
        exts.append((ExtensionType.KEY_SHARE, _vector(key_share, 2)))
    return b"".join(_u16(t) + _vector(data, 2) for t, data in exts)


def _server_name_ext(host_name: bytes) -> bytes:
    """ServerNameList with one host_name(0) entry (RFC 6066 §3)."""
    return _vector(b"\x00" + _vector(host_name, 2), 2)


def _key_share_entry(groups: tuple[int, ...]) -> bytes:
    """One KeyShareEntry (RFC 8446 §4.2.8) for the first group we can fill, else empty.

    X25519/X448 accept any string of the right length as a public value (RFC 7748 §5);
    for the NIST curves the base point is a valid uncompressed point (RFC 8446 §4.2.8.2).
    """
    for group in groups:
        if group == NamedGroup.X25519:
            key = secrets.token_bytes(32)
        elif group == NamedGroup.X448:
            key = secrets.token_bytes(56)
        elif group == NamedGroup.SECP256R1:
            key = _P256_GENERATOR
        elif group == NamedGroup.SECP384R1:
            key = _P384_GENERATOR
        else:
            continue
        return _u16(group) + _vector(key, 2)
    return b""


def _record_version(version: TLSVersion) -> int:
    """legacy_record_version for the ClientHello (RFC 8446 §5.1, RFC 5246 Appendix E.1)."""
    return TLSVersion.TLS1_0 if version >= TLSVersion.TLS1_2 else version


def _records(content_type: int, record_version: int, payload: bytes) -> bytes:
    """Split ``payload`` into TLSPlaintext records of at most 2^14 bytes (RFC 5246 §6.2.1)."""
    chunks = range(0, len(payload), _MAX_PLAINTEXT_FRAGMENT)
    return b"".join(
        _u8(content_type)
        + _u16(record_version)
        + _vector(payload[i : i + _MAX_PLAINTEXT_FRAGMENT], 2)
        for i in chunks
    )


def _u8(value: int) -> bytes:
    return value.to_bytes(1, "big")


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _u24(value: int) -> bytes:
    return value.to_bytes(3, "big")


def _vector(data: bytes, length_bytes: int) -> bytes:
    """A variable-length vector with a ``length_bytes`` length prefix (RFC 8446 §3.4)."""
    return len(data).to_bytes(length_bytes, "big") + data


def _u16_list(values: tuple[int, ...]) -> bytes:
    return _vector(b"".join(_u16(v) for v in values), 2)


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------


class _Reader:
    """Cursor over a complete structure; running short is a decode error (RFC 8446 §3)."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n > self.remaining:
            raise TLSDecodeError("structure shorter than its length fields say")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    def expect_end(self, what: str) -> None:
        if self.remaining:
            raise TLSDecodeError(f"trailing bytes after {what}")


def parse_server_response(data: bytes) -> ServerResponse | None:
    """Parse the server's first answer to a ClientHello from the bytes received so far.

    Call again with all bytes received so far whenever more arrive. Records (RFC 8446 §5.1)
    may split the ServerHello (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3) or hold more messages
    after it; bytes after the ServerHello are ignored. Warning-level alerts before it (TLS
    1.2 servers send ``unrecognized_name`` so, RFC 6066 §3) are kept in
    ``ServerHello.warning_alerts``. Garbage is refused as soon as a byte shows it.

    Args:
        data: every byte received from the server so far.

    Returns:
        None while more bytes are needed, else the ServerHello or Alert.

    Raises:
        TLSDecodeError: the bytes are not TLS or break RFC 8446 / RFC 5246.
    """
    pos = 0
    handshake = bytearray()
    warnings: list[Alert] = []
    for _ in range(_MAX_RECORDS):
        record = _next_record(data, pos)
        if record is None:
            _check_partial_handshake(handshake, data, pos)
            return None
        content_type, fragment = record
        pos += _RECORD_HEADER_BYTES + len(fragment)
        if content_type == ContentType.ALERT:
            alert = _parse_alert(fragment, interleaved=bool(handshake))
            if not _is_tolerated_warning(alert):
                return alert
            _add_warning(warnings, alert)
            continue
        handshake += fragment
        hello = _complete_server_hello(handshake)
        if hello is not None:
            return _parse_server_hello(hello, tuple(warnings))
    raise TLSDecodeError(f"no ServerHello within {_MAX_RECORDS} records")


def _next_record(data: bytes, pos: int) -> tuple[int, bytes] | None:
    """Return the next complete record's (type, fragment) or None if still partial.

    Header bytes are checked as soon as they arrive so non-TLS peers fail fast.
    """
    header = data[pos : pos + _RECORD_HEADER_BYTES]
    _check_record_header(header)
    if len(header) < _RECORD_HEADER_BYTES:
        return None
    length = int.from_bytes(header[3:5], "big")
    end = pos + _RECORD_HEADER_BYTES + length
    if len(data) < end:
        return None
    return header[0], data[pos + _RECORD_HEADER_BYTES : end]


def _check_record_header(header: bytes) -> None:
    """Validate a (possibly partial) record header (RFC 8446 §5.1, RFC 5246 §6.2.1)."""
    if len(header) >= 1 and header[0] not in (ContentType.ALERT, ContentType.HANDSHAKE):
        raise TLSDecodeError(f"record type {header[0]} is not alert or handshake: not TLS?")
    if len(header) >= 2 and header[1] != 3:
        raise TLSDecodeError("record major version is not 3: not TLS?")
    if len(header) >= 3 and header[2] > 4:
        raise TLSDecodeError(f"unknown record version 3.{header[2]}")
    if len(header) < _RECORD_HEADER_BYTES:
        return
    length = int.from_bytes(header[3:5], "big")
    if length > MAX_RECORD_BYTES:
        raise TLSDecodeError(f"record of {length} bytes exceeds {MAX_RECORD_BYTES}")
    if length == 0:
        # RFC 5246 §6.2.1: "Implementations MUST NOT send zero-length fragments of
        # Handshake, Alert, or ChangeCipherSpec content types."
        raise TLSDecodeError("zero-length alert or handshake record")


def _check_partial_handshake(handshake: bytearray, data: bytes, pos: int) -> None:
    """Fail early when a partial handshake record shows its message is no ServerHello."""
    if data[pos : pos + 1] == bytes([ContentType.HANDSHAKE]):
        _complete_server_hello(handshake + data[pos + _RECORD_HEADER_BYTES :])


def _complete_server_hello(handshake: bytes | bytearray) -> bytes | None:
    """Return the ServerHello body once ``handshake`` holds it all (RFC 8446 §4)."""
    if handshake and handshake[0] != HandshakeType.SERVER_HELLO:
        raise TLSDecodeError(f"first handshake message has type {handshake[0]}, not ServerHello")
    if len(handshake) < _HANDSHAKE_HEADER_BYTES:
        return None
    length = int.from_bytes(handshake[1:4], "big")
    if length > _MAX_SERVER_HELLO_BYTES:
        raise TLSDecodeError(f"ServerHello of {length} bytes is longer than any valid one")
    if len(handshake) < _HANDSHAKE_HEADER_BYTES + length:
        return None
    return bytes(handshake[_HANDSHAKE_HEADER_BYTES : _HANDSHAKE_HEADER_BYTES + length])


def _parse_alert(fragment: bytes, *, interleaved: bool) -> Alert:
    """Decode the first alert of an Alert record (RFC 8446 §6, RFC 5246 §7.2)."""
    if interleaved:
        # RFC 8446 §5.1: "Handshake messages MUST NOT be interleaved with other record types."
        raise TLSDecodeError("alert inside a fragmented ServerHello")
    if len(fragment) < 2:
        # RFC 8446 §5.1: "Alert messages MUST NOT be fragmented across records."
        raise TLSDecodeError("alert record shorter than one alert")
    try:
        level = AlertLevel(fragment[0])
    except ValueError:
        raise TLSDecodeError(f"unknown alert level {fragment[0]}") from None
    return Alert(level=level, description=fragment[1])


def _is_tolerated_warning(alert: Alert) -> bool:
    """Whether to read past ``alert`` and keep waiting for the ServerHello.

    COMPAT: TLS 1.2 servers (e.g. Apache httpd with no matching virtual host) send a
    warning-level ``unrecognized_name`` and carry on (RFC 6066 §3 allows it). Every other
    alert ends the probe, as RFC 8446 §6 treats all but close_notify/user_canceled as errors.
    """
    return (
        alert.level is AlertLevel.WARNING
        and alert.description == AlertDescription.UNRECOGNIZED_NAME
    )


def _add_warning(warnings: list[Alert], alert: Alert) -> None:
    if len(warnings) >= _MAX_WARNING_ALERTS:
        raise TLSDecodeError("too many warning alerts before the ServerHello")
    warnings.append(alert)


def _parse_server_hello(body: bytes, warnings: tuple[Alert, ...]) -> ServerHello:
    """Decode a ServerHello body (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3)."""
    reader = _Reader(body)
    legacy_version = reader.uint(2)
    random = reader.take(_RANDOM_BYTES)
    session_id = reader.vector(1)
    if len(session_id) > _MAX_SESSION_ID_BYTES:
        raise TLSDecodeError("legacy_session_id_echo longer than 32 bytes")
    cipher_suite = reader.uint(2)
    compression_method = reader.uint(1)
    # RFC 5246 §7.4.1.3: the extension block may be absent before TLS 1.3.
    extensions = _parse_extensions(reader.vector(2)) if reader.remaining else ()
    reader.expect_end("ServerHello")
    is_hrr = random == _HRR_RANDOM
    found = dict(extensions)
    return ServerHello(
        version=_negotiated_version(legacy_version, found.get(ExtensionType.SUPPORTED_VERSIONS)),
        cipher_suite=cipher_suite,
        selected_group=_selected_group(found.get(ExtensionType.KEY_SHARE), is_hrr=is_hrr),
        is_hello_retry_request=_check_hrr(is_hrr, found),
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        compression_method=compression_method,
        extensions=extensions,
        warning_alerts=warnings,
    )


def _parse_extensions(block: bytes) -> tuple[tuple[int, bytes], ...]:
    """Split an extension block; duplicates are refused (RFC 8446 §4.2, RFC 5246 §7.4.1.4)."""
    reader = _Reader(block)
    extensions: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while reader.remaining:
        ext_type = reader.uint(2)
        if ext_type in seen:
            # RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type".
            raise TLSDecodeError(f"duplicate extension {ext_type}")
        seen.add(ext_type)
        extensions.append((ext_type, reader.vector(2)))
    return tuple(extensions)


def _negotiated_version(legacy_version: int, supported_versions: bytes | None) -> TLSVersion:
    """Apply RFC 8446 §4.2.1: ``supported_versions`` overrides legacy_version."""
    if supported_versions is None:
        if not TLSVersion.SSL3 <= legacy_version <= TLSVersion.TLS1_2:
            raise TLSDecodeError(f"ServerHello version {legacy_version:#06x} is unknown")
        return TLSVersion(legacy_version)
    reader = _Reader(supported_versions)
    selected = reader.uint(2)
    reader.expect_end("supported_versions")
    # RFC 8446 §4.1.3: "legacy_version ... MUST be set to 0x0303" with supported_versions;
    # §4.2.1: a selected version "prior to TLS 1.3" means the client MUST abort.
    if legacy_version != TLSVersion.TLS1_2 or selected != TLSVersion.TLS1_3:
        raise TLSDecodeError(f"supported_versions selects {selected:#06x}, not TLS 1.3")
    return TLSVersion.TLS1_3


def _selected_group(key_share: bytes | None, *, is_hrr: bool) -> int | None:
    """The group of a ServerHello KeyShareEntry or HRR selected_group (RFC 8446 §4.2.8)."""
    if key_share is None:
        return None
    reader = _Reader(key_share)
    group = reader.uint(2)
    if not is_hrr and not reader.vector(2):
        raise TLSDecodeError("empty key_exchange in ServerHello key_share")
    reader.expect_end("key_share")
    return group


def _check_hrr(is_hrr: bool, extensions: dict[int, bytes]) -> bool:
    """RFC 8446 §4.1.4: a HelloRetryRequest MUST carry ``supported_versions``."""
    if is_hrr and ExtensionType.SUPPORTED_VERSIONS not in extensions:
        raise TLSDecodeError("HelloRetryRequest without supported_versions")
    return is_hrr
