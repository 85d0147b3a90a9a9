"""Client-to-server stream, receiving side: RFC 6120 §4-§7 (streams, STARTTLS, SASL, bind).

Sans-I/O: ``receive_data()`` returns events; ``data_to_send()`` returns bytes to write. Where the
shell must look something up (credentials, a resource) the machine waits and buffers input
until the matching ``provide_*`` call, so stanzas are always processed in order.

Default deny: before authentication and binding nothing but the negotiation element expected
in the current phase is processed (STYLE.md); anything else ends the stream.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from stockade.core.errors import (
    JIDError,
    LocalProtocolError,
    RemoteProtocolError,
    SASLFailure,
    SASLFailureCondition,
    StanzaError,
    StanzaErrorCondition,
    StreamErrorCondition,
)
from stockade.core.jid import JID, prepare_localpart
from stockade.core.sasl import (
    ScramServer,
    mock_credential,
    parse_external,
    parse_mechanism,
    parse_plain,
    ssdp_input,
    verify_plain,
)
from stockade.core.sasl.credentials import ScramCredential
from stockade.core.spec import Spec
from stockade.core.stanza import NS_CLIENT, Stanza, error_reply, parse_stanza
from stockade.core.stream import events as ev
from stockade.core.stream.sasl2 import NS_SASL2, SASL2Negotiation, sasl2_failure
from stockade.core.stream.sm import NS_SM, AckError, SMState, parse_h
from stockade.core.xml import (
    NS_STREAMS,
    XML_LANG,
    Element,
    ParserLimits,
    StreamEnd,
    StreamHeader,
    XMLStreamParser,
    escape_attr,
    escape_text,
    serialize,
)

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"  # XEP-0440
NS_ROSTER_VER = "urn:xmpp:features:rosterver"
NS_PRE_APPROVAL = "urn:xmpp:features:pre-approval"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"  # RFC 7395

# RFC 7395 framing: each WebSocket message is a document of its own, but our parser reads one
# stream. A synthetic root (never sent by anyone) makes each message a child of it, so the same
# hardened parser and limits apply; <open/> and <close/> stand in for the stream's tags.
_FRAMED_ROOT = (f"<stream:stream xmlns='{NS_CLIENT}' "
                f"xmlns:stream='{NS_STREAMS}'>").encode()
_FRAMED_HEADER_ATTRS = ("to", "version", XML_LANG)
# COMPAT: Strophe.js (and so Converse.js) recognises the server's <close/> only when it is
# spelled exactly like this (double quotes, a space before "/>"); it is the same XML.
_FRAMED_CLOSE = f'<close xmlns="{NS_FRAMING}" />'

SE = StreamErrorCondition
SF = SASLFailureCondition
_MAX_BACKLOG = 16  # elements a client may pipeline while we look something up


class Phase(enum.Enum):
    """Where the stream is in RFC 6120 §4.3.7's negotiation flow."""

    HEADER = "header"  # waiting for the (re)opened stream header
    TLS = "tls"  # features sent, <starttls/> expected
    TLS_HANDSHAKE = "tls-handshake"  # <proceed/> sent; input is discarded until TLS is up
    SASL = "sasl"  # mechanisms offered, <auth/> expected
    SASL_STEP = "sasl-step"  # a challenge is out, <response/> or <abort/> expected
    SASL2_STEP = "sasl2-step"  # the same in SASL2 (XEP-0388), its own namespace
    WAITING = "waiting"  # the shell owes us a provide_*() call
    BIND = "bind"  # authenticated; only resource binding is allowed
    ESTABLISHED = "established"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class C2SPolicy:
    """What this listener allows. Every default is the strict one."""

    domains: frozenset[str]
    mechanisms: tuple[str, ...] = (
        "SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "EXTERNAL",
    )
    max_auth_failures: int = 3  # RFC 6120 §6.4.5: at least 2 and no more than 5 retries
    preauth_limits: ParserLimits = field(
        default_factory=lambda: ParserLimits(max_stanza_bytes=16 * 1024, max_depth=8))
    limits: ParserLimits = field(default_factory=ParserLimits)
    mock_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    mock_iterations: int = 4096  # what unknown accounts announce: the same as real ones
    offer_legacy_session: bool = True  # COMPAT: RFC 3921 session iq, optional per RFC 6121
    # What feature modules add: serialized <stream:features> children (after SASL with the
    # bind feature; before it with the mechanisms), the (ns, name) of top-level elements a
    # bound client may send, and the IQ payloads allowed over TLS before authentication.
    bind_features: tuple[str, ...] = ()
    sasl_features: tuple[str, ...] = ()
    nonzas: frozenset[tuple[str, str]] = frozenset()
    preauth_iqs: frozenset[tuple[str, str]] = frozenset()
    max_preauth_iqs: int = 10  # per stream: registration takes two
    sm_resume_max_s: int = 300  # XEP-0198 resumption window; 0: no resumption offered
    sm_max_unacked: int = 5000
    sasl2: bool = True  # XEP-0388 beside RFC 6120 SASL (both over TLS only)
    fast_token_lifetime_s: int = 14 * 86_400  # XEP-0484 tokens; 0: FAST not offered
    # XEP-0386 session features modules enable inside <bind/>: (ns, name) of the elements
    # and the vars advertised for them (XEP-0198 is the core's own).
    bind2_features: frozenset[tuple[str, str]] = frozenset()
    bind2_vars: tuple[str, ...] = ()


