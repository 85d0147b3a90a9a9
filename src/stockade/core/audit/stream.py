"""The XMPP stream and SASL checks of ``stockade audit``, sans-I/O.

Two halves: :class:`ServerStream` parses what a server sends (tolerantly: a broken server is
something to report, not to crash on), and the ``rule_*`` functions turn what the probe
observed into :class:`Finding` objects with their evidence, why they matter and how to fix
them. The probe (``stockade.audit.stream``) only moves bytes and calls these.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from stockade.core.audit.model import Finding, Fix, Severity
from stockade.core.errors import RemoteProtocolError
from stockade.core.xml.element import Element
from stockade.core.xml.parser import (
    NS_STREAMS,
    ParserLimits,
    StreamEnd,
    StreamHeader,
    XMLStreamParser,
)

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"  # XEP-0440
NS_SASL2 = "urn:xmpp:sasl:2"  # XEP-0388
NS_FAST = "urn:xmpp:fast:0"  # XEP-0484
NS_COMPRESS_FEATURE = "http://jabber.org/features/compress"  # XEP-0138
NS_CAPS = "http://jabber.org/protocol/caps"  # XEP-0115
NS_VERSION = "jabber:iq:version"  # XEP-0092
NS_PING = "urn:xmpp:ping"  # XEP-0199

#: Stream header attributes RFC 6120 §4.7 defines; anything else is extra information.
STANDARD_HEADER_ATTRS = frozenset({
    "from", "to", "id", "version", "{http://www.w3.org/XML/1998/namespace}lang",
})
MAX_RECEIVED = 1024 * 1024  # bytes one server stream may send the auditor
EVIDENCE_LIMIT = 600  # bytes of raw server output quoted in a finding

# Identifiers the probe puts on its stanzas, so answers can be told apart.
INJECTED_ID = "stockade-audit-injected"
PREAUTH_ID = "stockade-audit-preauth"
PRETLS_ID = "stockade-audit-pretls"


def evidence(data: bytes) -> str:
    """Raw server bytes as quotable text, cut to a readable length."""
    text = data.decode("utf-8", "replace")
    return text if len(text) <= EVIDENCE_LIMIT else text[:EVIDENCE_LIMIT] + " […]"


# --- client-side requests --------------------------------------------------------------------


def stream_header(domain: str, content_ns: str) -> bytes:
    """The initial stream header an auditing client sends (RFC 6120 §4.7)."""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{content_ns}' "
            f"xmlns:stream='{NS_STREAMS}' to='{domain}' version='1.0'>").encode()


def doctype_header(domain: str, content_ns: str) -> bytes:
    """A stream header preceded by a harmless internal DTD (RFC 6120 §11.1 forbids any)."""
    return (b"<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY audit 'audit'>]>"
            + stream_header(domain, content_ns).removeprefix(b"<?xml version='1.0'?>"))


STARTTLS = f"<starttls xmlns='{NS_TLS}'/>".encode()
# PLAIN with credentials that exist nowhere: the probe never sends a real password.
PLAIN_PROBE = (f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
               "AHN0b2NrYWRlLWF1ZGl0AG5vdC1hLXBhc3N3b3Jk</auth>").encode()


def ping_iq(domain: str, stanza_id: str) -> bytes:
    """An XEP-0199 ping to the server: harmless, and any server that processes it answers."""
    return f"<iq type='get' id='{stanza_id}' to='{domain}'><ping xmlns='{NS_PING}'/></iq>".encode()


def version_iq(domain: str, stanza_id: str) -> bytes:
    """An XEP-0092 software version query to the server."""
    return (f"<iq type='get' id='{stanza_id}' to='{domain}'>"
            f"<query xmlns='{NS_VERSION}'/></iq>").encode()


# --- parsing what the server sends -----------------------------------------------------------


_STAND_IN_HEADER = (f"<stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}'>"
                    .encode())


class ServerStream:
    """One stream from the server as far as it has arrived: header, elements, end.

    Feed it bytes; it never raises. Output that is not well-formed XMPP ends the parse and is
    recorded in ``malformed`` (the raw bytes stay in ``raw`` as evidence).
    """

    def __init__(self) -> None:
        self._parser = XMLStreamParser(ParserLimits(max_stanza_bytes=1024 * 1024,
                                                    max_header_bytes=64 * 1024, max_depth=64))
        self.raw = b""
        self.header: StreamHeader | None = None
        self.elements: list[Element] = []
        self.ended = False  # </stream:stream> arrived
        self.malformed: str | None = None
        self.headerless = False  # the server sent elements without a stream header

    def feed(self, data: bytes) -> None:
        if self.malformed is not None or self.ended:
            return
        if len(self.raw) + len(data) > MAX_RECEIVED:
            # A hostile server cannot make the auditor hold more than this.
            self.malformed = f"the server sent more than {MAX_RECEIVED} bytes"
            return
        self.raw += data
        # Fed up to each '>' at a time, so what was complete before a malformed part is
        # kept: a <proceed/> followed in the same read by plaintext the server should never
        # have sent (STARTTLS injection) must still be seen.
        parts = data.split(b">")
        for i, part in enumerate(parts):
            piece = part + b">" if i < len(parts) - 1 else part
            if piece and not self._feed_piece(piece):
                return

    def _feed_piece(self, data: bytes) -> bool:
        try:
            events = self._parser.feed(data)
        except RemoteProtocolError as exc:
            if self.header is not None or self.headerless or self.elements:
                self.malformed = str(exc)
                return False
            # Some servers send a bare <stream:error/> without opening a stream first
            # (e.g. when they reject our header): read it under a stand-in header.
            self.headerless = True
            self._parser = XMLStreamParser(self._parser.limits)
            self._parser.feed(_STAND_IN_HEADER)
            self.raw, raw = b"", self.raw
            self.feed(raw)
            return False
        self._take(events)
        return True

    def _take(self, events: list[StreamHeader | Element | StreamEnd]) -> None:
        for event in events:
            if isinstance(event, StreamHeader):
                self.header = event
            elif isinstance(event, StreamEnd):
                self.ended = True
            else:
                self.elements.append(event)

    @property
    def features(self) -> Element | None:
        return next((el for el in self.elements if el.tag == (NS_STREAMS, "features")), None)

    @property
    def error(self) -> Element | None:
        return next((el for el in self.elements if el.tag == (NS_STREAMS, "error")), None)

    def find(self, ns: str, name: str) -> Element | None:
        """The first top-level element with this tag."""
        return next((el for el in self.elements if el.tag == (ns, name)), None)

    def reply_to(self, stanza_id: str) -> Element | None:
        """The first top-level stanza that answers ``stanza_id``."""
        return next((el for el in self.elements if el.get("id") == stanza_id), None)


def stream_error_condition(error: Element | None) -> str | None:
    """The defined condition of a ``<stream:error/>`` (RFC 6120 §4.9.3), if any."""
    if error is None:
        return None
    cond = next((c for c in error.elements() if c.ns == NS_STREAM_ERRORS and c.name != "text"),
                None)
    return cond.name if cond is not None else "undefined-condition"


@dataclass(frozen=True, slots=True)
class Features:
    """What one ``<stream:features/>`` advertises, as far as the audit cares."""

    starttls: bool = False
    starttls_required: bool = False
    mechanisms: tuple[str, ...] = ()
    channel_bindings: tuple[str, ...] = ()  # XEP-0440 types
    sasl2_mechanisms: tuple[str, ...] = ()  # XEP-0388 <authentication/>
    sasl2: bool = False
    fast_mechanisms: tuple[str, ...] = ()  # XEP-0484 inside SASL2 <inline/>
    compression_methods: tuple[str, ...] = ()  # XEP-0138
    compression: bool = False
    caps_node: str | None = None  # XEP-0115: often names the server software


def _texts(elements: Iterable[Element]) -> tuple[str, ...]:
    return tuple(el.text.strip() for el in elements if el.text.strip())


def parse_features(features: Element | None) -> Features:
    """Read ``<stream:features/>`` (None: the server sent none)."""
    if features is None:
        return Features()
    starttls = features.find(NS_TLS, "starttls")
    mechanisms = features.find(NS_SASL, "mechanisms")
    cb = features.find(NS_SASL_CB, "sasl-channel-binding")
    sasl2 = features.find(NS_SASL2, "authentication")
    inline = sasl2.find(NS_SASL2, "inline") if sasl2 is not None else None
    fast = inline.find(NS_FAST, "fast") if inline is not None else None
    compression = features.find(NS_COMPRESS_FEATURE, "compression")
    caps = features.find(NS_CAPS, "c")
    return Features(
        starttls=starttls is not None,
        starttls_required=starttls is not None
        and starttls.find(NS_TLS, "required") is not None,
        mechanisms=_texts(mechanisms.find_all(NS_SASL, "mechanism")) if mechanisms else (),
        channel_bindings=tuple(t for el in (cb.find_all(NS_SASL_CB, "channel-binding")
                                            if cb is not None else [])
                               if (t := el.get("type"))),
        sasl2=sasl2 is not None,
        sasl2_mechanisms=_texts(sasl2.find_all(NS_SASL2, "mechanism")) if sasl2 else (),
        fast_mechanisms=_texts(fast.find_all(NS_FAST, "mechanism")) if fast else (),
        compression=compression is not None,
        compression_methods=(_texts(compression.find_all(NS_COMPRESS_FEATURE, "method"))
                             if compression is not None else ()),
        caps_node=caps.get("node") if caps is not None else None,
    )


@dataclass(frozen=True, slots=True)
class SoftwareVersion:
    """An XEP-0092 answer."""

    name: str
    version: str
    os: str

    def __str__(self) -> str:
        return " ".join(part for part in (self.name, self.version, self.os and f"({self.os})")
                        if part)


def parse_version_reply(reply: Element | None) -> SoftwareVersion | None:
    """The software version in an ``<iq type='result'/>`` to jabber:iq:version, if any."""
    if reply is None or reply.name != "iq" or reply.get("type") != "result":
        return None
    query = next((c for c in reply.elements() if c.tag == (NS_VERSION, "query")), None)
    if query is None:
        return None

    def child(name: str) -> str:
        el = query.find(NS_VERSION, name)
        return el.text.strip() if el is not None else ""

    found = SoftwareVersion(child("name"), child("version"), child("os"))
    return found if (found.name or found.version or found.os) else None


# --- what the probe observed -----------------------------------------------------------------


class Outcome(enum.Enum):
    """How a server reacted to something it should refuse."""

    ANSWERED = "answered"  # it processed the request and replied to it
    STREAM_ERROR = "stream-error"  # it ended the stream with a stream error
    STANZA_ERROR = "stanza-error"  # it replied with an error but kept the stream open
    CLOSED = "closed"  # it closed the stream/connection without a stream error
    SILENT = "silent"  # nothing within the deadline


@dataclass(frozen=True, slots=True)
class Reaction:
    """A server's reaction and the bytes that show it."""

    outcome: Outcome
    condition: str | None = None  # stream error condition
    raw: bytes = b""
    reply: Element | None = field(default=None, compare=False)

    @property
    def observed(self) -> str:
        what = {
            Outcome.ANSWERED: "the server answered it",
            Outcome.STREAM_ERROR: f"stream error <{self.condition}/>",
            Outcome.STANZA_ERROR: "a stanza error; the stream stayed open",
            Outcome.CLOSED: "the connection was closed without a stream error",
            Outcome.SILENT: "no answer within the deadline",
        }[self.outcome]
        return f"{what}; received: {evidence(self.raw)}" if self.raw else what


