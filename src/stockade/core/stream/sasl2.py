"""Modern login, sans-I/O: SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST tokens (XEP-0484),
with XEP-0198 enabled or resumed inline: authenticated, bound and stream-managed in one round
trip, and back in without the password.

The SASL2 half of ``C2SServerStream`` (a mixin, so c2s.py stays about RFC 6120): it reuses
that stream's mechanisms (SCRAM with -PLUS and XEP-0474, PLAIN, EXTERNAL), credential
lookups, failure counting and throttling, and its lookups of the shell (``provide_*``). Only
over TLS, next to RFC 6120 SASL: the features offer both, and the default-deny table in c2s.py
routes ``<authenticate/>`` here only in the SASL phase.

The flow of one ``<authenticate/>``: the mechanism (challenges as needed); on success, in
this order, inline XEP-0198 resumption, else Bind 2 with its inline features (SM enable in
the core, the rest by modules), then a FAST token if one was requested or is due for
rotation; then ``<success/>`` and new stream features, without a stream restart.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stockade.core.errors import (
    RemoteProtocolError,
    SASLFailure,
    SASLFailureCondition,
    StanzaError,
    StreamErrorCondition,
)
from stockade.core.jid import JID
from stockade.core.sasl.ht import (
    HT_MECHANISMS,
    FastToken,
    FastTokenUse,
    choose_token,
    fast_mechanisms,
    issue_token,
    parse_initiator,
)
from stockade.core.spec import Spec
from stockade.core.stream import events as ev
from stockade.core.stream.sm import NS_SM, AckError, SMState, parse_h
from stockade.core.xml import Element, escape_attr, escape_text, serialize

if TYPE_CHECKING:
    from stockade.core.stream.c2s import C2SPolicy

NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"  # failure conditions keep RFC 6120's namespace
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_ROSTER_VER = "urn:xmpp:features:rosterver"
NS_PRE_APPROVAL = "urn:xmpp:features:pre-approval"

SF = SASLFailureCondition
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII; UUIDs in practice
_TAG_CHARS = re.compile(r"[^A-Za-z0-9._-]")
MAX_TAG_CHARS = 32
_MAX_COUNT = 2**32


@dataclass(frozen=True, slots=True)
class FastRequest:
    """XEP-0484 ``<fast/>`` in an ``<authenticate/>``: this login uses a token."""

    count: int | None = None  # §3.4 replay counter
    invalidate: bool = False  # §3.6: log out, revoke the token


@dataclass(frozen=True, slots=True)
class AuthenticateRequest:
    """A parsed and checked XEP-0388 ``<authenticate/>``."""

    mechanism: str
    initial_response: bytes | None
    client_id: str | None  # <user-agent id=''/>
    bind: Element | None  # XEP-0386 <bind/>
    resume: Element | None  # XEP-0198 <resume/>
    request_token: str | None  # XEP-0484 <request-token mechanism=''/>
    fast: FastRequest | None


def parse_authenticate(el: Element, fast_offered: tuple[str, ...]) -> AuthenticateRequest:
    """Check an ``<authenticate/>`` (XEP-0388 §2.3, XEP-0484 §3.2, §3.4).

    Raises:
        SASLFailure: MALFORMED_REQUEST (repeated or invalid children, a token request for a
            mechanism not offered, FAST without a user-agent id, a token mechanism without
            ``<fast/>`` or the other way round), INCORRECT_ENCODING (bad base64).
    """
    mechanism = el.get("mechanism") or ""
    response = _single(el, NS_SASL2, "initial-response")
    agent = _single(el, NS_SASL2, "user-agent")
    token = _single(el, NS_FAST, "request-token")
    fast = _single(el, NS_FAST, "fast")
    client_id = agent.get("id") if agent is not None else None
    if client_id is not None and not _CLIENT_ID.fullmatch(client_id):
        raise SASLFailure(SF.MALFORMED_REQUEST, "user-agent id: 1 to 128 printable characters")
    request_token = token.get("mechanism") or "" if token is not None else None
    if request_token is not None and request_token not in fast_offered:
        raise SASLFailure(SF.MALFORMED_REQUEST, "request-token: not an offered FAST mechanism")
    if (fast is not None) != (mechanism in HT_MECHANISMS):
        # §3.4: a token login says so with <fast/>; a token mechanism is nothing else.
        raise SASLFailure(SF.MALFORMED_REQUEST, "<fast/> goes with a FAST mechanism")
    if client_id is None and (fast is not None or token is not None):
        # §4.1: "They MUST also provide the a SASL2 <user-agent> element with an 'id'".
        raise SASLFailure(SF.MALFORMED_REQUEST, "FAST needs a user-agent id")
    return AuthenticateRequest(
        mechanism, None if response is None else decode_sasl2(response.text), client_id,
        _single(el, NS_BIND2, "bind"), _single(el, NS_SM, "resume"), request_token,
        None if fast is None else _parse_fast(fast))


def _single(el: Element, ns: str, name: str) -> Element | None:
    found = el.find_all(ns, name)
    if len(found) > 1:
        raise SASLFailure(SF.MALFORMED_REQUEST, f"more than one <{name}/>")
    return found[0] if found else None


def _parse_fast(el: Element) -> FastRequest:
    count_text = el.get("count")
    count = None
    if count_text is not None:
        # §3.4: "The value of this attribute MUST be a positive integer".
        if not count_text.isdigit() or len(count_text) > 10 or not 0 < int(count_text) < \
                _MAX_COUNT:
            raise SASLFailure(SF.MALFORMED_REQUEST, "count must be a positive integer")
        count = int(count_text)
    invalidate = el.get("invalidate", "false")
    if invalidate not in ("1", "true", "0", "false"):
        raise SASLFailure(SF.MALFORMED_REQUEST, "invalidate must be a boolean")
    return FastRequest(count, invalidate in ("1", "true"))


def decode_sasl2(text: str) -> bytes:
    """XEP-0388 §2.2: base64 without line breaks; an empty element is empty data (no "="
    special case as in RFC 6120)."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure(SF.INCORRECT_ENCODING) from None


