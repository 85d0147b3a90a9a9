"""TLS probe: protocol versions, cipher suites, groups, compression, renegotiation, stapling.

Every question is one fresh TCP connection carrying one hand-built ClientHello
(``stockade.core.tls.clienthello``, chosen by ``stockade.core.audit.tls``); on STARTTLS
endpoints the connection first runs just enough XMPP to get ``<proceed/>`` (RFC 6120
§5.4.2). Only the server's first answer is read, so weak suites this machine's OpenSSL can
no longer offer are still tested. At most ``MAX_CONNECTIONS`` connections per endpoint, a
few at a time, so an audit does not look like a flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from stockade.core.audit import tls as rules
from stockade.core.audit.model import Endpoint, Finding, Severity
from stockade.core.tls.clienthello import (
    ServerHello,
    TLSDecodeError,
    TLSVersion,
    parse_server_response,
)

__all__ = ["NS_TLS", "TransportError", "negotiate_starttls", "probe"]

NS_TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
CONCURRENCY: Final = 4
_MAX_XMPP_BYTES: Final = 64 * 1024
_FEATURES_END: Final = re.compile(rb"</stream:features>|<stream:features\s*/>")
_PROCEED: Final = re.compile(rb"<proceed\b[^>]*>")
_REFUSAL: Final = re.compile(rb"<failure\b|<stream:error\b|</stream:stream>")
_EXTRA_CONNECTIONS: Final = len(rules.PROBED_GROUPS) + 3  # compression, OCSP, small curves
_TLS13_SUITE_CONNECTIONS: Final = 6


class TransportError(Exception):
    """TLS could not be reached: connection refused, timeout, STARTTLS refused."""


def stream_header(endpoint: Endpoint) -> bytes:
    """RFC 6120 §4.7 initial stream header for the endpoint's service."""
    return (
        "<?xml version='1.0'?><stream:stream "
        f"xmlns='{endpoint.service.stream_namespace}' "
        "xmlns:stream='http://etherx.jabber.org/streams' "
        f"to='{endpoint.domain}' version='1.0'>"
    ).encode()


async def negotiate_starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             endpoint: Endpoint) -> bytes:
    """Run RFC 6120 §5.4.2 up to ``<proceed/>``; return bytes read past it.

    Raises:
        TransportError: STARTTLS not offered or refused, or the server closed.
    """
    writer.write(stream_header(endpoint))
    await writer.drain()
    features, buffer = await _read_until(reader, b"", _FEATURES_END)
    if b"<starttls" not in features:
        raise TransportError(f"STARTTLS not offered: {features[-300:]!r}")
    writer.write(f"<starttls xmlns='{NS_TLS}'/>".encode())
    await writer.drain()
    _, rest = await _read_until(reader, buffer, _PROCEED)
    return rest


async def _read_until(reader: asyncio.StreamReader, buffer: bytes,
                      marker: re.Pattern[bytes]) -> tuple[bytes, bytes]:
    while True:
        match = marker.search(buffer)
        if match is not None:
            return buffer[: match.end()], buffer[match.end():]
        if _REFUSAL.search(buffer):
            raise TransportError(f"server refused STARTTLS: {buffer[-300:]!r}")
        if len(buffer) > _MAX_XMPP_BYTES:
            raise TransportError("no STARTTLS answer within 64 KiB")
        chunk = await reader.read(4096)
        if not chunk:
            raise TransportError(f"server closed during XMPP negotiation: {buffer[-300:]!r}")
        buffer += chunk


@dataclass(slots=True)
class _Prober:
    """Sends one hello per connection, bounded in number and concurrency."""

    endpoint: Endpoint
    timeout_s: float
    limit: asyncio.Semaphore
    connections: int = 0

    async def ask(self, hello: bytes) -> rules.Answer:
        if self.connections >= rules.MAX_CONNECTIONS:
            return rules.NoAnswer("connection limit reached", reached_tls=False)
        self.connections += 1
        sent: list[bool] = []  # set once the hello is written: a later timeout is a refusal
        async with self.limit:
            try:
                return await asyncio.wait_for(self._exchange(hello, sent), self.timeout_s)
            except TimeoutError:
                where = "to the ClientHello" if sent else "before TLS started"
                return rules.NoAnswer(f"no answer {where} within {self.timeout_s:g} s",
                                      reached_tls=bool(sent))
            except TransportError as error:
                return rules.NoAnswer(str(error), reached_tls=False)
            except OSError as error:
                return rules.NoAnswer(f"connection failed: {error}", reached_tls=False)

    async def _exchange(self, hello: bytes, sent: list[bool]) -> rules.Answer:
        reader, writer = await asyncio.open_connection(self.endpoint.host, self.endpoint.port)
        try:
            buffer = b""
            if not self.endpoint.service.direct_tls:
                buffer = await negotiate_starttls(reader, writer, self.endpoint)
            sent.append(True)
            writer.write(hello)
            await writer.drain()
            return await _read_answer(reader, buffer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader, buffer: bytes) -> rules.Answer:
    """Read until the first flight parses (parse_server_response bounds what it keeps)."""
    while True:
        if buffer:
            try:
                answer = parse_server_response(buffer)
            except TLSDecodeError as error:
                return rules.NoAnswer(f"answer is not TLS: {error}")
            if answer is not None:
                return answer
        try:
            chunk = await reader.read(4096)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return rules.NoAnswer("connection closed without answering"
                                  if not buffer else "connection closed inside a record")
        buffer += chunk