def stanza_reaction(stream: ServerStream, stanza_id: str, *, closed: bool) -> Reaction:
    """Classify what the server did with a stanza ``stanza_id`` it should have refused."""
    condition = stream_error_condition(stream.error)
    reply = stream.reply_to(stanza_id)
    if reply is not None and reply.get("type") != "error":
        return Reaction(Outcome.ANSWERED, condition, stream.raw, reply)
    if condition is not None:
        return Reaction(Outcome.STREAM_ERROR, condition, stream.raw)
    if reply is not None:
        return Reaction(Outcome.STANZA_ERROR, None, stream.raw, reply)
    if closed or stream.ended:
        return Reaction(Outcome.CLOSED, None, stream.raw)
    return Reaction(Outcome.SILENT, None, stream.raw)


def sasl_reaction(stream: ServerStream, *, closed: bool) -> Reaction:
    """Classify the answer to ``<auth mechanism='PLAIN'>`` sent before TLS.

    ``<failure><encryption-required/></failure>`` or a stream error is a refusal; a success,
    a challenge, or a failure with any other condition means the server ran the mechanism.
    """
    condition = stream_error_condition(stream.error)
    for name in ("success", "challenge"):
        if (el := stream.find(NS_SASL, name)) is not None:
            return Reaction(Outcome.ANSWERED, condition, stream.raw, el)
    failure = stream.find(NS_SASL, "failure")
    if failure is not None:
        reason = next((c.name for c in failure.elements() if c.name != "text"), "")
        if reason != "encryption-required":
            return Reaction(Outcome.ANSWERED, condition, stream.raw, failure)
        return Reaction(Outcome.STREAM_ERROR if condition else Outcome.STANZA_ERROR,
                        condition, stream.raw, failure)
    if condition is not None:
        return Reaction(Outcome.STREAM_ERROR, condition, stream.raw)
    if closed or stream.ended:
        return Reaction(Outcome.CLOSED, None, stream.raw)
    return Reaction(Outcome.SILENT, None, stream.raw)


