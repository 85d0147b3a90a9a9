"""The ``--account`` probe of ``stockade audit``: log in, then look at what the account gets.

It connects like a careful client: TLS (STARTTLS or direct, per the endpoint) with the
certificate verified against ``ca_file`` or the system store, and only then SCRAM
(-PLUS with tls-server-end-point when offered); never PLAIN. Logged in and bound, it asks
disco#info of the server and of the account, reads the stream features for XEP-0198, and
makes a second login to see whether one session sees the other (RFC 6121 presence to the
account's own resources). The rules live in ``stockade.core.audit.account``.

Both logins use a resource "stockade-audit-<random>" and priority -1, so they never take
the user's messages; the user's online devices do see them come and go, which is the point
of the sessions check. Nothing is published, stored or changed on the account.

The password is only ever handed to ScramClient; it is never logged, printed or put in a
finding.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
import ssl
from collections.abc import Callable

from stockade.audit.stream import read_until
from stockade.core.audit import account as rules
from stockade.core.audit import stream as stream_rules
from stockade.core.audit.model import Endpoint, Finding
from stockade.core.audit.stream import NS_SASL, NS_TLS, ServerStream
from stockade.core.crypto.certs import tls_server_end_point
from stockade.core.errors import SASLFailure
from stockade.core.sasl.scram import ScramClient
from stockade.core.xml.element import Element

#: How long a second session waits for the first one's presence.
PRESENCE_WAIT_S = 2.0
# Negative priority (RFC 6121 §4.7.2.3): the auditor's sessions never get the user's messages.
_PRESENCE = b"<presence><priority>-1</priority></presence>"


class ProbeError(Exception):
    """A step failed in a way that ends the login; the message is the finding's text."""


class CertificateError(ProbeError):
    """TLS did not verify: the password must not be sent."""


class _Connection:
    """One client connection: bytes in and out, the current server stream parsed."""

    def __init__(self, endpoint: Endpoint, timeout_s: float, tls: ssl.SSLContext) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.tls = tls
        self.stream = ServerStream()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.closed = False

    async def open(self) -> Element:
        """Connect, reach TLS, open the stream: the features after TLS."""
        direct = self.endpoint.service.direct_tls
        try:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(
                self.endpoint.host, self.endpoint.port, ssl=self.tls if direct else None,
                server_hostname=self.endpoint.domain if direct else None), self.timeout_s)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(exc.verify_message or str(exc)) from None
        except (OSError, TimeoutError) as exc:
            raise ProbeError(f"cannot connect to {self.endpoint}: {_reason(exc)}") from None
        features = await self.open_stream()
        if direct:
            return features
        if features.find(NS_TLS, "starttls") is None:
            raise CertificateError("the server offers no STARTTLS")
        await self.send(stream_rules.STARTTLS)
        await self.expect(lambda s: s.find(NS_TLS, "proceed") is not None, "<proceed/>")
        try:
            await self._writer().start_tls(self.tls, server_hostname=self.endpoint.domain,
                                           ssl_handshake_timeout=self.timeout_s)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(exc.verify_message or str(exc)) from None
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ProbeError(f"TLS handshake failed: {_reason(exc)}") from None
        return await self.open_stream()

    def _writer(self) -> asyncio.StreamWriter:
        assert self.writer is not None, "not connected"
        return self.writer

    def peer_certificate(self) -> bytes | None:
        ssl_object = self._writer().get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None

    async def send(self, data: bytes) -> None:
        writer = self._writer()
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), self.timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ProbeError(f"cannot send: {_reason(exc)}") from None

    async def wait_for(self, condition: Callable[[ServerStream], bool],
                       seconds: float | None = None) -> bool:
        """Read until ``condition`` holds (True) or the stream ends, breaks, errs or stays
        quiet for ``seconds`` (default: the probe timeout) (False)."""
        assert self.reader is not None, "not connected"
        met, self.closed = await read_until(self.reader, self.stream, condition,
                                            self.timeout_s if seconds is None else seconds,
                                            closed=self.closed, stop_on_error=True)
        return met

    async def expect(self, condition: Callable[[ServerStream], bool], what: str) -> None:
        if not await self.wait_for(condition):
            raise ProbeError(f"expected {what}: {self._what_happened()}")

    def _what_happened(self) -> str:
        condition = stream_rules.stream_error_condition(self.stream.error)
        if condition is not None:
            return f"stream error <{condition}/>"
        if self.stream.malformed:
            return f"unparsable answer ({self.stream.malformed})"
        if self.closed or self.stream.ended:
            return "the server closed the stream"
        return f"no answer within {self.timeout_s:g} s"

    async def open_stream(self) -> Element:
        self.stream = ServerStream()
        await self.send(stream_rules.stream_header(self.endpoint.domain,
                                                   self.endpoint.service.stream_namespace))
        await self.expect(lambda s: s.features is not None, "<stream:features/>")
        assert self.stream.features is not None
        return self.stream.features

    async def request(self, data: bytes, stanza_id: str) -> Element | None:
        """Send a stanza and wait for its answer (None: no answer in time)."""
        await self.send(data)
        await self.wait_for(lambda s: s.reply_to(stanza_id) is not None)
        return self.stream.reply_to(stanza_id)

    async def close(self) -> None:
        if self.writer is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.write(b"</stream:stream>")
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that checks the chain and the name, as a real client would."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    return f"{type(error).__name__}: {error}"