class C2SServerStream(SASL2Negotiation):
    """One client connection's XMPP stream, as seen by the server (SASL2: see sasl2.py)."""

    def __init__(self, policy: C2SPolicy, *, tls_active: bool = False, framed: bool = False,
                 stream_id: Callable[[], str] = lambda: secrets.token_hex(12)) -> None:
        """``framed``: RFC 7395 (WebSocket): one complete element per ``receive_data`` call,
        output taken per message with ``take_frames``. A framed stream has no STARTTLS:
        ``tls_active`` says whether its transport is secure."""
        self.policy = policy
        self.framed = framed
        self.phase = Phase.HEADER
        self.is_tls = tls_active
        self.channel_binding: tuple[str, bytes] | None = None
        self.has_client_cert = False
        self.username: str | None = None
        self.domain: str | None = None
        self.jid: JID | None = None
        self.lang = "en"
        self._new_id = stream_id
        self._parser = self._new_parser(policy.preauth_limits)
        self._out: list[str] = []
        self._header_sent = False
        self._backlog: deque[Element] = deque()
        self._waiting_for: str | None = None
        self._failures = 0
        self._mechanism = ""
        self._scram: ScramServer | None = None
        self._plain: tuple[str, str] | None = None  # (authzid, password) awaiting credential
        self._offered: tuple[str, ...] = ()
        self._bind_id = ""
        self._pending_user: str | None = None
        self._refuse = False
        # Asked at the moment a password or proof is checked: parallel guesses that all got
        # past the lookup are still stopped once the throttle trips. The shell supplies it
        # (it knows the clock); the default refuses nothing.
        self.login_refused: Callable[[str], bool] = lambda _username: False
        self._jid_str: str | None = None
        self._preauth_iqs = 0
        self.sm: SMState | None = None  # XEP-0198, once enabled or resumed
        self._held: list[str] = []  # stanzas for a session whose SASL2 success is pending
        self._resume_h = 0

    # ------------------------------------------------------------------ I/O boundary
    def receive_data(self, data: bytes) -> list[ev.Event]:
        """Feed bytes from the peer; return what happened."""
        if self.phase in (Phase.CLOSED, Phase.TLS_HANDSHAKE):
            # SECURITY: plaintext that arrives after <starttls/> is never parsed (the
            # STARTTLS command-injection class, CVE-2011-0411).
            return []
        out: list[ev.Event] = []
        try:
            if self.framed:
                self._feed_message(data, out)
            else:
                for piece in self._pieces(data):
                    if not self._feed(piece, out):
                        break
        except RemoteProtocolError as exc:
            self._fail(exc.condition, exc.text, out)
        return out

    def _new_parser(self, limits: ParserLimits) -> XMLStreamParser:
        parser = XMLStreamParser(limits)
        if self.framed:
            parser.feed(_FRAMED_ROOT)  # its StreamHeader event is ours, not the peer's
        return parser

    def _feed_message(self, data: bytes, out: list[ev.Event]) -> None:
        """RFC 7395 §3.3.3: a WebSocket message carries exactly one complete element."""
        if data.lstrip().startswith((b"<!", b"<?")):
            # Inside our synthetic root expat would only call a DOCTYPE, comment or PI here
            # malformed; RFC 6120 §11.1 names the condition for what the peer tried.
            raise RemoteProtocolError(SE.RESTRICTED_XML, "DTDs, comments and processing "
                                      "instructions are not allowed")
        items = self._parser.feed(data)
        if len(items) > 1 or not self._parser.between_elements:
            raise RemoteProtocolError(SE.NOT_WELL_FORMED,
                                      "one complete element per WebSocket message")
        for item in items:
            self._dispatch(self._unframe(item), out)

    @staticmethod
    def _unframe(item: StreamHeader | Element | StreamEnd) -> StreamHeader | Element | StreamEnd:
        """<open/> is the stream header and <close/> its end (RFC 7395 §3.4, §3.6)."""
        if isinstance(item, Element) and item.ns == NS_FRAMING:
            if item.name == "open":
                attrs = {k: v for k, v in item.attrs.items() if k in _FRAMED_HEADER_ATTRS}
                return StreamHeader(attrs, NS_CLIENT, "stream")
            if item.name == "close":
                return StreamEnd()
        return item

    def _pieces(self, data: bytes) -> list[bytes]:
        """Before TLS, split input after every '>' so that the parser never sees a byte past
        ``<starttls/>``: pipelined plaintext is dropped unparsed, not merely ignored."""
        if self.is_tls or b">" not in data:
            return [data]
        parts = data.split(b">")
        pieces = [part + b">" for part in parts[:-1]]
        if parts[-1]:
            pieces.append(parts[-1])
        return pieces

    def _feed(self, data: bytes, out: list[ev.Event]) -> bool:
        """Parse and dispatch; False once the rest of the input must be dropped."""
        parser = self._parser
        for item in parser.feed(data):
            self._dispatch(item, out)
            if self._parser is not parser or self._is_closed():
                return False  # a restart: what the old parser read is void (RFC 6120 §4.3.3)
        return self.phase is not Phase.TLS_HANDSHAKE

    def _is_closed(self) -> bool:
        # A method, not an inline check: handlers change the phase behind mypy's back.
        return self.phase is Phase.CLOSED

    def data_to_send(self) -> bytes:
        """Bytes queued for the peer (TCP streams)."""
        if not self._out:
            return b""
        self._request_ack()
        data = "".join(self._out).encode("utf-8")
        self._out.clear()
        return data

    @property
    def mid_element(self) -> bool:
        """Whether the peer has started a top-level element it has not finished (slowloris
        detection: the shell times how long that lasts)."""
        return not self._parser.between_elements

    def take_frames(self) -> list[str]:
        """Framed streams: the queued output, one WebSocket text message per item."""
        if self._out:
            self._request_ack()
        frames, self._out = self._out, []
        return frames

    # ------------------------------------------------------------------ shell callbacks
    def tls_established(self, channel_binding: tuple[str, bytes] | None,
                        has_client_cert: bool = False) -> None:
        """TLS is up: start a fresh parser for the new stream (RFC 6120 §5.4.3.3)."""
        if self.phase is not Phase.TLS_HANDSHAKE and not (self.is_tls and not self._header_sent):
            raise LocalProtocolError("TLS established outside STARTTLS")
        self.is_tls = True
        self.channel_binding = channel_binding
        self.has_client_cert = has_client_cert
        self._restart()

    def provide_credential(self, credential: ScramCredential | None, *,
                           refuse: bool = False) -> list[ev.Event]:
        """Answer :class:`CredentialsRequested`. ``refuse`` (throttled) makes the attempt fail
        exactly as a wrong password would, so the peer learns nothing."""
        if not self._expect("credential"):
            return []
        def step(out: list[ev.Event]) -> None:
            if self._plain is not None:
                self._finish_plain(credential, refuse, out)
                return
            assert self._scram is not None
            # SECURITY: a refused (throttled) attempt still shows the real salt, so
            # throttling does not reveal which accounts exist; it fails at the end.
            self._refuse = refuse
            challenge = self._scram.respond_first(credential)
            self.phase = self._step_phase()
            self._send_sasl("challenge", challenge)
        return self._settle(step)

    def provide_external(self, username: str | None) -> list[ev.Event]:
        """Answer :class:`ExternalAuthRequested` with the account the certificate maps to."""
        if not self._expect("external"):
            return []
        def step(out: list[ev.Event]) -> None:
            if username is None:
                raise SASLFailure(SF.NOT_AUTHORIZED)
            self._sasl_success(username, None, out)
        return self._settle(step)

    def _settle(self, step: Callable[[list[ev.Event]], None]) -> list[ev.Event]:
        """Run the step an answered lookup unblocks, then the input buffered meanwhile."""
        out: list[ev.Event] = []
        try:
            try:
                step(out)
            except SASLFailure as exc:
                self._sasl_failed(exc, out)
        except RemoteProtocolError as exc:
            self._fail(exc.condition, exc.text, out)
            return out
        return self._resume(out)

    def provide_bind(self, result: JID | StanzaError) -> list[ev.Event]:
        """Answer :class:`BindRequested` with the bound full JID or the error to return."""
        if not self._expect("bind"):
            return []
        if self._sasl2 is not None:
            return self._settle(lambda out: self._sasl2_bound(result, out))
        out: list[ev.Event] = []
        if isinstance(result, StanzaError):
            iq = Element(NS_CLIENT, "iq", {"id": self._bind_id})
            self._send(error_reply(iq, result))
            self.phase = Phase.BIND
        else:
            self.jid = result
            iq = Element(NS_CLIENT, "iq", {"type": "result", "id": self._bind_id})
            iq.sub(NS_BIND, "bind").sub(NS_BIND, "jid", text=str(result))
            self._send(iq)
            self.phase = Phase.ESTABLISHED
        return self._resume(out)

    def provide_resume(self, jid: JID | None, state: SMState | None) -> list[ev.Event]:
        """Answer :class:`ResumeRequested` with the hibernated session's JID and state, or
        None when there is no such session of this account (XEP-0198 §5)."""
        if not self._expect("resume"):
            return []
        if self._sasl2 is not None:
            return self._settle(lambda out: self._sasl2_resumed(jid, state, out))
        out: list[ev.Event] = []
        if jid is None or state is None:
            self._out.append(_sm_failed("item-not-found"))
            self.phase = Phase.BIND
            return self._resume(out)
        try:
            state.acknowledge(self._resume_h)
        except AckError as exc:
            self._fail_ack(exc, out)
            return out
        self.jid, self.sm, self._jid_str = jid, state, None
        self._out.append(f"<resumed xmlns='{NS_SM}' h='{state.inbound}' "
                         f"previd='{escape_attr(state.id)}'/>")
        # Retransmitted in order; they stay queued until the client acknowledges them.
        self._out.extend(self._as_sent(x) for x in state.unacked)
        state.request_pending = False
        self.phase = Phase.ESTABLISHED
        return self._resume(out)

    def send_element(self, el: Element) -> None:
        """Queue a top-level element (a stanza) for the bound client."""
        if self.phase is not Phase.CLOSED:
            self._send_stanza(serialize(el, None if self.framed else NS_CLIENT))

    def send_raw(self, text: str) -> None:
        """Queue already-serialized stanza XML (in the jabber:client namespace)."""
        if self.phase is not Phase.CLOSED:
            self._send_stanza(self._as_sent(text))

    def _as_sent(self, text: str) -> str:
        """Stanza XML serialized for a jabber:client stream, as this stream writes it."""
        return _with_client_ns(text) if self.framed else text

    def _send_stanza(self, xml: str) -> None:
        if self.sm is not None:
            self.sm.record_outbound(xml)
        if self._sasl2_active:
            # XEP-0388 §2.4: nothing before the outcome. A session bound or resumed inside
            # an exchange still waiting (a token being stored) gets its stanzas after
            # <success/> (and the retransmissions), in the order they were counted.
            self._held.append(xml)
        else:
            self._out.append(xml)

    def _release_held(self) -> None:
        self._out.extend(self._held)
        self._held.clear()

    def close(self, condition: StreamErrorCondition | None = None,
              text: str | None = None) -> None:
        """Close our side, with a stream error if ``condition`` is given."""
        if self.phase is Phase.CLOSED:
            return
        self._write_error_and_close(condition, text)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, item: StreamHeader | Element | StreamEnd, out: list[ev.Event]) -> None:
        if isinstance(item, StreamHeader):
            self._on_header(item, out)
        elif isinstance(item, StreamEnd):
            self._write_error_and_close(None, None)
            out.append(ev.StreamClosed())
        elif self.phase is Phase.WAITING:
            if self._sasl2_active and item.tag != (NS_SASL2, "abort"):
                # XEP-0388 §2.4: "Servers MUST disconnect Clients immediately if any other
                # traffic is received" while authentication is in progress.
                raise RemoteProtocolError(SE.POLICY_VIOLATION, "wait for the outcome")
            if len(self._backlog) >= _MAX_BACKLOG:
                raise RemoteProtocolError(SE.POLICY_VIOLATION, "wait for the answer")
            self._backlog.append(item)
        else:
            self._on_element(item, out)

    def _on_element(self, el: Element, out: list[ev.Event]) -> None:
        if self.sm is not None and el.ns == NS_CLIENT:
            self.sm.count_inbound()  # every stanza is handled: routed or answered
        handler = _HANDLERS.get((self.phase, el.ns, el.name))
        if handler is not None:
            handler(self, el, out)
        elif self.phase is Phase.ESTABLISHED:
            if (el.ns, el.name) in self.policy.nonzas:
                out.append(ev.NonzaReceived(el))
            else:
                self._on_stanza(el, out)
        elif self.phase is Phase.SASL and self._is_preauth_iq(el):
            self._preauth_iqs += 1
            if self._preauth_iqs > self.policy.max_preauth_iqs:
                raise RemoteProtocolError(SE.POLICY_VIOLATION, "too many requests")
            out.append(ev.PreauthIQReceived(el))
        elif el.ns == NS_CLIENT and el.name in ("message", "presence", "iq"):
            # RFC 6120 §4.9.3.12: stanzas before authentication (and binding, §7.1).
            raise RemoteProtocolError(SE.NOT_AUTHORIZED, "authenticate first")
        elif el.tag in ((NS_SASL, "auth"), (NS_SASL2, "authenticate")) and \
                self.phase is Phase.TLS:
            # SECURITY: no SASL (or SASL2) before TLS, not even an attempt (RFC 6120 §5.3.1,
            # §13.8).
            self._send(_sasl_failure(SF.ENCRYPTION_REQUIRED) if el.ns == NS_SASL
                       else sasl2_failure(SF.ENCRYPTION_REQUIRED))
            raise RemoteProtocolError(SE.POLICY_VIOLATION, "TLS is required")
        else:
            raise RemoteProtocolError(SE.UNSUPPORTED_STANZA_TYPE, "not allowed here")

    def _is_preauth_iq(self, el: Element) -> bool:
        # Only over TLS (the SASL phase is never reached without it), only get/set with an
        # id, only payloads a module registered: everything else is still a stanza before
        # authentication.
        if el.ns != NS_CLIENT or el.name != "iq" or el.get("type") not in ("get", "set"):
            return False
        payload = next(el.elements(), None)
        return (payload is not None and "id" in el.attrs and self.is_tls
                and payload.tag in self.policy.preauth_iqs)

    def _on_header(self, header: StreamHeader, out: list[ev.Event]) -> None:
        if self.phase is not Phase.HEADER:
            raise RemoteProtocolError(SE.NOT_WELL_FORMED, "unexpected stream header")
        self._send_header(header)
        if header.default_ns != NS_CLIENT:
            raise RemoteProtocolError(SE.INVALID_NAMESPACE, "content namespace must be "
                                      "jabber:client")
        if header.stream_prefix != "stream":
            # RFC 6120 §4.8.5: the streams namespace is bound to the prefix "stream".
            raise RemoteProtocolError(SE.BAD_NAMESPACE_PREFIX, "use the prefix 'stream'")
        if header.attrs.get("version", "0.9").split(".")[0] != "1":
            raise RemoteProtocolError(SE.UNSUPPORTED_VERSION, "version 1.0 required")
        to = header.attrs.get("to", "")
        if self.domain is None:
            self._check_domain(to)
        elif to and to.lower() != self.domain:
            raise RemoteProtocolError(SE.HOST_UNKNOWN, "domain changed on restart")
        assert self.domain is not None
        out.append(ev.StreamOpened(self.domain))
        self._send_features()

    def _check_domain(self, to: str) -> None:
        domain = _hosted_domain(to, self.policy.domains)
        if domain is None:
            raise RemoteProtocolError(SE.HOST_UNKNOWN, "this server does not serve that domain")
        self.domain = domain

    # ------------------------------------------------------------------ output helpers
    def _send(self, el: Element) -> None:
        # Framed: every message is its own document, so it names its namespace.
        self._out.append(serialize(el, None if self.framed else NS_CLIENT))

    def _send_features_xml(self, xml: str) -> None:
        if self.framed:
            xml = xml.replace("<stream:features>",
                              f"<stream:features xmlns:stream='{NS_STREAMS}'>", 1)
        self._out.append(xml)

    def _send_header(self, header: StreamHeader | None) -> None:
        if header is not None:
            lang = header.attrs.get(XML_LANG, "en")
            self.lang = lang if len(lang) < 36 else "en"
        # RFC 6120 §4.7.1: 'from' is our domain; only a hosted one, never the peer's text.
        domain = self.domain or _hosted_domain(header.attrs.get("to", "") if header else "",
                                               self.policy.domains)
        attrs = f" from='{escape_attr(domain)}'" if domain else ""
        if self.framed:
            self._out.append(
                f"<open xmlns='{NS_FRAMING}' id='{self._new_id()}'{attrs} version='1.0' "
                f"xml:lang='{escape_attr(self.lang)}'/>")
            self._header_sent = True
            return
        self._out.append(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='{NS_STREAMS}' id='{self._new_id()}'{attrs} version='1.0' "
            f"xml:lang='{escape_attr(self.lang)}'>"
        )
        self._header_sent = True

    def _send_features(self) -> None:
        if not self.is_tls:
            self.phase = Phase.TLS
            self._send_features_xml(_TLS_FEATURES)
        elif self.username is None:
            self._offered = tuple(
                m for m in self.policy.mechanisms
                if not (m.endswith("-PLUS") and self.channel_binding is None)
                and not (m == "EXTERNAL" and not self.has_client_cert))
            cb_type = self.channel_binding[0] if self.channel_binding else None
            self.phase = Phase.SASL
            self._send_features_xml(_sasl_features(
                self._offered, cb_type, self._sasl2_feature() + self.policy.sasl_features))
        else:
            self.phase = Phase.BIND
            self._send_features_xml(_bind_features(self.policy.offer_legacy_session,
                                                   self.policy.bind_features))

    def _write_error_and_close(self, condition: StreamErrorCondition | None,
                               text: str | None, app: str = "") -> None:
        if not self._header_sent:
            self._send_header(None)
        if condition is not None:
            declare = f" xmlns:stream='{NS_STREAMS}'" if self.framed else ""
            err = f"<stream:error{declare}><{condition.value} xmlns='{NS_STREAM_ERRORS}'/>"
            if text:
                err += (f"<text xmlns='{NS_STREAM_ERRORS}' xml:lang='en'>"
                        f"{escape_text(text)}</text>")
            self._out.append(err + app + "</stream:error>")
        self._out.append(_FRAMED_CLOSE if self.framed else
                         "</stream:stream>")
        self.phase = Phase.CLOSED

    def _fail(self, condition: StreamErrorCondition, text: str | None,
              out: list[ev.Event]) -> None:
        self._write_error_and_close(condition, text)
        out.append(ev.StreamFailed(condition, text))

    def _restart(self) -> None:
        """RFC 6120 §4.3.3: a stream restart discards the old parser and its state."""
        self._parser = self._new_parser(
            self.policy.limits if self.username else self.policy.preauth_limits)
        self.phase = Phase.HEADER
        self._backlog.clear()
        # The restarted stream needs our header too: an error before it must still be
        # preceded by one (RFC 6120 §4.9.1.2).
        self._header_sent = False

    def _expect(self, what: str) -> bool:
        """False if the stream closed meanwhile (the answer is then moot)."""
        if self.phase is Phase.CLOSED:
            return False
        if self.phase is not Phase.WAITING or self._waiting_for != what:
            raise LocalProtocolError(f"not waiting for {what}")
        self._waiting_for = None
        return True

    def _wait(self, what: str) -> None:
        self.phase = Phase.WAITING
        self._waiting_for = what

    def _resume(self, out: list[ev.Event]) -> list[ev.Event]:
        try:
            while self._backlog and self.phase not in (Phase.WAITING, Phase.CLOSED):
                el = self._backlog.popleft()
                self._on_element(el, out)
                if self.phase is Phase.HEADER:
                    # A restart happened: elements parsed on the old stream are void.
                    self._backlog.clear()
        except RemoteProtocolError as exc:
            self._fail(exc.condition, exc.text, out)
        return out

    # ------------------------------------------------------------------ STARTTLS §5
    def _on_starttls(self, _el: Element, out: list[ev.Event]) -> None:
        self._out.append(f"<proceed xmlns='{NS_TLS}'/>")
        self.phase = Phase.TLS_HANDSHAKE
        self._backlog.clear()
        out.append(ev.StartTLSRequested())

    # ------------------------------------------------------------------ SASL §6
    def _on_auth(self, el: Element, out: list[ev.Event]) -> None:
        mech = el.get("mechanism", "") or ""
        self._mechanism = mech
        try:
            if mech not in self._offered:
                raise SASLFailure(SF.INVALID_MECHANISM)
            self._start_mechanism(mech, _b64decode(el.text), out)
        except SASLFailure as exc:
            self._sasl_failed(exc, out)

    def _start_mechanism(self, mech: str, payload: bytes, out: list[ev.Event]) -> None:
        """An offered mechanism with its initial response (empty: none); SASL and SASL2."""
        if mech == "PLAIN":
            self._start_plain(payload, out)
        elif mech == "EXTERNAL":
            self._wait("external")
            out.append(ev.ExternalAuthRequested(parse_external(payload)))
        elif payload:
            self._start_scram(mech, payload, out)
        else:
            self._send_sasl("challenge", b"")  # no initial response: ask for it
            self._scram = None
            self.phase = self._step_phase()

    def _step_phase(self) -> Phase:
        return Phase.SASL2_STEP if self._sasl2_active else Phase.SASL_STEP

    def _start_scram(self, mech: str, client_first: bytes, out: list[ev.Event]) -> None:
        hash_name, plus = parse_mechanism(mech)
        cb_type = self.channel_binding[0] if self.channel_binding else None
        scram = ScramServer(
            hash_name, plus=plus, channel_binding=self.channel_binding,
            server_offers_plus=cb_type is not None and any(
                m.endswith("-PLUS") for m in self._offered),
            ssdp=_ssdp(self._offered, cb_type),
            mock_secret=self.policy.mock_secret,
            mock_iterations=self.policy.mock_iterations,
        )
        username = self._account_name(scram.start(client_first))
        self._check_authzid(scram.authzid, username)
        self._scram, self._plain = scram, None
        self._wait("credential")
        out.append(ev.CredentialsRequested(username, hash_name))

    def _start_plain(self, payload: bytes, out: list[ev.Event]) -> None:
        authzid, authcid, password = parse_plain(payload)
        username = self._account_name(authcid)
        self._check_authzid(authzid or None, username)
        self._plain, self._scram = (username, password), None
        self._wait("credential")
        out.append(ev.CredentialsRequested(username, "SHA-256"))

    def _finish_plain(self, credential: ScramCredential | None, refuse: bool,
                      out: list[ev.Event]) -> None:
        assert self._plain is not None
        username, password = self._plain
        self._plain = None
        if credential is None or refuse or self.login_refused(username):
            # SECURITY: do the same PBKDF2 work as for a real account, so timing does not
            # tell which accounts exist.
            verify_plain(password, mock_credential(self.policy.mock_secret, "SHA-256",
                                                   username, self.policy.mock_iterations))
            raise SASLFailure(SF.NOT_AUTHORIZED)
        verify_plain(password, credential)
        self._sasl_success(username, None, out)

    def _on_response(self, el: Element, out: list[ev.Event]) -> None:
        try:
            payload = _b64decode(el.text)
            if self._scram is None:  # the initial response, after an empty challenge
                self._start_scram(self._mechanism, payload, out)
                return
            server_final = self._scram.finish(payload)
            assert self._pending_user is not None
            if self._refuse or self.login_refused(self._pending_user):
                raise SASLFailure(SF.NOT_AUTHORIZED)
            self._sasl_success(self._pending_user, server_final, out)
        except SASLFailure as exc:
            self._sasl_failed(exc, out)

    def _account_name(self, authcid: str) -> str:
        # The authcid is the localpart (RFC 6120 §6.3.8); a malformed one is treated like an
        # unknown account so the answer does not differ.
        try:
            name = prepare_localpart(authcid)
        except JIDError:
            name = "\x00invalid"
        self._pending_user = name
        return name

    def _check_authzid(self, authzid: str | None, username: str) -> None:
        if not authzid:
            return
        try:
            jid = JID.parse(authzid)
        except JIDError:
            raise SASLFailure(SF.INVALID_AUTHZID) from None
        if jid.resource is not None or jid.local != username or jid.domain != self.domain:
            raise SASLFailure(SF.INVALID_AUTHZID)

    def _on_abort(self, el: Element, _out: list[ev.Event]) -> None:
        # An abort proves nothing about credentials, so it is no failed login (throttling).
        self._scram = None
        self._end_sasl2()
        self._send(_sasl_failure(SF.ABORTED) if el.ns == NS_SASL else sasl2_failure(SF.ABORTED))
        self.phase = Phase.SASL

    def _sasl_success(self, username: str, additional: bytes | None,
                      out: list[ev.Event]) -> None:
        if username.startswith("\x00"):
            raise LocalProtocolError("invalid account name accepted")
        if self._sasl2 is not None:
            self._scram = None
            self._sasl_success_sasl2(username, additional, out)
            return
        self._out.append(f"<success xmlns='{NS_SASL}'>"
                         f"{base64.b64encode(additional).decode() if additional else ''}"
                         "</success>")
        self.username = username
        self._scram = None
        out.append(ev.AuthSucceeded(username, self._mechanism))
        self._restart()

    def _sasl_failed(self, exc: SASLFailure, out: list[ev.Event]) -> None:
        self._scram = None
        self._plain = None
        # Every credential failure looks the same: not-authorized (RFC 6120 §6.5.10).
        self._send(sasl2_failure(exc.condition) if self._end_sasl2()
                   else _sasl_failure(exc.condition))
        self.phase = Phase.SASL
        out.append(ev.AuthFailed(self._pending_user, self._mechanism,
                                 exc.condition is SF.NOT_AUTHORIZED))
        if exc.condition in (SF.NOT_AUTHORIZED, SF.INVALID_AUTHZID, SF.MALFORMED_REQUEST,
                             SF.INCORRECT_ENCODING):
            self._failures += 1
        if self._failures >= self.policy.max_auth_failures:
            raise RemoteProtocolError(SE.POLICY_VIOLATION, "too many failed attempts")

    def _send_sasl(self, name: str, data: bytes) -> None:
        ns = NS_SASL2 if self._sasl2_active else NS_SASL
        self._out.append(f"<{name} xmlns='{ns}'>{base64.b64encode(data).decode()}</{name}>")

    # ------------------------------------------------------------------ SASL2 (sasl2.py)
    def _raise_limits(self) -> None:
        # Authenticated without a stream restart: the parser takes the larger limits now.
        self._parser.limits = self.policy.limits

    def _sasl2_established(self, retransmit: tuple[str, ...], features: str) -> None:
        self.phase = Phase.ESTABLISHED
        self._send_features_xml(features)
        self._out.extend(self._as_sent(x) for x in retransmit)

    def _sasl2_unbound(self) -> None:
        self._send_features()  # RFC 6120 binding next

    # ------------------------------------------------------------------ bind §7
    def _on_bind_iq(self, el: Element, out: list[ev.Event]) -> None:
        bind = el.find(NS_BIND, "bind")
        session = el.find(NS_SESSION, "session")
        if el.get("type") != "set" or "id" not in el.attrs or (bind is None and session is None):
            raise RemoteProtocolError(SE.NOT_AUTHORIZED, "bind a resource first")
        self._bind_id = el.attrs["id"]
        if session is not None:  # RFC 3921 §3: only meaningful after bind
            if self.jid is None:
                raise RemoteProtocolError(SE.NOT_AUTHORIZED, "bind a resource first")
            self._send(Element(NS_CLIENT, "iq", {"type": "result", "id": self._bind_id}))
            return
        assert bind is not None
        res = bind.find(NS_BIND, "resource")
        wish = res.text.strip() if res is not None else ""
        self._wait("bind")
        out.append(ev.BindRequested(wish or None))

    def _on_established_iq(self, el: Element, out: list[ev.Event]) -> None:
        # Replies go out as events, in order behind stanzas the shell is still working on
        # (RFC 6120 §10.1), not straight into the output.
        if el.find(NS_SESSION, "session") is not None and el.get("type") == "set":
            out.append(ev.ReplyReady(Element(NS_CLIENT, "iq", {"type": "result",
                                                              "id": el.get("id") or ""})))
            return
        if el.find(NS_BIND, "bind") is not None:
            # RFC 6120 §7.7.2.1: one resource per stream.
            out.append(ev.ReplyReady(error_reply(
                el, StanzaError(StanzaErrorCondition.NOT_ALLOWED))))
            return
        self._on_stanza(el, out)

    # ------------------------------------------------------------------ XEP-0198
    def _on_sm_enable(self, el: Element, out: list[ev.Event]) -> None:
        if self.sm is not None:
            self._out.append(_sm_failed("unexpected-request"))
            return
        self._out.append(self._enable_sm(el, out))

    def _enable_sm(self, el: Element, out: list[ev.Event]) -> str:
        """Turn XEP-0198 on; return the <enabled/> to send (alone, or in XEP-0386 <bound/>)."""
        resumable = el.get("resume") in ("true", "1") and self.policy.sm_resume_max_s > 0
        state = SMState(secrets.token_urlsafe(18), resumable=resumable,
                        max_unacked=self.policy.sm_max_unacked)
        self.sm = state
        attrs = (f" id='{state.id}' resume='true' max='{self.policy.sm_resume_max_s}'"
                 if resumable else "")
        out.append(ev.SMEnabled(state))
        return f"<enabled xmlns='{NS_SM}'{attrs}/>"

    def _on_sm_unexpected(self, _el: Element, _out: list[ev.Event]) -> None:
        # XEP-0198 §3, §6: enabling before a resource is bound, or resuming after one is,
        # is an unexpected request (answered with <failed/>, the stream goes on).
        self._out.append(_sm_failed("unexpected-request"))

    def _on_sm_request(self, _el: Element, _out: list[ev.Event]) -> None:
        if self.sm is None:
            raise RemoteProtocolError(SE.UNSUPPORTED_STANZA_TYPE, "stream management is off")
        self._out.append(f"<a xmlns='{NS_SM}' h='{self.sm.inbound}'/>")

    def _on_sm_ack(self, el: Element, out: list[ev.Event]) -> None:
        if self.sm is None:
            raise RemoteProtocolError(SE.UNSUPPORTED_STANZA_TYPE, "stream management is off")
        h = parse_h(el.get("h"))
        if h is None:
            raise RemoteProtocolError(SE.INVALID_XML, "h must be a 32-bit unsigned integer")
        try:
            self.sm.acknowledge(h)
        except AckError as exc:
            self._fail_ack(exc, out)
            return
        # What was sent after our last <r/> is still unacknowledged: ask again now, or the
        # tail of a burst would stay unacked (and be rerouted twice if the link dies).
        self._request_ack()

    def _fail_ack(self, exc: AckError, out: list[ev.Event]) -> None:
        # XEP-0198 §4: a peer acking more than was sent gets undefined-condition with
        # <handled-count-too-high/>.
        self._write_error_and_close(SE.UNDEFINED_CONDITION, str(exc),
                                    app=f"<handled-count-too-high xmlns='{NS_SM}' h='{exc.h}' "
                                        f"send-count='{exc.sent}'/>")
        out.append(ev.StreamFailed(SE.UNDEFINED_CONDITION, str(exc)))

    def _on_sm_resume(self, el: Element, out: list[ev.Event]) -> None:
        h = parse_h(el.get("h"))
        previd = el.get("previd") or ""
        if h is None or not previd or len(previd) > 64:
            self._out.append(_sm_failed("bad-request"))
            return
        self._resume_h = h
        self._wait("resume")
        out.append(ev.ResumeRequested(previd, h))

    def _request_ack(self) -> None:
        sm = self.sm
        if (sm is not None and sm.unacked and not sm.request_pending
                and self.phase is Phase.ESTABLISHED):
            sm.request_pending = True
            self._out.append(f"<r xmlns='{NS_SM}'/>")

    # ------------------------------------------------------------------ stanzas
    def _on_stanza(self, el: Element, out: list[ev.Event]) -> None:
        try:
            stanza = parse_stanza(el)
        except StanzaError as err:
            if el.get("type") != "error":
                # The reply must not echo a malformed address back as its 'from'.
                reply = error_reply(el.copy({k: v for k, v in el.attrs.items()
                                             if k not in ("to", "from")}), err)
                reply.attrs["to"] = str(self.jid)
                out.append(ev.ReplyReady(reply))
            return
        out.append(ev.StanzaReceived(self._stamp_from(stanza)))

    def _stamp_from(self, stanza: Stanza) -> Stanza:
        """RFC 6120 §8.1.2.1: the server stamps the full JID; anything else is a spoof."""
        jid = self.jid
        assert jid is not None
        sender = stanza.from_
        if sender == jid:
            # Same JID once prepared; recipients still get our canonical spelling.
            stanza.element.attrs["from"] = self._jid_text
            return stanza
        if sender is None or sender == jid.bare:
            # The element is fresh from our parser and not shared yet: stamp it in place.
            stanza.element.attrs["from"] = self._jid_text
            return Stanza(stanza.element, stanza.kind, stanza.type, stanza.to, jid, stanza.id)
        raise RemoteProtocolError(SE.INVALID_FROM, "from does not match your JID")

    @property
    def _jid_text(self) -> str:
        if self._jid_str is None:
            self._jid_str = str(self.jid)
        return self._jid_str


