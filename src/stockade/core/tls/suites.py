"""Cipher suite code points and their properties (IANA TLS Cipher Suites registry).

RFC 8446 §B.4 defines the TLS 1.3 suites; RFC 5246 §A.5 and the RFCs it points to (4346,
4492/8422, 5288, 5289, 6655, 7905) the older ones. The table holds only code points and IANA
names; every property is derived from the name, whose grammar is
``TLS_<kx>[_EXPORT]_WITH_<cipher>[_<mac>]`` (or ``TLS_<aead>_<hash>`` for TLS 1.3), so a
property cannot disagree with the name. Policy (what is weak) is not decided here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from stockade.core.tls.clienthello import TLSVersion

__all__ = [
    "BY_NAME",
    "MAC",
    "SUITES",
    "Authentication",
    "Cipher",
    "CipherSuite",
    "KeyExchange",
    "suite_name",
]


class KeyExchange(enum.Enum):
    """How the premaster/shared secret is agreed (RFC 5246 §7.4.3, RFC 8422 §2)."""

    NULL = "NULL"  # TLS_NULL_WITH_NULL_NULL: no key exchange at all
    RSA = "RSA"  # static RSA key transport: no forward secrecy
    DH = "DH"  # static (certificate) finite-field DH: no forward secrecy
    DHE = "DHE"  # ephemeral finite-field DH
    ECDH = "ECDH"  # static (certificate) ECDH: no forward secrecy
    ECDHE = "ECDHE"  # ephemeral ECDH
    TLS13 = "TLS13"  # not fixed by a TLS 1.3 suite: (EC)DHE via key_share, RFC 8446 §4.2.8


class Authentication(enum.Enum):
    """How the server proves its identity (RFC 5246 §7.4.2, RFC 8446 §4.4)."""

    NULL = "NULL"
    ANON = "anon"  # no server authentication at all: trivially man-in-the-middled
    RSA = "RSA"
    DSS = "DSS"
    ECDSA = "ECDSA"
    TLS13 = "TLS13"  # not fixed by a TLS 1.3 suite: signature_algorithms, RFC 8446 §4.2.3


class Cipher(enum.Enum):
    """Bulk cipher family; value = its spelling inside IANA suite names."""

    NULL = "NULL"
    RC4 = "RC4"
    RC2_CBC = "RC2_CBC"
    DES_CBC = "DES_CBC"
    TRIPLE_DES_EDE_CBC = "3DES_EDE_CBC"
    IDEA_CBC = "IDEA_CBC"
    SEED_CBC = "SEED_CBC"
    AES_CBC = "AES_CBC"
    CAMELLIA_CBC = "CAMELLIA_CBC"
    AES_GCM = "AES_GCM"
    AES_CCM = "AES_CCM"
    AES_CCM_8 = "AES_CCM_8"
    ARIA_GCM = "ARIA_GCM"
    CHACHA20_POLY1305 = "CHACHA20_POLY1305"

    @property
    def is_aead(self) -> bool:
        """Authenticated encryption with associated data (RFC 5246 §6.2.3.3)."""
        return self in _AEAD_CIPHERS


_AEAD_CIPHERS: Final = frozenset(
    {Cipher.AES_GCM, Cipher.AES_CCM, Cipher.AES_CCM_8, Cipher.ARIA_GCM, Cipher.CHACHA20_POLY1305}
)


class MAC(enum.Enum):
    """Record MAC (RFC 5246 §6.2.3.1); AEAD suites have none (their name's hash is the PRF)."""

    NULL = "NULL"
    AEAD = "AEAD"
    MD5 = "MD5"
    SHA1 = "SHA"
    SHA256 = "SHA256"
    SHA384 = "SHA384"


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One registered cipher suite.

    Attributes:
        code: the two-byte code point.
        name: the IANA name.
        key_exchange: key agreement; see ``has_forward_secrecy``.
        authentication: server authentication.
        cipher: bulk cipher family.
        key_bits: cipher key length in bits (EXPORT 40, DES 56, 3DES 168, NULL 0).
        mac: record MAC, or ``MAC.AEAD``.
        is_export: a 1990s US-export suite, deliberately weakened (RFC 2246 §A.5).
        min_version: first protocol version that may negotiate it.
        max_version: last protocol version that may negotiate it.
    """

    code: int
    name: str
    key_exchange: KeyExchange
    authentication: Authentication
    cipher: Cipher
    key_bits: int
    mac: MAC
    is_export: bool
    min_version: TLSVersion
    max_version: TLSVersion

    @property
    def is_aead(self) -> bool:
        """Whether records are protected by an AEAD cipher (RFC 5246 §6.2.3.3)."""
        return self.cipher.is_aead

    @property
    def has_forward_secrecy(self) -> bool:
        """Whether the key exchange is ephemeral, so a stolen server key reveals no past traffic.

        True for ECDHE, DHE (including their anonymous variants, which are ephemeral but
        unauthenticated: check ``authentication`` too) and all TLS 1.3 suites (RFC 8446 §1.2:
        "Static RSA and Diffie-Hellman cipher suites have been removed").
        """
        return self.key_exchange in (KeyExchange.ECDHE, KeyExchange.DHE, KeyExchange.TLS13)

    def allows(self, version: TLSVersion) -> bool:
        """Whether the suite may be negotiated in ``version``."""
        return self.min_version <= version <= self.max_version


# Code point -> IANA name, sorted by code point (IANA "TLS Cipher Suites" registry).
# Checked when written against the RFC names in OpenSSL 3.0's tls1.h/ssl3.h and NSS's
# sslproto.h; every entry matched one or both except 14 static DH_DSS/DH_RSA/ECDH_* suites
# neither library implements, taken from RFC 5246 §A.5, RFC 5288 §3 and RFC 5289 §3. Tests
# compare the derived properties with OpenSSL's description of every suite it knows.
_NAMES: Final[dict[int, str]] = {
    0x0000: "TLS_NULL_WITH_NULL_NULL",
    0x0001: "TLS_RSA_WITH_NULL_MD5",
    0x0002: "TLS_RSA_WITH_NULL_SHA",
    0x0003: "TLS_RSA_EXPORT_WITH_RC4_40_MD5",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x0006: "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5",
    0x0007: "TLS_RSA_WITH_IDEA_CBC_SHA",
    0x0008: "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0009: "TLS_RSA_WITH_DES_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x000B: "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA",
    0x000C: "TLS_DH_DSS_WITH_DES_CBC_SHA",
    0x000D: "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA",
    0x000E: "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x000F: "TLS_DH_RSA_WITH_DES_CBC_SHA",
    0x0010: "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0011: "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA",
    0x0012: "TLS_DHE_DSS_WITH_DES_CBC_SHA",
    0x0013: "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
    0x0014: "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0015: "TLS_DHE_RSA_WITH_DES_CBC_SHA",
    0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0017: "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5",
    0x0018: "TLS_DH_anon_WITH_RC4_128_MD5",
    0x0019: "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA",
    0x001A: "TLS_DH_anon_WITH_DES_CBC_SHA",
    0x001B: "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0030: "TLS_DH_DSS_WITH_AES_128_CBC_SHA",
    0x0031: "TLS_DH_RSA_WITH_AES_128_CBC_SHA",
    0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0034: "TLS_DH_anon_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x0036: "TLS_DH_DSS_WITH_AES_256_CBC_SHA",
    0x0037: "TLS_DH_RSA_WITH_AES_256_CBC_SHA",
    0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x003A: "TLS_DH_anon_WITH_AES_256_CBC_SHA",
    0x003B: "TLS_RSA_WITH_NULL_SHA256",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x003E: "TLS_DH_DSS_WITH_AES_128_CBC_SHA256",
    0x003F: "TLS_DH_RSA_WITH_AES_128_CBC_SHA256",
    0x0040: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
    0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0044: "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA",
    0x0045: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0046: "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x0068: "TLS_DH_DSS_WITH_AES_256_CBC_SHA256",
    0x0069: "TLS_DH_RSA_WITH_AES_256_CBC_SHA256",
    0x006A: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x006C: "TLS_DH_anon_WITH_AES_128_CBC_SHA256",
    0x006D: "TLS_DH_anon_WITH_AES_256_CBC_SHA256",
    0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0087: "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA",
    0x0088: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0089: "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA",
    0x0096: "TLS_RSA_WITH_SEED_CBC_SHA",
    0x009A: "TLS_DHE_RSA_WITH_SEED_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x00A0: "TLS_DH_RSA_WITH_AES_128_GCM_SHA256",
    0x00A1: "TLS_DH_RSA_WITH_AES_256_GCM_SHA384",
    0x00A2: "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
    0x00A3: "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
    0x00A4: "TLS_DH_DSS_WITH_AES_128_GCM_SHA256",
    0x00A5: "TLS_DH_DSS_WITH_AES_256_GCM_SHA384",
    0x00A6: "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
    0x00A7: "TLS_DH_anon_WITH_AES_256_GCM_SHA384",
    0x00BA: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BD: "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BE: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BF: "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256",
    0x00C0: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C3: "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C4: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C5: "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC001: "TLS_ECDH_ECDSA_WITH_NULL_SHA",
    0xC002: "TLS_ECDH_ECDSA_WITH_RC4_128_SHA",
    0xC003: "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC004: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA",
    0xC005: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA",
    0xC006: "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    0xC008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC00B: "TLS_ECDH_RSA_WITH_NULL_SHA",
    0xC00C: "TLS_ECDH_RSA_WITH_RC4_128_SHA",
    0xC00D: "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC00E: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA",
    0xC00F: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA",
    0xC010: "TLS_ECDHE_RSA_WITH_NULL_SHA",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC015: "TLS_ECDH_anon_WITH_NULL_SHA",
    0xC016: "TLS_ECDH_anon_WITH_RC4_128_SHA",
    0xC017: "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA",
    0xC018: "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
    0xC019: "TLS_ECDH_anon_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC025: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC026: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC029: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256",
    0xC02A: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02D: "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02E: "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC031: "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256",
    0xC032: "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384",
    0xC050: "TLS_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC051: "TLS_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC052: "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC053: "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC056: "TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256",
    0xC057: "TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384",
    0xC05C: "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256",
    0xC05D: "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384",
    0xC060: "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC061: "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC072: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC073: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC076: "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC077: "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC09D: "TLS_RSA_WITH_AES_256_CCM",
    0xC09E: "TLS_DHE_RSA_WITH_AES_128_CCM",
    0xC09F: "TLS_DHE_RSA_WITH_AES_256_CCM",
    0xC0A0: "TLS_RSA_WITH_AES_128_CCM_8",
    0xC0A1: "TLS_RSA_WITH_AES_256_CCM_8",
    0xC0A2: "TLS_DHE_RSA_WITH_AES_128_CCM_8",
    0xC0A3: "TLS_DHE_RSA_WITH_AES_256_CCM_8",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    0xC0AF: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

# Name fragments -> meaning. Key exchange part: "<kx>_<auth>" or a single word.
_KEY_EXCHANGES: Final[dict[str, tuple[KeyExchange, Authentication]]] = {
    "NULL": (KeyExchange.NULL, Authentication.NULL),
    "RSA": (KeyExchange.RSA, Authentication.RSA),
    "DH_DSS": (KeyExchange.DH, Authentication.DSS),
    "DH_RSA": (KeyExchange.DH, Authentication.RSA),
    "DHE_DSS": (KeyExchange.DHE, Authentication.DSS),
    "DHE_RSA": (KeyExchange.DHE, Authentication.RSA),
    # RFC 5246 §7.4.3 / RFC 4492 §2.5: anonymous (EC)DH uses ephemeral keys.
    "DH_anon": (KeyExchange.DHE, Authentication.ANON),
    "ECDH_ECDSA": (KeyExchange.ECDH, Authentication.ECDSA),
    "ECDH_RSA": (KeyExchange.ECDH, Authentication.RSA),
    "ECDHE_ECDSA": (KeyExchange.ECDHE, Authentication.ECDSA),
    "ECDHE_RSA": (KeyExchange.ECDHE, Authentication.RSA),
    "ECDH_anon": (KeyExchange.ECDHE, Authentication.ANON),
}

_CIPHERS: Final[dict[str, tuple[Cipher, int]]] = {
    "NULL": (Cipher.NULL, 0),
    "RC4_40": (Cipher.RC4, 40),
    "RC4_128": (Cipher.RC4, 128),
    "RC2_CBC_40": (Cipher.RC2_CBC, 40),
    "DES40_CBC": (Cipher.DES_CBC, 40),
    "DES_CBC": (Cipher.DES_CBC, 56),
    "3DES_EDE_CBC": (Cipher.TRIPLE_DES_EDE_CBC, 168),
    "IDEA_CBC": (Cipher.IDEA_CBC, 128),
    "SEED_CBC": (Cipher.SEED_CBC, 128),
    "AES_128_CBC": (Cipher.AES_CBC, 128),
    "AES_256_CBC": (Cipher.AES_CBC, 256),
    "CAMELLIA_128_CBC": (Cipher.CAMELLIA_CBC, 128),
    "CAMELLIA_256_CBC": (Cipher.CAMELLIA_CBC, 256),
    "AES_128_GCM": (Cipher.AES_GCM, 128),
    "AES_256_GCM": (Cipher.AES_GCM, 256),
    "AES_128_CCM": (Cipher.AES_CCM, 128),
    "AES_256_CCM": (Cipher.AES_CCM, 256),
    "AES_128_CCM_8": (Cipher.AES_CCM_8, 128),
    "AES_256_CCM_8": (Cipher.AES_CCM_8, 256),
    "ARIA_128_GCM": (Cipher.ARIA_GCM, 128),
    "ARIA_256_GCM": (Cipher.ARIA_GCM, 256),
    "CHACHA20_POLY1305": (Cipher.CHACHA20_POLY1305, 256),
}

_MACS: Final[dict[str, MAC]] = {
    "NULL": MAC.NULL,  # only TLS_NULL_WITH_NULL_NULL
    "MD5": MAC.MD5,
    "SHA": MAC.SHA1,
    "SHA256": MAC.SHA256,
    "SHA384": MAC.SHA384,
}


def _split_cipher(rest: str) -> tuple[Cipher, int, str]:
    """Split ``<cipher>[_<mac>]`` using the longest cipher name that fits."""
    for token in sorted(_CIPHERS, key=len, reverse=True):
        if rest == token or rest.startswith(token + "_"):
            cipher, bits = _CIPHERS[token]
            return cipher, bits, rest[len(token) + 1 :]
    raise ValueError(f"unknown cipher in {rest!r}")


def _tls13_suite(code: int, name: str) -> CipherSuite:
    """RFC 8446 §B.4: ``TLS_<AEAD>_<HASH>``; key exchange and auth are negotiated apart."""
    cipher, bits, _hash = _split_cipher(name.removeprefix("TLS_"))
    return CipherSuite(
        code=code,
        name=name,
        key_exchange=KeyExchange.TLS13,
        authentication=Authentication.TLS13,
        cipher=cipher,
        key_bits=bits,
        mac=MAC.AEAD,
        is_export=False,
        min_version=TLSVersion.TLS1_3,
        max_version=TLSVersion.TLS1_3,
    )


def _min_version(kx: KeyExchange, cipher: Cipher, mac: MAC) -> TLSVersion:
    """First version allowed to negotiate a pre-1.3 suite.

    RFC 5288 §4 (likewise RFC 5289 and RFC 6655): AEAD and SHA-256/384 suites "MUST NOT be
    negotiated in older versions" than TLS 1.2. ECC suites (RFC 4492, RFC 8422) rely on
    hello extensions, so TLS 1.0. The rest date from SSL 3.0 (RFC 6101 Appendix A.6).
    """
    if cipher.is_aead or mac in (MAC.SHA256, MAC.SHA384):
        return TLSVersion.TLS1_2
    if kx in (KeyExchange.ECDH, KeyExchange.ECDHE):
        return TLSVersion.TLS1_0
    return TLSVersion.SSL3


def _legacy_suite(code: int, name: str) -> CipherSuite:
    """Describe ``TLS_<kx>[_EXPORT]_WITH_<cipher>[_<mac>]`` (RFC 5246 §A.5)."""
    kx_part, rest = name.removeprefix("TLS_").split("_WITH_")
    is_export = kx_part.endswith("_EXPORT")
    kx, auth = _KEY_EXCHANGES[kx_part.removesuffix("_EXPORT")]
    cipher, bits, mac_part = _split_cipher(rest)
    mac = MAC.AEAD if cipher.is_aead else _MACS[mac_part]
    return CipherSuite(
        code=code,
        name=name,
        key_exchange=kx,
        authentication=auth,
        cipher=cipher,
        key_bits=bits,
        mac=mac,
        is_export=is_export,
        min_version=_min_version(kx, cipher, mac),
        # RFC 4346 §A.5: "TLS 1.1 implementations MUST NOT negotiate these cipher suites in
        # TLS 1.1 mode" (the EXPORT ones). RFC 8446 §B.4: no older suite works in TLS 1.3.
        max_version=TLSVersion.TLS1_0 if is_export else TLSVersion.TLS1_2,
    )


def _describe(code: int, name: str) -> CipherSuite:
    return _legacy_suite(code, name) if "_WITH_" in name else _tls13_suite(code, name)


SUITES: Final[Mapping[int, CipherSuite]] = MappingProxyType(
    {code: _describe(code, name) for code, name in _NAMES.items()}
)
"""Every known suite by code point."""

BY_NAME: Final[Mapping[str, CipherSuite]] = MappingProxyType(
    {suite.name: suite for suite in SUITES.values()}
)
"""Every known suite by IANA name."""


def suite_name(code: int) -> str:
    """The IANA name of ``code``, or ``"0x1234 (unknown)"`` for a code point not in the table."""
    suite = SUITES.get(code)
    return suite.name if suite is not None else f"{code:#06x} (unknown)"