def parse_resume(el: Element) -> tuple[str, int] | None:
    """(previd, h) of an XEP-0198 ``<resume/>``, or None if malformed (bad-request)."""
    h = parse_h(el.get("h"))
    previd = el.get("previd") or ""
    if h is None or not previd or len(previd) > 64:
        return None
    return previd, h


def resource_wish(bind: Element) -> str:
    """XEP-0386 §3.2.1: the client's tag (sanitised, bounded) then a server-made part,
    "[client tag]/[server generated identifier]" (the RECOMMENDED format)."""
    tag_el = bind.find(NS_BIND2, "tag")
    tag = _TAG_CHARS.sub("", tag_el.text)[:MAX_TAG_CHARS] if tag_el is not None else ""
    suffix = secrets.token_urlsafe(9)
    return f"{tag}/{suffix}" if tag else suffix


def sasl2_failure(condition: SASLFailureCondition) -> Element:
    """XEP-0388 §2.6.2: SASL2 ``<failure/>`` with an RFC 6120 §6.5 condition."""
    failure = Element(NS_SASL2, "failure")
    failure.sub(NS_SASL, condition.value)
    return failure


def sm_failed(condition: str) -> str:
    """XEP-0198 ``<failed/>`` with a stanza error condition."""
    return f"<failed xmlns='{NS_SM}'><{condition} xmlns='{NS_STANZAS}'/></failed>"


def xep0082_datetime(unix_time: float) -> str:
    """XEP-0082 DateTime in UTC, e.g. 2020-03-12T14:36:15Z."""
    return datetime.datetime.fromtimestamp(unix_time, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=64)
def authentication_feature(mechanisms: tuple[str, ...], bind_vars: tuple[str, ...],
                           sm_inline: bool, fast: tuple[str, ...]) -> str:
    """The ``<authentication/>`` stream feature with its inline features: Bind 2 (XEP-0386
    §3.1, listing the session features it can enable), XEP-0198 resumption, FAST (XEP-0484
    §3.1)."""
    parts = [f"<authentication xmlns='{NS_SASL2}'>"]
    parts.extend(f"<mechanism>{escape_text(m)}</mechanism>" for m in mechanisms)
    parts.append(f"<inline><bind xmlns='{NS_BIND2}'><inline>")
    parts.extend(f"<feature var='{escape_attr(var)}'/>" for var in bind_vars)
    parts.append("</inline></bind>")
    if sm_inline:
        parts.append(f"<sm xmlns='{NS_SM}'/>")
    if fast:
        parts.append(f"<fast xmlns='{NS_FAST}'>")
        parts.extend(f"<mechanism>{m}</mechanism>" for m in fast)
        parts.append("</fast>")
    parts.append("</inline></authentication>")
    return "".join(parts)