# --- rules -----------------------------------------------------------------------------------

_ALWAYS_ON = "Nothing to configure: Stockade {what} and it cannot be switched off."


def _fix(stockade: str, prosody: str, ejabberd: str) -> Fix:
    return Fix(stockade=stockade, prosody=prosody, ejabberd=ejabberd)


FIX_REQUIRE_TLS = _fix(
    _ALWAYS_ON.format(what="requires TLS before SASL or any stanza"),
    "Set `c2s_require_encryption = true` and `s2s_require_encryption = true` (the default "
    "since 0.10); keep `allow_unencrypted_plain_auth = false`.",
    "Set `starttls_required: true` on the `ejabberd_c2s` listener (and "
    "`s2s_use_starttls: required` for s2s), with `certfiles` configured.",
)
FIX_NO_SASL_BEFORE_TLS = _fix(
    _ALWAYS_ON.format(what="offers no SASL mechanism before TLS"),
    "Set `c2s_require_encryption = true` and `allow_unencrypted_plain_auth = false`.",
    "Set `starttls_required: true` on the `ejabberd_c2s` listener so that SASL is only "
    "offered after TLS.",
)
FIX_INJECTION = _fix(
    _ALWAYS_ON.format(what="discards every byte buffered behind <starttls/>"),
    "Upgrade Prosody (and LuaSec) to a current release; the stream is reset on STARTTLS.",
    "Upgrade ejabberd (and fast_tls) to a current release; report the bug if it persists.",
)
FIX_PREAUTH = _fix(
    _ALWAYS_ON.format(what="answers a stanza before authentication with <not-authorized/> "
                      "and closes the stream"),
    "Upgrade Prosody; no configuration makes it route unauthenticated stanzas. Check "
    "third-party modules that hook pre-authentication events.",
    "Upgrade ejabberd; check custom modules that handle pre-authentication packets.",
)
FIX_DOCTYPE = _fix(
    _ALWAYS_ON.format(what="refuses DTDs with <restricted-xml/>"),
    "Upgrade Prosody (and its XML parser, lua-expat) to a current release.",
    "Upgrade ejabberd (and fast_xml) to a current release.",
)
FIX_COMPRESSION = _fix(
    _ALWAYS_ON.format(what="does not implement XEP-0138 stream compression"),
    "Remove `compression` from `modules_enabled` (mod_compression).",
    "Remove `zlib: true` from the listener options.",
)
FIX_VERSION = _fix(
    _ALWAYS_ON.format(what="answers no stanza before authentication"),
    "Remove `version` from `modules_enabled`, or set `hide_os_type = true` at least.",
    "Remove `mod_version` from `modules`, or set `show_os: false` in its options.",
)
FIX_WEAK_MECHANISMS = _fix(
    _ALWAYS_ON.format(what="offers only SCRAM, PLAIN over TLS and EXTERNAL"),
    "Use `authentication = \"internal_hashed\"` (SCRAM, no DIGEST-MD5); "
    "remove mod_saslauth extensions offering CRAM-MD5 or DIGEST-MD5.",
    "Set `auth_password_format: scram` and `disable_sasl_mechanisms: [\"DIGEST-MD5\", "
    "\"X-OAUTH2\"]`.",
)
FIX_PRETLS_STANZA = FIX_REQUIRE_TLS