def _hosted_domain(to: str, domains: frozenset[str]) -> str | None:
    """The prepared domain named by a stream header's 'to', if we host it."""
    try:
        jid = JID.parse(to) if to else None
    except JIDError:
        return None
    return jid.domain if jid is not None and jid.is_domain and jid.domain in domains else None


def _with_client_ns(text: str) -> str:
    """Stored stanzas are serialized inside a jabber:client stream (no xmlns on the root); a
    WebSocket message stands alone, so it must name the namespace."""
    end = len(text)
    for stop in (" ", "/", ">"):
        at = text.find(stop)
        if at != -1:
            end = min(end, at)
    # Our serializer writes a root's xmlns first, right after the name; looking anywhere
    # else would be fooled by attribute values the sender chose (an id="x xmlns='y'").
    if text.startswith(" xmlns=", end):
        return text
    return text[:end] + f" xmlns='{NS_CLIENT}'" + text[end:]


def _features_xml(features: Element) -> str:
    return ("<stream:features>"
            + "".join(serialize(c, NS_STREAMS) for c in features.elements())
            + "</stream:features>")


def _starttls_features() -> str:
    features = Element(NS_STREAMS, "features")
    features.sub(NS_TLS, "starttls").sub(NS_TLS, "required")
    return _features_xml(features)