@functools.lru_cache(maxsize=16)
def established_features(offer_sm: bool, extra: tuple[str, ...]) -> str:
    """Stream features after a SASL2 success that bound or resumed a session (XEP-0388
    §2.6.1: sent right after ``<success/>``, no restart): no resource binding any more, and
    XEP-0198 only if it is not on already."""
    sm = f"<sm xmlns='{NS_SM}'/>" if offer_sm else ""
    return (f"<stream:features>{sm}<ver xmlns='{NS_ROSTER_VER}'/>"
            f"<sub xmlns='{NS_PRE_APPROVAL}'/>{''.join(extra)}</stream:features>")


@dataclass(slots=True)
class _Exchange:
    """One SASL2 authentication in progress and what its success will say."""

    request: AuthenticateRequest
    step: int = 0  # next of _STEPS to run once authenticated
    additional: bytes | None = None  # the mechanism's success data
    fast_use: FastTokenUse | None = None  # the token this login used
    sm_result: str = ""  # <resumed/> or <failed/> (XEP-0198 inline)
    retransmit: tuple[str, ...] = ()  # unacked stanzas of a resumed session
    bound: list[str] | None = None  # children of <bound/>; None: no session bound
    pending_token: str | None = None  # issued, awaiting storage
    token: str = ""  # the <token/> element for <success/>