def _sasl_step(stream: ServerStream) -> Element | None:
    """The last SASL challenge/success/failure element received."""
    steps = [el for el in stream.elements if el.ns == NS_SASL
             and el.name in ("challenge", "success", "failure")]
    return steps[-1] if steps else None


def _payload(element: Element) -> bytes:
    try:
        return base64.b64decode(element.text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ProbeError(f"the server's SASL {element.name} is not base64") from None


def _failure_text(element: Element) -> str:
    conditions = [el.name for el in element.elements() if el.name != "text"]
    text = element.find(NS_SASL, "text")
    said = f" ({text.text.strip()})" if text is not None and text.text.strip() else ""
    return f"<failure><{conditions[0] if conditions else 'no-condition'}/></failure>{said}"


class LoginRefused(ProbeError):
    """The server answered the SASL exchange with a failure (wrong password, usually)."""


async def _step(conn: _Connection, data: bytes, seen: int) -> Element:
    """Send a SASL element; the next challenge/success/failure after the ``seen`` ones."""
    await conn.send(data)
    await conn.expect(lambda s: sum(1 for el in s.elements if el.ns == NS_SASL) > seen,
                      "a SASL answer")
    step = _sasl_step(conn.stream)
    assert step is not None
    if step.name == "failure":
        raise LoginRefused(_failure_text(step))
    return step


async def authenticate(conn: _Connection, features: Element, localpart: str,
                       password: str) -> rules.Mechanism:
    """SCRAM (RFC 5802, RFC 6120 §6) over the verified TLS connection; the mechanism used."""
    parsed = stream_rules.parse_features(features)
    mechanism = rules.choose_mechanism(parsed.mechanisms, parsed.channel_bindings)
    if mechanism is None:
        raise NoScramError(parsed.mechanisms)
    certificate = conn.peer_certificate()
    if certificate is None:  # cannot happen on a TLS stream; never send SCRAM without it
        raise ProbeError("no server certificate on the TLS connection")
    binding = (rules.ENDPOINT_BINDING, tls_server_end_point(certificate))
    try:
        client = ScramClient(mechanism.hash_name, localpart, password, channel_binding=binding,
                             plus=mechanism.plus, server_offers_plus=mechanism.server_offers_plus)
    except ValueError:
        # Not the error text: it could quote the password.
        raise ProbeError("the account name or the password is not valid for SCRAM "
                         "(RFC 8265 PRECIS preparation refused it)") from None
    first = base64.b64encode(client.first()).decode()
    step = await _step(conn, f"<auth xmlns='{NS_SASL}' mechanism='{mechanism.name}'>{first}"
                             "</auth>".encode(), 0)
    if step.name != "challenge":
        raise ProbeError(f"the server answered the client-first-message with <{step.name}/>")
    try:
        final = base64.b64encode(client.final(_payload(step))).decode()
        step = await _step(conn, f"<response xmlns='{NS_SASL}'>{final}</response>".encode(), 1)
        if step.name == "challenge":  # server-final as a challenge (RFC 6120 §6.4.5)
            client.verify(_payload(step))
            step = await _step(conn, f"<response xmlns='{NS_SASL}'/>".encode(), 2)
        else:
            client.verify(_payload(step))
    except SASLFailure as exc:
        raise ProbeError(f"SCRAM failed on the auditor's side: {exc} (the server's answer "
                         "did not prove it knows the password)") from None
    return mechanism


class NoScramError(ProbeError):
    def __init__(self, mechanisms: tuple[str, ...]) -> None:
        super().__init__("no SCRAM")
        self.mechanisms = mechanisms


async def login(endpoint: Endpoint, timeout_s: float, tls: ssl.SSLContext, localpart: str,
                password: str, resource: str) -> tuple[_Connection, rules.Mechanism, Element, str]:
    """A logged-in, bound connection: (connection, mechanism, post-SASL features, full JID).
    The caller closes the connection."""
    conn = _Connection(endpoint, timeout_s, tls)
    try:
        features = await conn.open()
        mechanism = await authenticate(conn, features, localpart, password)
        features = await conn.open_stream()
        jid = rules.bound_jid(await conn.request(rules.bind_iq(resource), rules.BIND_ID))
        if jid is None:
            raise ProbeError("resource binding failed (RFC 6120 §7)")
    except BaseException:
        await conn.close()
        raise
    return conn, mechanism, features, jid


async def _sessions(endpoint: Endpoint, timeout_s: float, tls: ssl.SSLContext,
                    first: _Connection, first_jid: str, localpart: str,
                    password: str) -> Finding:
    """Log in a second time: is the first session told of the new one (RFC 6121 §4.2.2:
    initial presence goes to all of the account's available resources)? Whether the new
    session also learns of the first is reported as seen, not required."""
    await first.send(_PRESENCE)
    second, _mechanism, _features, second_jid = await login(
        endpoint, timeout_s, tls, localpart, password, _resource())
    try:
        await second.send(_PRESENCE)
        first_saw = await first.wait_for(_presence_from(second_jid), PRESENCE_WAIT_S)
        second_saw = await second.wait_for(_presence_from(first_jid),
                                           0.2 if first_saw else 0.0)
        return rules.rule_sessions(first_jid, second_jid, first_saw=first_saw,
                                   second_saw=second_saw, wait_s=PRESENCE_WAIT_S)
    finally:
        await second.close()


def _presence_from(jid: str) -> Callable[[ServerStream], bool]:
    return lambda s: any(el.name == "presence" and el.get("from") == jid for el in s.elements)


def _resource() -> str:
    return f"stockade-audit-{secrets.token_hex(4)}"


async def probe(endpoint: Endpoint, *, timeout_s: float = 5.0, jid: str, password: str,
                ca_file: str | None = None) -> list[Finding]:
    """Log in to ``endpoint`` as ``jid`` and report the account's features."""
    localpart, _, domain = jid.partition("@")
    domain = domain.partition("/")[0]
    if not localpart or not domain:
        return rules.login_not_made(f"{jid!r} is not an account JID (user@domain)")
    if domain.lower() != endpoint.domain.lower():
        return rules.login_not_made(f"the account's domain {domain} is not the endpoint's "
                                    f"XMPP domain {endpoint.domain} (use --domain)")
    try:
        tls = verifying_context(ca_file)
    except (OSError, ssl.SSLError) as exc:
        return rules.login_not_made(f"cannot load the CA file: {_reason(exc)}")
    try:
        conn, mechanism, features, full_jid = await login(endpoint, timeout_s, tls, localpart,
                                                          password, _resource())
    except CertificateError as exc:
        return rules.rule_unverified_certificate(str(exc))
    except NoScramError as exc:
        return rules.rule_no_scram(exc.mechanisms)
    except LoginRefused as exc:
        return rules.rule_login_refused("SCRAM", str(exc))
    except ProbeError as exc:
        return rules.login_not_made(str(exc))
    try:
        return await _logged_in(endpoint, timeout_s, tls, conn, mechanism, features,
                                full_jid, localpart, password)
    finally:
        await conn.close()


async def _logged_in(endpoint: Endpoint, timeout_s: float, tls: ssl.SSLContext,
                     conn: _Connection, mechanism: rules.Mechanism, features: Element,
                     full_jid: str, localpart: str, password: str) -> list[Finding]:
    findings = [rules.rule_login(mechanism)]
    bare = full_jid.partition("/")[0]
    try:
        server = rules.parse_disco_info(await conn.request(
            rules.disco_info_iq(endpoint.domain, rules.DISCO_SERVER_ID), rules.DISCO_SERVER_ID))
        account = rules.parse_disco_info(await conn.request(
            rules.disco_info_iq(bare, rules.DISCO_ACCOUNT_ID), rules.DISCO_ACCOUNT_ID))
    except ProbeError as exc:
        return findings + rules.not_tested(rules.FEATURE_CHECKS, str(exc))
    findings += rules.rule_features(server, account)
    findings.append(rules.rule_sm(features))
    try:
        findings.append(await _sessions(endpoint, timeout_s, tls, conn, full_jid, localpart,
                                        password))
    except ProbeError as exc:
        findings += rules.not_tested([("account.sessions", "The account can see its other "
                                       "active sessions")], f"second login failed: {exc}")
    return findings