async def probe(endpoint: Endpoint, *, timeout_s: float = 5.0) -> list[Finding]:
    """Run every TLS check against ``endpoint``; never raises for a misbehaving server."""
    prober = _Prober(endpoint, timeout_s, asyncio.Semaphore(CONCURRENCY))
    sni = _server_name(endpoint.domain)
    versions = dict(zip(rules.VERSIONS, await asyncio.gather(
        *(prober.ask(rules.version_hello(v, sni)) for v in rules.VERSIONS)), strict=True))
    if not any(not isinstance(a, rules.NoAnswer) or a.reached_tls for a in versions.values()):
        # Every connection failed the same way (they differ only in stream ids): show one.
        reason = rules.describe(versions[TLSVersion.TLS1_3])
        return [Finding("tls.probe", "TLS not tested", Severity.NOT_TESTED,
                        f"TLS could not be reached: {reason}")]
    accepted = [v for v, a in versions.items()
                if isinstance(a, ServerHello) and a.version == v]
    findings = rules.version_findings(versions)
    findings += await _after_versions(prober, sni, versions, accepted)
    return findings


async def _after_versions(prober: _Prober, sni: str | None,
                          versions: dict[TLSVersion, rules.Answer],
                          accepted: list[TLSVersion]) -> list[Finding]:
    legacy = [v for v in accepted if v < TLSVersion.TLS1_3]
    runs = _enumerations(sni, versions, accepted, legacy)
    tasks: list[Awaitable[list[Finding]]] = [_suites(prober, runs)]
    if TLSVersion.TLS1_3 in accepted:
        tasks.append(_groups(prober, sni))
    if legacy:
        tasks.append(_single(prober, rules.compression_hello(max(legacy), sni),
                             rules.compression_findings))
    if TLSVersion.TLS1_2 in accepted:
        tasks.append(_single(prober, rules.ocsp_hello(sni), rules.ocsp_findings))
        tasks.append(_single(prober, rules.small_curve_hello(sni), rules.small_curve_findings))
    else:
        tasks.append(_constant(rules.ocsp_findings(None)))
    best_legacy = versions[max(legacy)] if legacy else None
    results = await asyncio.gather(*tasks)
    findings = [f for result in results for f in result]
    hello = best_legacy if isinstance(best_legacy, ServerHello) else None
    findings += rules.renegotiation_findings(
        hello, tls13_accepted=TLSVersion.TLS1_3 in accepted)
    return findings


def _enumerations(sni: str | None, versions: dict[TLSVersion, rules.Answer],
                  accepted: list[TLSVersion],
                  legacy: list[TLSVersion]) -> list[rules.SuiteEnumeration]:
    """One enumeration per accepted version, seeded with the version probe's answer."""
    budget = rules.MAX_CONNECTIONS - len(rules.VERSIONS) - _EXTRA_CONNECTIONS
    runs = []
    if TLSVersion.TLS1_3 in accepted:
        budget -= _TLS13_SUITE_CONNECTIONS
        runs.append(rules.SuiteEnumeration(TLSVersion.TLS1_3, sni, _TLS13_SUITE_CONNECTIONS))
    for version in legacy:
        runs.append(rules.SuiteEnumeration(version, sni, max(1, budget // len(legacy))))
    for run in runs:
        run.record(versions[run.version])
    return runs


async def _suites(prober: _Prober, runs: list[rules.SuiteEnumeration]) -> list[Finding]:
    await asyncio.gather(*(_enumerate(prober, run) for run in runs))
    return rules.suite_findings(runs)


async def _enumerate(prober: _Prober, run: rules.SuiteEnumeration) -> None:
    while (hello := run.next_hello()) is not None:
        run.record(await prober.ask(hello))


async def _groups(prober: _Prober, sni: str | None) -> list[Finding]:
    answers = await asyncio.gather(*(prober.ask(rules.group_hello(g, sni))
                                     for g in rules.PROBED_GROUPS))
    return rules.group_findings(dict(zip(rules.PROBED_GROUPS, answers, strict=True)))


async def _single(prober: _Prober, hello: bytes,
                  judge: Callable[[rules.Answer], list[Finding]]) -> list[Finding]:
    return judge(await prober.ask(hello))


async def _constant(findings: list[Finding]) -> list[Finding]:
    return findings


def _server_name(domain: str) -> str | None:
    """SNI carries DNS names only (RFC 6066 §3): no IP literals, no final dot."""
    name = domain.rstrip(".")
    if not name or not name.isascii() or name.replace(".", "").isdigit() or ":" in name:
        return None
    return name