_TLS_FEATURES = _starttls_features()


# The feature lists depend on a handful of flags only: built once, not per stream.
@functools.lru_cache(maxsize=64)
def _sasl_features(mechanisms: tuple[str, ...], cb_type: str | None,
                   extra: tuple[str, ...]) -> str:
    features = Element(NS_STREAMS, "features")
    mechs = features.sub(NS_SASL, "mechanisms")
    for mech in mechanisms:
        mechs.sub(NS_SASL, "mechanism", text=mech)
    if cb_type is not None:  # XEP-0440
        cb = features.sub(NS_SASL_CB, "sasl-channel-binding")
        cb.sub(NS_SASL_CB, "channel-binding", {"type": cb_type})
    return _with_extra(_features_xml(features), extra)


def _with_extra(features_xml: str, extra: tuple[str, ...]) -> str:
    """Append module-supplied feature children before </stream:features>."""
    if not extra:
        return features_xml
    head, tail = features_xml.rsplit("</stream:features>", 1)
    return head + "".join(extra) + "</stream:features>" + tail


@functools.lru_cache(maxsize=64)
def _ssdp(mechanisms: tuple[str, ...], cb_type: str | None) -> str:
    # XEP-0474: the hash covers every advertised mechanism and XEP-0440 type.
    return ssdp_input(mechanisms, [cb_type] if cb_type else [])


