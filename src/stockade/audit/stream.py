"""The XMPP stream and SASL probe of ``stockade audit`` (asyncio; rules in core.audit.stream).

Each check that leaves a stream in a state no later check can use (a stream error, a
refused attempt) runs on its own connection; the connections run concurrently. A server
that misbehaves, stalls or refuses the connection yields findings, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from stockade.core.audit import stream as rules
from stockade.core.audit.model import Endpoint, Finding, Severity
from stockade.core.audit.stream import (
    NS_SASL,
    NS_TLS,
    Features,
    Outcome,
    Reaction,
    ServerStream,
)
from stockade.core.xml.parser import StreamHeader

QUIET_S = 0.5  # how long silence must last to count as "the server did not answer"
READ_SIZE = 64 * 1024


def _probe_tls_context() -> ssl.SSLContext:
    """A TLS client that connects to anything: this probe inspects streams, not
    certificates (stockade.audit.certificate does), so verification is off on purpose."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Reach the stream checks even on servers with old TLS (the TLS probe grades that);
    # Python warns that TLS 1.0 is deprecated, which is the point of allowing it here.
    with contextlib.suppress(ValueError, ssl.SSLError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


async def read_until(reader: asyncio.StreamReader, stream: ServerStream,
                     condition: Callable[[ServerStream], bool], seconds: float, *,
                     closed: bool = False, stop_on_error: bool = False) -> tuple[bool, bool]:
    """Feed ``stream`` from ``reader`` until ``condition`` holds; give up when the stream
    ends, breaks (or carries a stream error, with ``stop_on_error``) or stays quiet for
    ``seconds``. Returns (condition met, connection closed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition(stream):
        remaining = deadline - loop.time()
        if (closed or stream.malformed or stream.ended or remaining <= 0
                or (stop_on_error and stream.error is not None)):
            return False, closed
        try:
            data = await asyncio.wait_for(reader.read(READ_SIZE), remaining)
        except TimeoutError:
            return False, closed
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            closed = True
        stream.feed(data)
    return True, closed


class _Connection:
    """One TCP (or TLS) connection and the server stream currently being read on it."""

    def __init__(self, endpoint: Endpoint, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.timeout_s = timeout_s
        self.stream = ServerStream()
        self.closed = False
        self.after_proceed = b""  # plaintext the server sent after <proceed/> (injection)

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout_s: float) -> _Connection:
        tls = _probe_tls_context() if endpoint.service.direct_tls else None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=tls,
            server_hostname=endpoint.domain if tls else None), timeout_s)
        return cls(endpoint, reader, writer, timeout_s)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.timeout_s)

    async def wait_for(self, condition: Callable[[ServerStream], bool],
                       seconds: float | None = None) -> bool:
        """Read until ``condition`` holds (True), or the stream ends, breaks or goes quiet
        for ``seconds`` (default: the probe timeout) (False)."""
        met, closed = await read_until(self.reader, self.stream, condition,
                                       self.timeout_s if seconds is None else seconds,
                                       closed=self.closed)
        self.closed = closed
        return met

    async def open_stream(self) -> Features:
        """Send a stream header and read the server's header and features.

        Raises:
            NoStreamError: the server answered with no features (silence, an error, garbage).
        """
        self.stream = ServerStream()
        await self.send(rules.stream_header(self.endpoint.domain,
                                            self.endpoint.service.stream_namespace))
        await self.wait_for(_features_or_error)
        if self.stream.features is None:
            raise NoStreamError(self.stream, self.timeout_s)
        return rules.parse_features(self.stream.features)

    async def starttls(self, pipelined: bytes = b"") -> bool:
        """Ask for TLS (``pipelined`` goes in the same write) and do the handshake."""
        await self.send(rules.STARTTLS + pipelined)
        if not await self.wait_for(lambda s: s.find(NS_TLS, "proceed") is not None
                                   or s.find(NS_TLS, "failure") is not None
                                   or s.error is not None):
            return False
        if self.stream.find(NS_TLS, "proceed") is None:
            return False
        raw = self.stream.raw
        end = raw.find(b">", raw.find(b"proceed")) + 1
        # Anything after <proceed/> before the handshake is plaintext the server should
        # never send: typically its answer to what we pipelined (STARTTLS injection).
        self.after_proceed = raw[end:].strip()
        if self.after_proceed:
            return False
        await self.writer.start_tls(_probe_tls_context(), server_hostname=self.endpoint.domain,
                                    ssl_handshake_timeout=self.timeout_s)
        self.stream = ServerStream()
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class NoStreamError(Exception):
    """The server did not open a stream with features; the checks that needed one cannot
    be made (the reason is in the NOT_TESTED findings)."""

    def __init__(self, stream: ServerStream, timeout_s: float,
                 what: str = "the server opened no stream with features") -> None:
        condition = rules.stream_error_condition(stream.error)
        if condition is not None:
            reason = f"stream error <{condition}/>"
        elif stream.malformed:
            reason = f"unparsable answer ({stream.malformed})"
        else:
            reason = f"nothing within {timeout_s:g} s" if not stream.raw else "no features"
        received = f"; received: {rules.evidence(stream.raw)}" if stream.raw else ""
        super().__init__(f"{what}: {reason}{received}")


def _features_or_error(stream: ServerStream) -> bool:
    return stream.features is not None or stream.error is not None


def _answered_or_refused(stanza_id: str) -> Callable[[ServerStream], bool]:
    return lambda s: s.reply_to(stanza_id) is not None or s.error is not None


@dataclass
class _Results:
    """Findings of one connection's checks; ``expected`` lists the checks it should make,
    so a broken connection turns the missing ones into NOT_TESTED findings."""

    expected: list[tuple[str, str]]
    findings: list[Finding] = field(default_factory=list)

    def add(self, *found: Finding) -> None:
        self.findings.extend(found)

    def finish(self, failure: str | None) -> list[Finding]:
        if failure is None:
            return self.findings
        done = {f.check for f in self.findings}
        return self.findings + rules.not_tested(
            [(c, t) for c, t in self.expected if c not in done], failure)


async def _run(endpoint: Endpoint, timeout_s: float, expected: list[tuple[str, str]],
               body: Callable[[_Connection, _Results], Awaitable[None]]) -> list[Finding]:
    """Open a connection, run ``body`` on it, and turn any network failure into findings."""
    results = _Results(expected)
    failure: str | None = None
    conn: _Connection | None = None
    try:
        conn = await _Connection.open(endpoint, timeout_s)
        await body(conn, results)
    except NoStreamError as exc:
        failure = str(exc)
    except TimeoutError:
        failure = f"timed out after {timeout_s:g} s"
    except (OSError, EOFError, ValueError) as exc:
        failure = f"connection failed: {type(exc).__name__}: {exc}"
    finally:
        if conn is not None:
            await conn.close()
    return results.finish(failure)


# --- the checks ------------------------------------------------------------------------------

_MAIN_CHECKS = [
    ("sasl.mechanisms", "SASL mechanisms after TLS"),
    ("sasl.sasl2", "SASL2 (XEP-0388)"),
    ("stream.compression", "Stream compression (XEP-0138)"),
    ("stream.header_disclosure", "Software named in stream header or features"),
    ("stream.stanza_before_auth", "Stanza before authentication"),
    ("stream.version_disclosure", "Software version before authentication"),
]
_PRE_TLS_CHECKS = [
    ("stream.starttls.offered", "STARTTLS offered"),
    ("stream.starttls.required", "STARTTLS required"),
    ("sasl.before_tls", "SASL before TLS"),
    ("sasl.plain_before_tls", "PLAIN before TLS"),
]


async def _main(conn: _Connection, results: _Results) -> None:
    """Features before and after TLS, then a version query before authentication."""
    seen: list[Features] = []
    header: StreamHeader | None = None
    try:
        encrypted = conn.endpoint.service.direct_tls
        features = await conn.open_stream()
        header = conn.stream.header
        seen.append(features)
        if not encrypted:
            results.add(rules.rule_starttls_offered(features, conn.stream.raw),
                        rules.rule_starttls_required(features),
                        *rules.rule_sasl_before_tls(features))
            if features.starttls:
                if not await conn.starttls():
                    raise NoStreamError(conn.stream, conn.timeout_s, "STARTTLS did not proceed")
                features = await conn.open_stream()
                header = conn.stream.header or header
                seen.append(features)
                encrypted = True
        if encrypted:
            results.add(*rules.rule_mechanisms_after_tls(features), *rules.rule_sasl2(features))
        else:
            results.add(*rules.not_tested(_MAIN_CHECKS[:2], "STARTTLS is not offered"))
        await conn.send(rules.version_iq(conn.endpoint.domain, rules.PREAUTH_ID))
        await conn.wait_for(_answered_or_refused(rules.PREAUTH_ID))
        reaction = rules.stanza_reaction(conn.stream, rules.PREAUTH_ID, closed=conn.closed)
        results.add(rules.rule_stanza_before_auth(reaction), rules.rule_version_query(reaction))
    finally:
        if seen:
            results.add(rules.rule_compression(seen), rules.rule_header_disclosure(header, seen))


async def _auth_before_tls(conn: _Connection, results: _Results) -> None:
    """Send PLAIN (with made-up credentials) before TLS: the server must refuse to run it."""
    await conn.open_stream()
    await conn.send(rules.PLAIN_PROBE)
    await conn.wait_for(lambda s: any(s.find(NS_SASL, n) is not None
                                      for n in ("success", "challenge", "failure"))
                        or s.error is not None)
    results.add(rules.rule_auth_before_tls(rules.sasl_reaction(conn.stream, closed=conn.closed)))


async def _stanza_before_tls(conn: _Connection, results: _Results) -> None:
    await conn.open_stream()
    await conn.send(rules.ping_iq(conn.endpoint.domain, rules.PRETLS_ID))
    await conn.wait_for(_answered_or_refused(rules.PRETLS_ID))
    results.add(rules.rule_stanza_before_tls(
        rules.stanza_reaction(conn.stream, rules.PRETLS_ID, closed=conn.closed)))


async def _injection(conn: _Connection, results: _Results) -> None:
    """CVE-2011-0411: a stream header and a ping pipelined behind <starttls/> in one write."""
    features = await conn.open_stream()
    if not features.starttls:
        results.add(*rules.not_tested([("stream.starttls.injection", "STARTTLS injection")],
                                      "STARTTLS is not offered"))
        return
    domain, ns = conn.endpoint.domain, conn.endpoint.service.stream_namespace
    injected = (rules.stream_header(domain, ns).removeprefix(b"<?xml version='1.0'?>")
                + rules.ping_iq(domain, rules.INJECTED_ID))
    if not await conn.starttls(pipelined=injected):
        if conn.after_proceed:
            # It answered the injected plaintext right after <proceed/>, before any TLS.
            results.add(rules.rule_injection(Reaction(Outcome.ANSWERED, None,
                                                      conn.stream.raw)))
            return
        results.add(*rules.not_tested([("stream.starttls.injection", "STARTTLS injection")],
                                      "the server did not proceed with STARTTLS: "
                                      + rules.evidence(conn.stream.raw)))
        return
    # A server that parsed the injected header speaks first on the new stream.
    quiet = min(QUIET_S, conn.timeout_s)
    spoke_first = await conn.wait_for(lambda s: s.header is not None or bool(s.elements), quiet)
    if not spoke_first:
        await conn.open_stream()
        await conn.wait_for(lambda s: s.reply_to(rules.INJECTED_ID) is not None, quiet)
    processed = spoke_first or conn.stream.reply_to(rules.INJECTED_ID) is not None
    reaction = Reaction(Outcome.ANSWERED if processed else Outcome.SILENT, None,
                        conn.stream.raw)
    results.add(rules.rule_injection(reaction))


async def _doctype(conn: _Connection, results: _Results) -> None:
    """A stream header with an internal DTD, on the encrypted stream."""
    if not conn.endpoint.service.direct_tls:
        features = await conn.open_stream()
        if not (features.starttls and await conn.starttls()):
            results.add(*rules.not_tested([("stream.doctype", "DOCTYPE refused")],
                                          "no TLS stream could be started"))
            return
    await conn.send(rules.doctype_header(conn.endpoint.domain,
                                         conn.endpoint.service.stream_namespace))
    await conn.wait_for(_features_or_error)
    stream = conn.stream
    condition = rules.stream_error_condition(stream.error)
    if condition is not None:
        outcome = Outcome.STREAM_ERROR
    elif stream.header is not None or stream.malformed:
        outcome = Outcome.ANSWERED  # it opened a stream for us: the DTD was accepted
    else:
        outcome = Outcome.CLOSED if conn.closed else Outcome.SILENT
    results.add(rules.rule_doctype(Reaction(outcome, condition, stream.raw)))


async def probe(endpoint: Endpoint, *, timeout_s: float = 5.0) -> list[Finding]:
    """Run every stream and SASL check against ``endpoint``."""
    jobs = [_run(endpoint, timeout_s, _MAIN_CHECKS + ([] if endpoint.service.direct_tls
                                                      else _PRE_TLS_CHECKS), _main),
            _run(endpoint, timeout_s, [("stream.doctype", "DOCTYPE refused")], _doctype)]
    if not endpoint.service.direct_tls:
        jobs += [
            _run(endpoint, timeout_s, [("sasl.enforced_before_tls", "SASL attempt before TLS")],
                 _auth_before_tls),
            _run(endpoint, timeout_s, [("stream.enforced_before_tls", "Stanza before TLS")],
                 _stanza_before_tls),
            _run(endpoint, timeout_s, [("stream.starttls.injection", "STARTTLS injection")],
                 _injection),
        ]
    found = [f for batch in await asyncio.gather(*jobs) for f in batch]
    if endpoint.service.direct_tls:
        found.insert(0, Finding("stream.direct_tls", "Direct TLS (XEP-0368)", Severity.INFO,
                                "TLS from the first byte: STARTTLS checks do not apply"))
    return found
