"""Certificate probe: two real handshakes with the stdlib ``ssl`` module.

The first, with verification off, fetches the certificate whatever it is; the second
verifies the chain against the system trust store (or the CA file the runner passes) with
hostname checking off, because identity is judged by ``core.crypto.certaudit`` under the
XMPP rules of RFC 6125 / RFC 7590, which OpenSSL's check does not know (SRV-ID, XmppAddr).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import warnings
from typing import Final

from stockade.audit.tls import TransportError, negotiate_starttls
from stockade.core.audit.model import Endpoint, Finding, Severity
from stockade.core.crypto.certaudit import ChainVerdict, analyze

__all__ = ["probe"]

_SYSTEM_TRUST: Final = "the system trust store"


async def probe(endpoint: Endpoint, *, timeout_s: float = 5.0,
                ca_file: str | None = None) -> list[Finding]:
    """Fetch and judge ``endpoint``'s certificate; never raises for a misbehaving server."""
    sni = _server_name(endpoint.domain)
    try:
        der = await asyncio.wait_for(_fetch(endpoint, _unverified_context(), sni), timeout_s)
    except (TimeoutError, TransportError, OSError, ssl.SSLError) as error:
        return [Finding("cert.probe", "Certificate not tested", Severity.NOT_TESTED,
                        f"no TLS handshake completed: {_reason(error)}")]
    if der is None:
        return [Finding("cert.probe", "Certificate not tested", Severity.NOT_TESTED,
                        "the server sent no certificate")]
    verdict = await _verify(endpoint, sni, ca_file, timeout_s)
    service = "xmpp-client" if endpoint.service.stream_namespace == "jabber:client" \
        else "xmpp-server"
    findings = analyze(der, domain=endpoint.domain, srv_service=service,
                       now=datetime.datetime.now(datetime.UTC), chain=verdict)
    findings.append(Finding(
        "cert.ocsp_stapling", "OCSP staple not read", Severity.NOT_TESTED,
        "the stdlib ssl module can neither request nor show a stapled OCSP response; "
        "tls.ocsp_stapling reads the TLS 1.2 ServerHello instead"))
    return findings


async def _verify(endpoint: Endpoint, sni: str | None, ca_file: str | None,
                  timeout_s: float) -> ChainVerdict:
    trust = ca_file or _SYSTEM_TRUST
    try:
        await asyncio.wait_for(_fetch(endpoint, _verifying_context(ca_file), sni), timeout_s)
    except ssl.SSLCertVerificationError as error:
        return ChainVerdict(error=error.verify_message or str(error), trust=trust)
    except (TimeoutError, TransportError, OSError, ssl.SSLError) as error:
        return ChainVerdict(error=f"verifying handshake failed: {_reason(error)}", trust=trust)
    return ChainVerdict(error=None, trust=trust)


async def _fetch(endpoint: Endpoint, ctx: ssl.SSLContext, sni: str | None) -> bytes | None:
    """One full handshake (after STARTTLS where needed); the peer's leaf certificate."""
    direct = endpoint.service.direct_tls
    reader, writer = await asyncio.open_connection(
        endpoint.host, endpoint.port, ssl=ctx if direct else None,
        server_hostname=sni if direct else None)
    try:
        if not direct:
            await negotiate_starttls(reader, writer, endpoint)
            await writer.start_tls(ctx, server_hostname=sni)
        tls = writer.get_extra_info("ssl_object")
        return tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _unverified_context() -> ssl.SSLContext:
    """Accept any certificate and any version OpenSSL still has: we only want the bytes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 is deprecated, on purpose
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    ctx = _unverified_context()
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return ctx


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    return f"{type(error).__name__}: {error}"


def _server_name(domain: str) -> str | None:
    name = domain.rstrip(".")
    if not name or name.replace(".", "").isdigit() or ":" in name:
        return None
    return name