def rule_starttls_offered(features: Features, raw: bytes) -> Finding:
    if features.starttls:
        return Finding("stream.starttls.offered", "STARTTLS offered", Severity.PASS,
                       "<starttls/> is in the stream features")
    return Finding(
        "stream.starttls.offered", "STARTTLS not offered", Severity.CRITICAL,
        f"no <starttls/> in the stream features: {evidence(raw)}",
        "Without STARTTLS every password and message crosses the network in clear text, "
        "and anyone on the path can read or change it.", FIX_REQUIRE_TLS)


def rule_starttls_required(features: Features) -> Finding:
    if features.starttls_required:
        return Finding("stream.starttls.required", "STARTTLS marked required", Severity.PASS,
                       "<starttls><required/></starttls>")
    return Finding(
        "stream.starttls.required", "STARTTLS not marked required", Severity.HIGH,
        "<starttls/> without <required/>" if features.starttls else "no <starttls/> at all",
        "A client (or an attacker stripping <starttls/>) may carry on without TLS; servers "
        "should mandate TLS for every stream (RFC 7590).", FIX_REQUIRE_TLS)


def rule_sasl_before_tls(features: Features) -> list[Finding]:
    """Mechanisms advertised on the unencrypted stream (RFC 6120 §13.8)."""
    mechs = features.mechanisms
    if not mechs:
        return [Finding("sasl.before_tls", "No SASL before TLS", Severity.PASS,
                        "no <mechanisms/> before STARTTLS"),
                Finding("sasl.plain_before_tls", "No PLAIN before TLS", Severity.PASS,
                        "PLAIN not offered before STARTTLS")]
    found = [Finding(
        "sasl.before_tls", "SASL offered before TLS", Severity.CRITICAL,
        f"mechanisms before STARTTLS: {', '.join(mechs)}",
        "Authentication on an unencrypted stream exposes credentials or password-equivalent "
        "material to anyone on the path, and invites a downgrade by stripping <starttls/>.",
        FIX_NO_SASL_BEFORE_TLS)]
    if "PLAIN" in mechs:
        found.append(Finding(
            "sasl.plain_before_tls", "PLAIN offered before TLS", Severity.CRITICAL,
            "PLAIN is in <mechanisms/> before STARTTLS",
            "PLAIN sends the password itself; before TLS anyone on the path reads it.",
            FIX_NO_SASL_BEFORE_TLS))
    else:
        found.append(Finding("sasl.plain_before_tls", "No PLAIN before TLS", Severity.PASS,
                             "PLAIN not offered before STARTTLS"))
    return found


