"""TLS audit rules: which ClientHellos to send and what the answers mean (sans-I/O).

The probe (``stockade.audit.tls``) sends the hellos built here over fresh connections and
hands back each first answer; the functions here turn answers into findings. Nothing is ever
decrypted: a ServerHello alone says which version, suite, group and compression the server
chose (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3), so suites this machine's OpenSSL cannot offer
(3DES, RC4, EXPORT) are still tested.

Severity rules (version 1 of these rules; ``core.audit.grading`` keys on the severities):

- Protocol versions: SSL 3.0 accepted CRITICAL (POODLE, RFC 7568); TLS 1.0 or 1.1 accepted
  HIGH (deprecated by RFC 8996); TLS 1.2 accepted PASS; TLS 1.3 refused MEDIUM (RFC 9325
  §3.1.1 SHOULD); no version at all HIGH.
- Cipher suites, by the worst property of each accepted suite: NULL encryption, anonymous
  key exchange, EXPORT, RC4, DES and 3DES (the cipher the Stockade source documents name;
  Sweet32) CRITICAL; static RSA/DH/ECDH key exchange (no forward secrecy) MEDIUM; CBC with
  forward secrecy LOW; (EC)DHE or TLS 1.3 with AEAD PASS. No forward-secret AEAD suite at all
  MEDIUM.
- TLS 1.3 groups: each accepted group is listed (INFO); only elliptic curves below 256 bits
  accepted for TLS 1.2 ECDHE MEDIUM (RFC 8422 §5.1.1 deprecates them).
- TLS compression (DEFLATE, RFC 3749) accepted HIGH (CRIME; RFC 9325 §3.3 MUST NOT).
- Missing renegotiation_info (RFC 5746) in a TLS 1.2-or-older ServerHello MEDIUM.
- No OCSP staple promised in TLS 1.2 LOW; not testable when TLS 1.2 is refused (TLS 1.3
  carries the staple inside the encrypted Certificate message).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from stockade.core.audit.model import Finding, Fix, Severity
from stockade.core.tls.clienthello import (
    Alert,
    ExtensionType,
    NamedGroup,
    ServerHello,
    TLSVersion,
    build_client_hello,
)
from stockade.core.tls.suites import (
    SUITES,
    Authentication,
    Cipher,
    CipherSuite,
    KeyExchange,
    suite_name,
)

__all__ = [
    "MAX_CONNECTIONS",
    "PROBED_GROUPS",
    "RULES_VERSION",
    "VERSIONS",
    "Answer",
    "NoAnswer",
    "SuiteEnumeration",
    "compression_findings",
    "compression_hello",
    "describe",
    "group_findings",
    "group_hello",
    "ocsp_findings",
    "ocsp_hello",
    "renegotiation_findings",
    "small_curve_findings",
    "small_curve_hello",
    "suite_findings",
    "suites_for",
    "version_findings",
    "version_hello",
    "weakness",
]

RULES_VERSION: Final = 1
MAX_CONNECTIONS: Final = 60
"""Connections one endpoint's TLS probe may open (versions, suites, groups, extras)."""

VERSIONS: Final = (
    TLSVersion.SSL3,
    TLSVersion.TLS1_0,
    TLSVersion.TLS1_1,
    TLSVersion.TLS1_2,
    TLSVersion.TLS1_3,
)
_LEGACY_GROUPS: Final = (NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1,
                         NamedGroup.SECP521R1)