class SASL2Negotiation:
    """XEP-0388/0386/0484 for ``C2SServerStream`` (a mixin: it uses that class's state and
    helpers, declared below for type checking only)."""

    if TYPE_CHECKING:
        policy: C2SPolicy
        username: str | None
        domain: str | None
        jid: JID | None
        sm: SMState | None
        channel_binding: tuple[str, bytes] | None
        login_refused: Callable[[str], bool]
        _out: list[str]
        _offered: tuple[str, ...]
        _mechanism: str
        _pending_user: str | None
        _resume_h: int
        _jid_str: str | None
        _backlog: deque[Element]

        def _wait(self, what: str) -> None: ...
        def _expect(self, what: str) -> bool: ...
        def _settle(self, step: Callable[[list[ev.Event]], None]) -> list[ev.Event]: ...
        def _account_name(self, authcid: str) -> str: ...
        def _start_mechanism(self, mech: str, payload: bytes, out: list[ev.Event]) -> None: ...
        def _sasl_failed(self, exc: SASLFailure, out: list[ev.Event]) -> None: ...
        def _sasl_success(self, username: str, additional: bytes | None,
                          out: list[ev.Event]) -> None: ...
        def _fail_ack(self, exc: AckError, out: list[ev.Event]) -> None: ...
        def _enable_sm(self, el: Element, out: list[ev.Event]) -> str: ...
        def _sasl2_established(self, retransmit: tuple[str, ...], features: str) -> None: ...
        def _sasl2_unbound(self) -> None: ...
        def _raise_limits(self) -> None: ...
        def _release_held(self) -> None: ...

    #: Set by the shell: wall-clock unix time, for token expiry. Without it no FAST.
    wall_clock: Callable[[], float] | None = None
    _sasl2: _Exchange | None = None  # the exchange, once its <authenticate/> parsed
    _sasl2_active = False  # from <authenticate/> until <success/> or <failure/>
    _fast_offered: tuple[str, ...] = ()

    # ------------------------------------------------------------------ features
    def _sasl2_feature(self) -> tuple[str, ...]:
        """The ``<authentication/>`` feature to offer beside RFC 6120 SASL, if any."""
        if not self.policy.sasl2 or not self._offered:
            # XEP-0388 §2.1: "MUST NOT be offered if not at least one mechanism".
            return ()
        cb_type = self.channel_binding[0] if self.channel_binding else None
        fast_on = self.policy.fast_token_lifetime_s > 0 and self.wall_clock is not None
        self._fast_offered = fast_mechanisms(cb_type) if fast_on else ()
        bind_vars = (NS_SM, *self.policy.bind2_vars)
        return (authentication_feature(self._offered, bind_vars,
                                       self.policy.sm_resume_max_s > 0, self._fast_offered),)

    # ------------------------------------------------------------------ <authenticate/>
    def _on_authenticate(self, el: Element, out: list[ev.Event]) -> None:
        if not self.policy.sasl2 or not self._offered:
            raise RemoteProtocolError(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE,
                                      "SASL2 is not offered")
        self._mechanism = el.get("mechanism") or ""
        self._pending_user = None
        self._sasl2_active = True
        try:
            request = parse_authenticate(el, self._fast_offered)
            self._sasl2 = _Exchange(request)
            if request.fast is not None:
                self._start_fast(request, out)
            elif request.mechanism not in self._offered:
                raise SASLFailure(SF.INVALID_MECHANISM)
            else:
                self._start_mechanism(request.mechanism, request.initial_response or b"", out)
        except SASLFailure as exc:
            self._sasl_failed(exc, out)

    def _start_fast(self, request: AuthenticateRequest, out: list[ev.Event]) -> None:
        mechanism = request.mechanism
        if mechanism not in self._fast_offered or self.wall_clock is None:
            raise SASLFailure(SF.INVALID_MECHANISM)
        assert request.fast is not None and request.client_id is not None
        authcid, proof = parse_initiator(mechanism, request.initial_response or b"")
        username = self._account_name(authcid)
        choose = functools.partial(choose_token, mechanism=mechanism, proof=proof,
                                   count=request.fast.count,
                                   invalidate=request.fast.invalidate, now=self.wall_clock())
        self._wait("fast")
        out.append(ev.FastAuthRequested(username, request.client_id, choose))

    def provide_fast_auth(self, use: FastTokenUse | None, *,
                          refuse: bool = False) -> list[ev.Event]:
        """Answer :class:`FastAuthRequested` with what storage applied (None: no valid
        token). ``refuse`` (throttled) fails it exactly as a wrong token would."""
        if not self._expect("fast"):
            return []

        def step(out: list[ev.Event]) -> None:
            username = self._pending_user
            assert username is not None and self._sasl2 is not None
            # SECURITY: a revoked, expired, replayed or wrong token and a throttled attempt
            # all get what a wrong password gets (XEP-0484 §4.2 would say
            # credentials-expired for distrusted tokens; not-authorized tells less).
            if use is None or refuse or self.login_refused(username):
                raise SASLFailure(SF.NOT_AUTHORIZED)
            self._sasl2.fast_use = use
            self._sasl_success(username, use.token.responder, out)
        return self._settle(step)

    # ------------------------------------------------------------------ after authentication
    def _sasl_success_sasl2(self, username: str, additional: bytes | None,
                            out: list[ev.Event]) -> None:
        """The mechanism succeeded: authenticated now, <success/> once the inline work is done
        (XEP-0386 §3.2: "after authentication is successful ... but before sending the
        <success/>")."""
        assert self._sasl2 is not None
        self._sasl2.additional = additional
        self.username = username
        self._raise_limits()
        out.append(ev.AuthSucceeded(username, self._mechanism))
        self._sasl2_next(out)

    def _sasl2_next(self, out: list[ev.Event]) -> None:
        """Run the inline steps in order until one waits for the shell, then succeed."""
        exchange = self._sasl2
        assert exchange is not None
        while exchange.step < len(_STEPS):
            run = _STEPS[exchange.step]
            exchange.step += 1
            if run(self, exchange, out):
                return  # waiting; provide_*() continues here
        self._sasl2_success(exchange)

    def _step_resume(self, exchange: _Exchange, out: list[ev.Event]) -> bool:
        """XEP-0198 inline: resumption first ("that MUST be processed first", XEP-0386)."""
        resume = exchange.request.resume
        if resume is None:
            return False
        args = parse_resume(resume)
        if args is None:
            exchange.sm_result = sm_failed("bad-request")
            return False
        previd, self._resume_h = args
        self._wait("resume")
        out.append(ev.ResumeRequested(previd, self._resume_h))
        return True

    def _sasl2_resumed(self, jid: JID | None, state: SMState | None,
                       out: list[ev.Event]) -> None:
        exchange = self._sasl2
        assert exchange is not None
        if jid is None or state is None:
            # XEP-0386: "the server MUST include the XEP-0198 failure in the response, and
            # then MUST proceed to process the bind request".
            exchange.sm_result = sm_failed("item-not-found")
            self._sasl2_next(out)
            return
        try:
            state.acknowledge(self._resume_h)
        except AckError as exc:
            self._fail_ack(exc, out)
            return
        self.jid, self.sm, self._jid_str = jid, state, None
        exchange.sm_result = (f"<resumed xmlns='{NS_SM}' h='{state.inbound}' "
                              f"previd='{escape_attr(state.id)}'/>")
        exchange.retransmit = tuple(state.unacked)  # they stay queued until acked
        state.request_pending = False
        self._sasl2_next(out)

    def _step_bind(self, exchange: _Exchange, out: list[ev.Event]) -> bool:
        """XEP-0386 §3.2; "If that resumption is successful, the server MUST skip resource
        binding"."""
        bind = exchange.request.bind
        if bind is None or self.jid is not None:
            return False
        self._wait("bind")
        out.append(ev.BindRequested(resource_wish(bind), exchange.request.client_id))
        return True

    def _sasl2_bound(self, result: JID | StanzaError, out: list[ev.Event]) -> None:
        exchange = self._sasl2
        assert exchange is not None
        if isinstance(result, JID):
            self.jid, self._jid_str = result, None
            exchange.bound = []
        # A refused bind (e.g. too many resources): authenticated all the same, so <success/>
        # names the bare JID and the features offer RFC 6120 binding, which reports why.
        self._sasl2_next(out)

    def _step_bind_features(self, exchange: _Exchange, out: list[ev.Event]) -> bool:
        """XEP-0386 §3.2: session features requested inside <bind/>."""
        if exchange.bound is None or exchange.request.bind is None:
            return False
        modules: dict[tuple[str, str], Element] = {}  # one of each: repeats change nothing
        for child in exchange.request.bind.elements():
            if child.tag == (NS_SM, "enable") and self.sm is None:
                # "The <bound/> response MUST contain the resulting XEP-0198 <enabled/>".
                exchange.bound.append(self._enable_sm(child, out))
            elif child.tag in self.policy.bind2_features:
                modules.setdefault(child.tag, child)
        if not modules:
            return False
        self._wait("bind2-features")
        out.append(ev.Bind2FeaturesRequested(tuple(modules.values())))
        return True

    def provide_bind2_features(self, replies: list[Element]) -> list[ev.Event]:
        """Answer :class:`Bind2FeaturesRequested`: what the modules put into ``<bound/>``."""
        if not self._expect("bind2-features"):
            return []

        def step(out: list[ev.Event]) -> None:
            exchange = self._sasl2
            assert exchange is not None and exchange.bound is not None
            exchange.bound.extend(serialize(reply, NS_BIND2) for reply in replies)
            self._sasl2_next(out)
        return self._settle(step)

    def _step_token(self, exchange: _Exchange, out: list[ev.Event]) -> bool:
        """XEP-0484 §3.3 (requested) and §3.5 (rotation: a fresh token on every use, the
        used one valid until the new one is used; none after invalidate unless asked)."""
        used = exchange.fast_use
        mechanism = exchange.request.request_token
        if mechanism is None and used is not None and not used.invalidate:
            mechanism = used.token.mechanism
        if mechanism is None or self.wall_clock is None or exchange.request.client_id is None:
            return False
        _, cb_type = HT_MECHANISMS[mechanism]
        cb_data = b""
        if cb_type is not None:
            assert self.channel_binding is not None and self.channel_binding[0] == cb_type
            cb_data = self.channel_binding[1]
        token, record = issue_token(mechanism, cb_data, now=self.wall_clock(),
                                    lifetime_s=self.policy.fast_token_lifetime_s)
        exchange.pending_token = (f"<token xmlns='{NS_FAST}' "
                                  f"expiry='{xep0082_datetime(record.expires_at)}' "
                                  f"token='{token}'/>")
        assert self.username is not None
        self._wait("fast-stored")
        out.append(ev.FastTokenIssued(self.username, exchange.request.client_id, record))
        return True

    def provide_fast_stored(self, stored: bool) -> list[ev.Event]:
        """Answer :class:`FastTokenIssued`: whether the token was stored (if not, the client
        does not get it, and logs in as before next time)."""
        if not self._expect("fast-stored"):
            return []

        def step(out: list[ev.Event]) -> None:
            exchange = self._sasl2
            assert exchange is not None
            if stored and exchange.pending_token is not None:
                exchange.token = exchange.pending_token
            exchange.pending_token = None
            self._sasl2_next(out)
        return self._settle(step)

    # ------------------------------------------------------------------ outcome
    def _sasl2_success(self, exchange: _Exchange) -> None:
        """XEP-0388 §2.6.1: <success/> with the authorization identifier (the full JID once a
        session is bound or resumed), then stream features; no stream restart."""
        self._sasl2, self._sasl2_active = None, False
        # An <abort/> that crossed our answer comes too late; nothing else could be queued
        # (any other element while waiting ends the stream: XEP-0388 §2.4).
        self._backlog.clear()
        assert self.username is not None and self.domain is not None
        identity = str(self.jid) if self.jid is not None else str(
            JID(self.username, self.domain, None))
        additional = (f"<additional-data>{base64.b64encode(exchange.additional).decode()}"
                      "</additional-data>") if exchange.additional else ""
        bound = ("" if exchange.bound is None else
                 f"<bound xmlns='{NS_BIND2}'>{''.join(exchange.bound)}</bound>")
        self._out.append(f"<success xmlns='{NS_SASL2}'>{additional}<authorization-identifier>"
                         f"{escape_text(identity)}</authorization-identifier>"
                         f"{exchange.sm_result}{bound}{exchange.token}</success>")
        if self.jid is None:
            self._sasl2_unbound()
        else:
            self._sasl2_established(exchange.retransmit, established_features(
                self.sm is None, self.policy.bind_features))
        self._release_held()

    def _end_sasl2(self) -> bool:
        """Forget the exchange (it failed or was aborted); True if there was one."""
        had = self._sasl2_active
        self._sasl2, self._sasl2_active = None, False
        if had:
            self._backlog.clear()  # at most an <abort/> that came too late
        self._release_held()
        return had