def rule_auth_before_tls(reaction: Reaction) -> Finding:
    """The server's behaviour when a client sends PLAIN before TLS anyway."""
    check, title = "sasl.enforced_before_tls", "SASL attempt before TLS"
    if reaction.outcome is Outcome.ANSWERED:
        return Finding(
            check, f"{title} was processed", Severity.CRITICAL,
            f"sent <auth mechanism='PLAIN'> (invalid credentials) before STARTTLS: "
            f"{reaction.observed}",
            "The server runs authentication on a clear-text stream when a client asks, so a "
            "misconfigured or downgraded client gives its password away.",
            FIX_NO_SASL_BEFORE_TLS)
    if reaction.outcome is Outcome.SILENT:
        return Finding(check, f"{title}: no answer", Severity.LOW, reaction.observed,
                       "RFC 6120 §5.3.1 wants <encryption-required/> or a stream error.",
                       FIX_NO_SASL_BEFORE_TLS)
    return Finding(check, f"{title} refused", Severity.PASS, reaction.observed)


def rule_stanza_before_tls(reaction: Reaction) -> Finding:
    check = "stream.enforced_before_tls"
    if reaction.outcome is Outcome.ANSWERED:
        return Finding(
            check, "Stanza before TLS was processed", Severity.CRITICAL,
            f"sent an XEP-0199 ping before STARTTLS: {reaction.observed}",
            "The server processes traffic on an unencrypted stream: TLS is not enforced.",
            FIX_PRETLS_STANZA)
    return _refusal(check, "Stanza before TLS", reaction)