PROBED_GROUPS: Final[tuple[int, ...]] = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
    NamedGroup.FFDHE2048,
    NamedGroup.FFDHE3072,
    NamedGroup.FFDHE4096,
)
_SMALL_CURVES: Final = (0x0013, 0x0015)  # secp192r1, secp224r1 (RFC 8422 §5.1.1: deprecated)
_DEFLATE: Final = 1  # RFC 3749 §2
_VERSION_NAMES: Final = {
    TLSVersion.SSL3: "SSL 3.0",
    TLSVersion.TLS1_0: "TLS 1.0",
    TLSVersion.TLS1_1: "TLS 1.1",
    TLSVersion.TLS1_2: "TLS 1.2",
    TLSVersion.TLS1_3: "TLS 1.3",
}
_GROUP_NAMES: Final = {0x0013: "secp192r1", 0x0015: "secp224r1",
                       **{g.value: g.name.lower() for g in NamedGroup}}


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No ServerHello or Alert came back.

    Attributes:
        reason: what happened, for the report ("closed without answering", "timeout", ...).
        reached_tls: the ClientHello was sent (the server then closed, reset or sent
            garbage: a refusal); False when TLS was never reached (connection refused,
            STARTTLS not offered), so nothing about TLS was learnt.
    """

    reason: str
    reached_tls: bool = True


Answer: TypeAlias = ServerHello | Alert | NoAnswer


# ---------------------------------------------------------------------------------------
# What to send
# ---------------------------------------------------------------------------------------


def suites_for(version: TLSVersion) -> tuple[int, ...]:
    """Every known suite that ``version`` may negotiate, strongest kinds first."""
    usable = [s for s in SUITES.values() if s.allows(version) and s.code != 0x0000]
    usable.sort(key=lambda s: (weakness(s)[1], s.code))
    return tuple(s.code for s in usable)


def version_hello(version: TLSVersion, server_name: str | None) -> bytes:
    """Offer exactly ``version`` with every suite it allows."""
    return _hello(version, suites_for(version), server_name)


def group_hello(group: int, server_name: str | None) -> bytes:
    """A TLS 1.3 hello offering only ``group`` (with a key share where we can make one, else
    none, so a willing server answers with a HelloRetryRequest naming it, RFC 8446 §4.1.4)."""
    return build_client_hello(version=TLSVersion.TLS1_3,
                              cipher_suites=suites_for(TLSVersion.TLS1_3),
                              server_name=server_name, groups=(group,))


def compression_hello(version: TLSVersion, server_name: str | None) -> bytes:
    """A pre-1.3 hello offering DEFLATE before null compression (RFC 3749 §2)."""
    return build_client_hello(version=version, cipher_suites=suites_for(version),
                              server_name=server_name, groups=_LEGACY_GROUPS,
                              compression_methods=(_DEFLATE, 0))


def ocsp_hello(server_name: str | None) -> bytes:
    """A TLS 1.2 hello asking for a stapled OCSP response (RFC 6066 §8)."""
    return build_client_hello(version=TLSVersion.TLS1_2,
                              cipher_suites=suites_for(TLSVersion.TLS1_2),
                              server_name=server_name, groups=_LEGACY_GROUPS,
                              request_ocsp_status=True)


def small_curve_hello(server_name: str | None) -> bytes:
    """TLS 1.2 ECDHE suites with only curves below 256 bits in ``supported_groups``."""
    ecdhe = tuple(c for c in suites_for(TLSVersion.TLS1_2)
                  if SUITES[c].key_exchange is KeyExchange.ECDHE)
    return build_client_hello(version=TLSVersion.TLS1_2, cipher_suites=ecdhe,
                              server_name=server_name, groups=_SMALL_CURVES)


def _hello(version: TLSVersion, suites: Sequence[int], server_name: str | None) -> bytes:
    groups = _LEGACY_GROUPS if version < TLSVersion.TLS1_3 else (
        NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1, NamedGroup.SECP521R1,
        NamedGroup.X448, NamedGroup.FFDHE2048, NamedGroup.FFDHE3072)
    return build_client_hello(version=version, cipher_suites=suites, server_name=server_name,
                              groups=groups)


@dataclass(slots=True)
class SuiteEnumeration:
    """Find every suite a server accepts in one version: offer all, drop the chosen one,
    repeat until the server refuses. The discovery order is the server's preference order
    when it enforces its own (most do).

    Use: ``record(answer)`` the version probe's answer first (it offered every suite), then
    while ``next_hello()`` returns bytes, send them and ``record`` the answer.
    """

    version: TLSVersion
    server_name: str | None
    max_connections: int
    accepted: list[int] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)
    connections: int = 0
    done: bool = False
    truncated: bool = False
    anomalies: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.remaining = list(suites_for(self.version))

    def record(self, answer: Answer) -> None:
        """Take the answer to the last hello (or to the version probe's)."""
        if not isinstance(answer, ServerHello) or not _accepts_version(answer, self.version):
            self.done = True
            return
        chosen = answer.cipher_suite
        if chosen not in self.remaining:
            # RFC 5246 §7.4.1.3: the suite MUST be one the client offered; stop rather
            # than loop on a broken server.
            self.anomalies.append(f"chose {suite_name(chosen)}, which was not offered")
            self.done = True
            return
        self.accepted.append(chosen)
        self.remaining.remove(chosen)
        if not self.remaining:
            self.done = True

    def next_hello(self) -> bytes | None:
        """The next hello to send, or None when enumeration is over."""
        if self.done:
            return None
        if self.connections >= self.max_connections:
            self.truncated = True
            return None
        self.connections += 1
        return _hello(self.version, self.remaining, self.server_name)


def _accepts_version(answer: Answer, version: TLSVersion) -> bool:
    return isinstance(answer, ServerHello) and answer.version == version


# ---------------------------------------------------------------------------------------
# Reading the answers
# ---------------------------------------------------------------------------------------


def describe(answer: Answer) -> str:
    """The answer as a report shows it."""
    if isinstance(answer, NoAnswer):
        return answer.reason
    if isinstance(answer, Alert):
        return f"{answer.level.name.lower()} alert {answer.description_name}"
    kind = "HelloRetryRequest" if answer.is_hello_retry_request else "ServerHello"
    text = f"{kind} {_VERSION_NAMES[answer.version]}, {suite_name(answer.cipher_suite)}"
    if answer.selected_group is not None:
        text += f", group {_group_name(answer.selected_group)}"
    if answer.compression_method:
        text += f", compression method {answer.compression_method}"
    return text


_FIX_VERSIONS: Final = Fix(
    stockade="Nothing to configure: Stockade never accepts below TLS 1.2; [tls] min_version "
             "= \"1.3\" refuses TLS 1.2 as well.",
    prosody="ssl = { protocol = \"tlsv1_2+\" } (global, or per VirtualHost / c2s_ssl / "
            "s2s_ssl); Prosody 0.12+ defaults to it.",
    ejabberd="c2s_protocol_options: [no_sslv3, no_tlsv1, no_tlsv1_1] (and s2s_protocol_options "
             "likewise) in ejabberd.yml.",
)
_FIX_TLS13: Final = Fix(
    stockade="Stockade offers TLS 1.3 by default; check it runs on OpenSSL 1.1.1 or later.",
    prosody="ssl = { protocol = \"tlsv1_2+\" } and LuaSec 1.0+ linked against OpenSSL 1.1.1+.",
    ejabberd="Remove no_tlsv1_3 from c2s_protocol_options / s2s_protocol_options; use "
             "OpenSSL 1.1.1+.",
)
_FIX_CIPHERS: Final = Fix(
    stockade="Nothing to configure: Stockade's TLS 1.2 suites are fixed to ECDHE with "
             "AES-GCM or ChaCha20-Poly1305 (stockade.io.tls.TLS12_CIPHERS).",
    prosody="ssl = { ciphers = \"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL\" } (global, c2s_ssl, "
            "s2s_ssl).",
    ejabberd="c2s_ciphers: \"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL\" and s2s_ciphers likewise in "
             "ejabberd.yml.",
)
_FIX_COMPRESSION: Final = Fix(
    stockade="Nothing to configure: Stockade sets OP_NO_COMPRESSION.",
    prosody="ssl = { options = { \"no_compression\" } } (LuaSec sets it by default since "
            "0.5).",
    ejabberd="c2s_protocol_options: [no_compression] (and s2s_protocol_options).",
)
_FIX_RENEGOTIATION: Final = Fix(
    stockade="Nothing to configure: Stockade refuses renegotiation (OP_NO_RENEGOTIATION) and "
             "its OpenSSL sends renegotiation_info.",
    prosody="Upgrade OpenSSL/LuaSec: every OpenSSL since 0.9.8m implements RFC 5746.",
    ejabberd="Upgrade OpenSSL (fast_tls links it): every OpenSSL since 0.9.8m implements RFC "
             "5746.",
)
_FIX_OCSP: Final = Fix(
    stockade="Stockade does not staple OCSP yet; keep certificates short-lived (ACME, 90 "
             "days) so revocation matters less.",
    prosody="Prosody does not staple OCSP; use short-lived ACME certificates.",
    ejabberd="ejabberd does not staple OCSP; use short-lived ACME certificates (acme: "
             "auto: true).",
)
_FIX_CURVES: Final = Fix(
    stockade="Nothing to configure: Stockade's OpenSSL offers only X25519, P-256 and larger.",
    prosody="ssl = { curveslist = { \"X25519\", \"P-256\", \"P-384\" } } (LuaSec 1.0+).",
    ejabberd="Set the groups in OpenSSL's configuration (openssl.cnf Groups = "
             "X25519:P-256:P-384); fast_tls uses it.",
)


def version_findings(answers: dict[TLSVersion, Answer]) -> list[Finding]:
    """One finding per offered version, plus one if no version works at all."""
    findings = [_version_finding(v, answers[v]) for v in VERSIONS if v in answers]
    if not any(_accepts_version(a, v) for v, a in answers.items()):
        findings.append(Finding(
            check="tls.version.none", title="No TLS version accepted",
            severity=Severity.HIGH,
            observed="; ".join(f"{_VERSION_NAMES[v]}: {describe(a)}" for v, a in answers.items()),
            why="Clients cannot protect the stream at all; they either fail or fall back to "
                "plaintext.",
            fix=_FIX_TLS13))
    return findings


def _version_finding(version: TLSVersion, answer: Answer) -> Finding:
    name = _VERSION_NAMES[version]
    check = f"tls.version.{version.name.lower()}"
    accepted = _accepts_version(answer, version)
    observed = f"{name} hello answered with {describe(answer)}"
    if version is TLSVersion.TLS1_3:
        if accepted:
            return Finding(check, "TLS 1.3 accepted", Severity.PASS, observed)
        return Finding(check, "TLS 1.3 not accepted", Severity.MEDIUM, observed,
                       why="TLS 1.3 removes every legacy key exchange and cipher and encrypts "
                           "the certificate; RFC 9325 §3.1.1 says servers SHOULD support it.",
                       fix=_FIX_TLS13)
    if version is TLSVersion.TLS1_2:
        title = "TLS 1.2 accepted" if accepted else "TLS 1.2 not accepted"
        return Finding(check, title, Severity.PASS if accepted else Severity.INFO, observed)
    if not accepted:
        return Finding(check, f"{name} refused", Severity.PASS, observed)
    severity = Severity.CRITICAL if version is TLSVersion.SSL3 else Severity.HIGH
    why = ("SSL 3.0 is broken by POODLE and prohibited by RFC 7568."
           if version is TLSVersion.SSL3 else
           f"{name} is deprecated by RFC 8996: SHA-1/MD5 handshake hashes, no AEAD ciphers, "
           "and an attacker who can block the newer versions may force clients down to it.")
    return Finding(check, f"{name} accepted", severity, observed, why=why, fix=_FIX_VERSIONS)


# Weakness groups: (check suffix, title, severity, why), worst first.
_GROUPS: Final[tuple[tuple[str, str, Severity, str], ...]] = (
    ("null", "NULL-encryption suites accepted", Severity.CRITICAL,
     "Traffic is sent in clear text inside TLS records."),
    ("anon", "Anonymous key exchange accepted", Severity.CRITICAL,
     "The server does not authenticate itself: anyone on the path can intercept the stream."),
    ("export", "EXPORT suites accepted", Severity.CRITICAL,
     "40/56-bit export keys are broken in minutes (FREAK, Logjam)."),
    ("rc4", "RC4 suites accepted", Severity.CRITICAL,
     "RC4 keystream biases reveal plaintext; RFC 7465 prohibits it."),
    ("3des", "3DES/DES suites accepted", Severity.CRITICAL,
     "64-bit block ciphers leak plaintext after a few hundred gigabytes (Sweet32) and single "
     "DES is brute-forced; the documents behind Stockade name 3DES as a typical XMPP server "
     "weakness. RFC 9325 §4.1 forbids them."),
    ("no_forward_secrecy", "Key exchange without forward secrecy accepted", Severity.MEDIUM,
     "With static RSA (or static DH/ECDH) key exchange, whoever obtains the server's private "
     "key later decrypts every recorded session; RFC 9325 §4.1 says SHOULD NOT."),
    ("cbc", "CBC-mode suites accepted", Severity.LOW,
     "MAC-then-encrypt CBC records have a long history of padding-oracle and timing attacks "
     "(Lucky Thirteen); RFC 9325 §4.2 recommends AEAD suites only."),
)

_PASS_TITLES: Final = {
    "null": "No NULL-encryption suite accepted",
    "anon": "No anonymous key exchange accepted",
    "export": "No EXPORT suite accepted",
    "rc4": "No RC4 suite accepted",
    "3des": "No 3DES/DES suite accepted",
    "no_forward_secrecy": "Every accepted suite has forward secrecy",
    "cbc": "No CBC-mode suite accepted",
}


def weakness(suite: CipherSuite) -> tuple[str, Severity]:
    """The weakness group of ``suite`` and its severity; ``("aead", PASS)`` for a good one."""
    if suite.cipher is Cipher.NULL or suite.key_exchange is KeyExchange.NULL:
        return "null", Severity.CRITICAL
    if suite.authentication in (Authentication.ANON, Authentication.NULL):
        return "anon", Severity.CRITICAL
    if suite.is_export:
        return "export", Severity.CRITICAL
    if suite.cipher is Cipher.RC4:
        return "rc4", Severity.CRITICAL
    if suite.cipher in (Cipher.TRIPLE_DES_EDE_CBC, Cipher.DES_CBC, Cipher.RC2_CBC):
        return "3des", Severity.CRITICAL
    if not suite.has_forward_secrecy:
        return "no_forward_secrecy", Severity.MEDIUM
    if not suite.is_aead:
        return "cbc", Severity.LOW
    return "aead", Severity.PASS


def suite_findings(enumerations: Iterable[SuiteEnumeration]) -> list[Finding]:
    """One finding per weakness group (PASS when no suite of it was accepted), the accepted
    list in the server's order (INFO), and whether any forward-secret AEAD suite works."""
    runs = list(enumerations)
    by_group: dict[str, list[str]] = {}
    for run in runs:
        for code in run.accepted:
            group, _ = weakness(SUITES[code])
            by_group.setdefault(group, []).append(
                f"{_VERSION_NAMES[run.version]} {suite_name(code)}")
    findings = [_group_finding(group, by_group.get(group[0], [])) for group in _GROUPS]
    findings.append(_aead_finding(by_group.get("aead", [])))
    findings.append(_accepted_list(runs))
    return findings


def _group_finding(group: tuple[str, str, Severity, str], accepted: list[str]) -> Finding:
    suffix, title, severity, why = group
    check = f"tls.cipher.{suffix}"
    if not accepted:
        return Finding(check, _PASS_TITLES[suffix], Severity.PASS,
                       "none of the offered suites of this kind was accepted")
    return Finding(check, title, severity, "accepted: " + ", ".join(accepted), why=why,
                   fix=_FIX_CIPHERS)


def _aead_finding(accepted: list[str]) -> Finding:
    if accepted:
        return Finding("tls.cipher.aead", "Forward-secret AEAD suites accepted", Severity.PASS,
                       "accepted: " + ", ".join(accepted))
    return Finding("tls.cipher.aead", "No forward-secret AEAD suite accepted", Severity.MEDIUM,
                   "no (EC)DHE-AEAD or TLS 1.3 suite was chosen",
                   why="Without (EC)DHE and an AEAD cipher, clients cannot get both forward "
                       "secrecy and modern record protection.", fix=_FIX_CIPHERS)


def _accepted_list(runs: list[SuiteEnumeration]) -> Finding:
    parts = []
    for run in runs:
        if not run.accepted:
            continue
        names = ", ".join(suite_name(c) for c in run.accepted)
        extra = " (stopped at the connection limit; more may be accepted)" if run.truncated else ""
        notes = "".join(f" ({a})" for a in run.anomalies)
        parts.append(f"{_VERSION_NAMES[run.version]}: {names}{extra}{notes}")
    return Finding("tls.cipher.list", "Cipher suites accepted, in the server's order",
                   Severity.INFO, "; ".join(parts) or "none")


def group_findings(answers: dict[int, Answer]) -> list[Finding]:
    """TLS 1.3 groups: which of ``PROBED_GROUPS`` the server selects when offered alone."""
    accepted = [g for g, a in answers.items()
                if isinstance(a, ServerHello) and a.version is TLSVersion.TLS1_3
                and a.selected_group == g]
    refused = [g for g in answers if g not in accepted]
    observed = ("accepted: " + ", ".join(_group_name(g) for g in accepted)
                + "; refused: " + (", ".join(_group_name(g) for g in refused) or "none"))
    if not accepted:
        return [Finding("tls.groups.tls1_3", "No TLS 1.3 key-exchange group accepted",
                        Severity.INFO, observed)]
    return [Finding("tls.groups.tls1_3", "TLS 1.3 key-exchange groups", Severity.INFO, observed)]


def small_curve_findings(answer: Answer) -> list[Finding]:
    """TLS 1.2 ECDHE when only secp192r1/secp224r1 were offered."""
    check = "tls.groups.small_curves"
    if isinstance(answer, ServerHello) and answer.version is TLSVersion.TLS1_2:
        return [Finding(check, "Curves below 256 bits accepted", Severity.MEDIUM,
                        "TLS 1.2 hello with only secp192r1/secp224r1 answered with "
                        + describe(answer),
                        why="RFC 8422 §5.1.1 deprecates curves below 256 bits; their security "
                            "margin is below 112 bits.", fix=_FIX_CURVES)]
    return [Finding(check, "No curve below 256 bits accepted", Severity.PASS,
                    "TLS 1.2 hello with only secp192r1/secp224r1 answered with "
                    + describe(answer))]


def compression_findings(answer: Answer) -> list[Finding]:
    """TLS-level compression (CRIME)."""
    check = "tls.compression"
    observed = "hello offering DEFLATE answered with " + describe(answer)
    if isinstance(answer, ServerHello) and answer.compression_method != 0:
        return [Finding(check, "TLS compression accepted", Severity.HIGH, observed,
                        why="Compressing secrets together with attacker-chosen data leaks them "
                            "through the record length (CRIME); RFC 9325 §3.3 says MUST NOT.",
                        fix=_FIX_COMPRESSION)]
    return [Finding(check, "TLS compression refused", Severity.PASS, observed)]


def renegotiation_findings(hello: ServerHello | None, *, tls13_accepted: bool) -> list[Finding]:
    """RFC 5746 secure renegotiation, read from the best pre-1.3 ServerHello."""
    check = "tls.renegotiation"
    if hello is None:
        if tls13_accepted:
            return [Finding(check, "Renegotiation impossible (TLS 1.3 only)", Severity.PASS,
                            "no version below TLS 1.3 accepted; TLS 1.3 has no renegotiation")]
        return [Finding(check, "Renegotiation not tested", Severity.NOT_TESTED,
                        "no ServerHello below TLS 1.3 to read renegotiation_info from")]
    if ExtensionType.RENEGOTIATION_INFO in hello.extension_types:
        return [Finding(check, "Secure renegotiation indicated", Severity.PASS,
                        f"renegotiation_info in the {_VERSION_NAMES[hello.version]} ServerHello")]
    return [Finding(check, "No secure renegotiation indication", Severity.MEDIUM,
                    f"{_VERSION_NAMES[hello.version]} ServerHello without renegotiation_info "
                    f"(extensions {list(hello.extension_types)})",
                    why="Without RFC 5746 an attacker can splice his own plaintext in front of "
                        "the client's session (CVE-2009-3555).", fix=_FIX_RENEGOTIATION)]


def ocsp_findings(answer: Answer | None) -> list[Finding]:
    """Whether a TLS 1.2 server promises an OCSP staple (status_request echoed)."""
    check = "tls.ocsp_stapling"
    if answer is None or not (isinstance(answer, ServerHello)
                              and answer.version is TLSVersion.TLS1_2):
        return [Finding(check, "OCSP stapling not tested", Severity.NOT_TESTED,
                        "TLS 1.2 is not accepted, and in TLS 1.3 the staple travels inside the "
                        "encrypted Certificate message, which this probe does not decrypt")]
    if ExtensionType.STATUS_REQUEST in answer.extension_types:
        return [Finding(check, "OCSP stapling offered", Severity.PASS,
                        "status_request echoed in the TLS 1.2 ServerHello")]
    return [Finding(check, "No OCSP stapling", Severity.LOW,
                    "TLS 1.2 hello with status_request: the ServerHello did not echo it",
                    why="Without a stapled response clients cannot learn cheaply and privately "
                        "that the certificate was revoked, so most do not check at all.",
                    fix=_FIX_OCSP)]


def _group_name(group: int) -> str:
    return _GROUP_NAMES.get(group, f"{group:#06x}")