_Step = Callable[[SASL2Negotiation, _Exchange, list[ev.Event]], bool]
#: What follows a successful mechanism, in order (XEP-0386 §3.2).
_STEPS: tuple[_Step, ...] = (SASL2Negotiation._step_resume, SASL2Negotiation._step_bind,
                             SASL2Negotiation._step_bind_features, SASL2Negotiation._step_token)

__all__ = ["NS_BIND2", "NS_FAST", "NS_SASL2", "AuthenticateRequest", "FastRequest",
           "FastToken", "SASL2Negotiation", "authentication_feature", "decode_sasl2",
           "established_features", "parse_authenticate", "parse_resume", "resource_wish",
           "sasl2_failure", "sm_failed", "xep0082_datetime"]

SPECS = (
    Spec("XEP-0388", "Extensible SASL Profile (SASL2): SCRAM/-PLUS, PLAIN, EXTERNAL, FAST "
         "over TLS beside RFC 6120 SASL", "0.4.0", "partial",
         "no <continue/> tasks (2FA, upgrades), <user-agent/> software/device not kept"),
    Spec("XEP-0386", "Bind 2: bind, XEP-0198 enable, carbons and CSI inline", "1.0.0",
         "partial", "no MAM <metadata/> in <bound/>; offline messages are not cleared "
         "(delivered as usual, none lost)"),
    Spec("XEP-0484", "FAST tokens: HT-SHA-256-ENDP/-NONE, hashed at rest, rotated on use",
         "0.1.0", "partial", "no TLS 0-RTT; tokens bound to the user-agent id; distrusted "
         "tokens fail with not-authorized (not credentials-expired)"),
)