def rule_injection(reaction: Reaction) -> Finding:
    """CVE-2011-0411 class: bytes pipelined behind <starttls/> processed after TLS."""
    check = "stream.starttls.injection"
    if reaction.outcome is Outcome.ANSWERED:
        return Finding(
            check, "STARTTLS command injection", Severity.CRITICAL,
            "plaintext sent in the same write as <starttls/> was answered on the encrypted "
            f"stream: {reaction.observed}",
            "An attacker on the path can inject commands that the server treats as sent "
            "under TLS (CVE-2011-0411 class); RFC 6120 §5.4.3.3 requires discarding them.",
            FIX_INJECTION)
    return Finding(check, "No STARTTLS command injection", Severity.PASS,
                   "plaintext pipelined behind <starttls/> was discarded")


def rule_mechanisms_after_tls(features: Features) -> list[Finding]:
    """What authentication the encrypted stream offers (SCRAM, -PLUS, XEP-0440, EXTERNAL)."""
    mechs = features.mechanisms
    found = [Finding("sasl.mechanisms", "SASL mechanisms after TLS", Severity.INFO,
                     f"offered: {', '.join(mechs) if mechs else 'none'}"
                     + (f"; SASL2: {', '.join(features.sasl2_mechanisms)}"
                        if features.sasl2 else ""))]
    scram = [m for m in mechs if m.startswith("SCRAM-")]
    if scram:
        found.append(Finding("sasl.scram", "SCRAM offered", Severity.PASS, ", ".join(scram)))
    elif mechs:
        found.append(Finding(
            "sasl.scram", "No SCRAM mechanism", Severity.LOW,
            f"offered: {', '.join(mechs)}",
            "Without SCRAM the server learns the password at every login and clients "
            "cannot verify the server (RFC 5802).", FIX_WEAK_MECHANISMS))
    plus = [m for m in scram if m.endswith("-PLUS")]
    bindings = ", ".join(features.channel_bindings) or "not advertised (XEP-0440)"
    found.append(Finding(
        "sasl.channel_binding", "SCRAM -PLUS (channel binding)", Severity.INFO,
        f"{', '.join(plus)}; channel-binding types: {bindings}" if plus
        else "no -PLUS mechanism: logins are not bound to the TLS channel"))
    if "EXTERNAL" in mechs:
        found.append(Finding("sasl.external", "SASL EXTERNAL offered", Severity.INFO,
                             "EXTERNAL (certificate login) is offered"))
    if "PLAIN" in mechs:
        found.append(Finding("sasl.plain_over_tls", "PLAIN offered over TLS", Severity.INFO,
                             "PLAIN is offered on the encrypted stream"))
    weak = [m for m in mechs if m in ("DIGEST-MD5", "CRAM-MD5", "X-GOOGLE-TOKEN")]
    if weak:
        found.append(Finding(
            "sasl.weak_mechanisms", "Obsolete SASL mechanisms", Severity.MEDIUM,
            f"offered: {', '.join(weak)}",
            "DIGEST-MD5 (RFC 6331: historic) and CRAM-MD5 rest on MD5 and make the server "
            "store password-equivalent secrets.", FIX_WEAK_MECHANISMS))
    if "ANONYMOUS" in mechs:
        found.append(Finding("sasl.anonymous", "SASL ANONYMOUS offered", Severity.INFO,
                             "anonymous logins are possible on this host"))
    return found


def rule_sasl2(features: Features) -> list[Finding]:
    found = [Finding(
        "sasl.sasl2", "SASL2 (XEP-0388)", Severity.INFO,
        f"advertised: {', '.join(features.sasl2_mechanisms) or 'no mechanisms'}"
        if features.sasl2 else "not advertised")]
    if features.sasl2:
        found.append(Finding(
            "sasl.fast", "FAST (XEP-0484)", Severity.INFO,
            f"advertised: {', '.join(features.fast_mechanisms)}" if features.fast_mechanisms
            else "not advertised"))
    return found


def rule_compression(features: Iterable[Features]) -> Finding:
    """XEP-0138 stream compression under TLS is a compression oracle (CRIME-like)."""
    methods = sorted({m for f in features if f.compression for m in f.compression_methods
                      or ("(no method listed)",)})
    if not methods:
        return Finding("stream.compression", "No stream compression (XEP-0138)",
                       Severity.PASS, "no <compression/> feature")
    return Finding(
        "stream.compression", "Stream compression offered (XEP-0138)", Severity.HIGH,
        f"<compression/> methods: {', '.join(methods)}",
        "Compressing attacker-influenced and secret data together inside TLS leaks the "
        "secrets through the ciphertext length (CRIME/BREACH-style compression oracles); "
        "XEP-0138 says it must not be used with TLS.", FIX_COMPRESSION)