@functools.lru_cache(maxsize=4)
def _bind_features(legacy_session: bool, extra: tuple[str, ...]) -> str:
    features = Element(NS_STREAMS, "features")
    features.sub(NS_BIND, "bind")
    features.sub(NS_SM, "sm")  # XEP-0198
    features.sub(NS_ROSTER_VER, "ver")  # RFC 6121 §2.6.1
    features.sub(NS_PRE_APPROVAL, "sub")  # RFC 6121 §3.4.1
    if legacy_session:  # COMPAT: RFC 3921 clients
        features.sub(NS_SESSION, "session").sub(NS_SESSION, "optional")
    return _with_extra(_features_xml(features), extra)


def _b64decode(text: str) -> bytes:
    text = text.strip()
    if text == "=":
        return b""  # RFC 6120 §6.4.2: "=" is an empty initial response
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure(SF.INCORRECT_ENCODING) from None


def _sm_failed(condition: str) -> str:
    return (f"<failed xmlns='{NS_SM}'><{condition} "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")


def _sasl_failure(condition: SASLFailureCondition) -> Element:
    failure = Element(NS_SASL, "failure")
    failure.sub(NS_SASL, condition.value)
    return failure


_Handler = Callable[[C2SServerStream, Element, list[ev.Event]], None]

#: Default deny: the only (phase, namespace, element) triples processed before a stanza flow.
_HANDLERS: dict[tuple[Phase, str, str], _Handler] = {
    (Phase.TLS, NS_TLS, "starttls"): C2SServerStream._on_starttls,
    (Phase.SASL, NS_SASL, "auth"): C2SServerStream._on_auth,
    (Phase.SASL_STEP, NS_SASL, "response"): C2SServerStream._on_response,
    (Phase.SASL_STEP, NS_SASL, "abort"): C2SServerStream._on_abort,
    (Phase.SASL, NS_SASL, "abort"): C2SServerStream._on_abort,
    (Phase.SASL, NS_SASL2, "authenticate"): C2SServerStream._on_authenticate,
    (Phase.SASL2_STEP, NS_SASL2, "response"): C2SServerStream._on_response,
    (Phase.SASL2_STEP, NS_SASL2, "abort"): C2SServerStream._on_abort,
    (Phase.SASL, NS_SASL2, "abort"): C2SServerStream._on_abort,
    (Phase.BIND, NS_CLIENT, "iq"): C2SServerStream._on_bind_iq,
    (Phase.ESTABLISHED, NS_CLIENT, "iq"): C2SServerStream._on_established_iq,
    (Phase.ESTABLISHED, NS_SM, "enable"): C2SServerStream._on_sm_enable,
    (Phase.ESTABLISHED, NS_SM, "r"): C2SServerStream._on_sm_request,
    (Phase.ESTABLISHED, NS_SM, "a"): C2SServerStream._on_sm_ack,
    (Phase.BIND, NS_SM, "enable"): C2SServerStream._on_sm_unexpected,
    (Phase.BIND, NS_SM, "resume"): C2SServerStream._on_sm_resume,
    (Phase.ESTABLISHED, NS_SM, "resume"): C2SServerStream._on_sm_unexpected,
}


SPECS = (
    Spec("RFC 6120", "XMPP Core: streams, STARTTLS, SASL, binding", "RFC 6120",
         notes="c2s only (no s2s yet)"),
    Spec("XEP-0198", "Stream Management: acks and resumption; unacked messages rerouted",
         "1.6.1"),
    Spec("XEP-0440", "SASL Channel-Binding Type Capability", "0.4.2"),
    Spec("XEP-0474", "SASL SCRAM Downgrade Protection", "0.5.0"),
)