def rule_stanza_before_auth(reaction: Reaction) -> Finding:
    """RFC 6120 §4.9.3.12: an unauthenticated stanza gets <not-authorized/>, stream closed."""
    check = "stream.stanza_before_auth"
    if reaction.outcome is Outcome.ANSWERED:
        return Finding(
            check, "Stanza before authentication was processed", Severity.CRITICAL,
            f"sent an XEP-0092 query before authenticating: {reaction.observed}",
            "A server that processes stanzas from unauthenticated streams can be used "
            "anonymously: spoofing, spam and information disclosure.", FIX_PREAUTH)
    return _refusal(check, "Stanza before authentication", reaction)


def _refusal(check: str, title: str, reaction: Reaction) -> Finding:
    """A request that should be refused with a stream error: grade the manner of refusal."""
    if reaction.outcome is Outcome.STREAM_ERROR and reaction.condition == "not-authorized":
        return Finding(check, f"{title} refused", Severity.PASS, reaction.observed)
    if reaction.outcome in (Outcome.STREAM_ERROR, Outcome.CLOSED):
        return Finding(check, f"{title} refused (non-standard)", Severity.LOW,
                       reaction.observed,
                       "RFC 6120 §4.9.3.12 wants the <not-authorized/> stream error.",
                       FIX_PREAUTH)
    return Finding(check, f"{title} not refused", Severity.MEDIUM, reaction.observed,
                   "The stream should be closed with <not-authorized/>; a server that keeps "
                   "unauthenticated streams open and chatty invites abuse.", FIX_PREAUTH)


def rule_doctype(reaction: Reaction) -> Finding:
    check = "stream.doctype"
    if reaction.outcome is Outcome.STREAM_ERROR and reaction.condition == "restricted-xml":
        return Finding(check, "DOCTYPE refused", Severity.PASS, reaction.observed)
    if reaction.outcome in (Outcome.STREAM_ERROR, Outcome.CLOSED):
        return Finding(check, "DOCTYPE refused (non-standard)", Severity.LOW, reaction.observed,
                       "RFC 6120 §11.1 wants the <restricted-xml/> stream error.",
                       FIX_DOCTYPE)
    return Finding(
        check, "DOCTYPE accepted", Severity.HIGH,
        f"sent a stream header with an internal DTD: {reaction.observed}",
        "A parser that accepts DTDs is open to entity expansion (billion laughs) and "
        "external entities (XXE); RFC 6120 §11.1 forbids them.", FIX_DOCTYPE)


def rule_version_query(reaction: Reaction) -> Finding:
    check = "stream.version_disclosure"
    version = parse_version_reply(reaction.reply)
    if version is None:
        return Finding(check, "No software version before authentication", Severity.PASS,
                       "jabber:iq:version before authentication was not answered")
    return Finding(
        check, "Software version disclosed before authentication", Severity.LOW,
        f"jabber:iq:version before authentication answered: {version}",
        "Anyone can learn the exact software and version, and pick known vulnerabilities "
        "for it, without an account.", FIX_VERSION)


def rule_header_disclosure(header: StreamHeader | None, features: Iterable[Features]) -> Finding:
    check = "stream.header_disclosure"
    extra = sorted(f"{k}='{v}'" for k, v in (header.attrs if header else {}).items()
                   if k not in STANDARD_HEADER_ATTRS)
    nodes = sorted({f.caps_node for f in features if f.caps_node})
    if not extra and not nodes:
        return Finding(check, "Stream header and features name no software", Severity.PASS,
                       "only standard stream header attributes; no caps node in features")
    parts = ([f"extra header attributes: {', '.join(extra)}"] if extra else []) + (
        [f"caps node in features: {', '.join(nodes)}"] if nodes else [])
    return Finding(check, "Software hinted in stream header or features", Severity.INFO,
                   "; ".join(parts))


def not_tested(checks: Iterable[tuple[str, str]], reason: str) -> list[Finding]:
    """Findings for checks a probe could not make, saying why."""
    return [Finding(check, title, Severity.NOT_TESTED, reason) for check, title in checks]
