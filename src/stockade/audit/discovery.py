"""From a TARGET to the endpoints to test: ``host:port`` as given, or a domain's DNS SRV
records (RFC 6120 §3.2, XEP-0368), falling back to the domain itself on the default port."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol

from stockade.core.audit.model import Endpoint, Service

DEFAULT_PORTS = {Service.C2S_STARTTLS: 5222, Service.S2S_STARTTLS: 5269}
SRV_NAMES = {
    Service.C2S_STARTTLS: "_xmpp-client._tcp",
    Service.C2S_DIRECT_TLS: "_xmpps-client._tcp",
    Service.S2S_STARTTLS: "_xmpp-server._tcp",
    Service.S2S_DIRECT_TLS: "_xmpps-server._tcp",
}


class DiscoveryError(ValueError):
    """The target names nothing that can be tested (the message says why, in one line)."""


@dataclass(frozen=True, slots=True)
class SRVRecord:
    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "." means "no service here" (RFC 2782)


class Resolver(Protocol):
    """The DNS lookups discovery needs (a fake in tests, dnspython in use)."""

    async def srv(self, name: str) -> list[SRVRecord]:
        """The SRV records of ``name`` (empty: none or no such name)."""
        ...

    async def has_address(self, host: str) -> bool:
        """Whether ``host`` has an A or AAAA record."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed TARGET: a domain (``port`` None: use DNS) or a host and port."""

    host: str
    port: int | None


def parse_target(text: str, port: int | None = None) -> Target:
    """``example.org``, ``example.org:5222``, ``192.0.2.1:5222`` or ``[2001:db8::1]:5222``."""
    text = text.strip()
    host, given = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise DiscoveryError(f"{text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise DiscoveryError(f"{text!r}: expected ':PORT' after ']'")
            given = parse_port(rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        given = parse_port(port_text)
    if given is not None and port is not None and given != port:
        raise DiscoveryError(f"{text!r} names port {given} but --port says {port}")
    check_host(host)
    return Target(host.lower().rstrip("."), given if given is not None else port)


def parse_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DiscoveryError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def check_host(host: str) -> None:
    """A DNS name or an IP address; anything else is refused before any lookup."""
    if not host:
        raise DiscoveryError("the target has no host name")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    name = host.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise DiscoveryError(f"{host!r} is not a valid domain name") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_valid_label(label) for label in labels):
        raise DiscoveryError(f"{host!r} is not a valid domain name")


def _valid_label(label: str) -> bool:
    return (0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
            and all(c.isalnum() or c in "-_" for c in label))


def service_for(*, s2s: bool, direct_tls: bool) -> Service:
    if s2s:
        return Service.S2S_DIRECT_TLS if direct_tls else Service.S2S_STARTTLS
    return Service.C2S_DIRECT_TLS if direct_tls else Service.C2S_STARTTLS


def srv_order(records: list[SRVRecord]) -> list[SRVRecord]:
    """Priority ascending, then the heavier first: RFC 2782's order without its randomness
    (an audit tests every record, so only a reproducible order matters)."""
    return sorted(records, key=lambda r: (r.priority, -r.weight, r.target, r.port))


async def discover(target: Target, resolver: Resolver, *, s2s: bool = False,
                   direct_tls: bool = False, domain: str | None = None) -> list[Endpoint]:
    """Every endpoint of ``target``, in the order a client would try them.

    A target with a port is one endpoint (STARTTLS unless ``direct_tls``). A domain gets
    its SRV records for both STARTTLS and direct TLS; without any, the domain itself on
    5222 (5269 with ``s2s``) if it has an address. ``domain`` is the XMPP domain when it is
    not the host (e.g. the host is an IP address); only with a port.
    """
    if target.port is not None:
        service = service_for(s2s=s2s, direct_tls=direct_tls)
        return [Endpoint(domain or target.host, target.host, target.port, service, "given")]
    if domain is not None and domain != target.host:
        raise DiscoveryError("a domain TARGET is the XMPP domain; give --domain only with "
                             "host:port or --port")
    services = ([Service.S2S_STARTTLS, Service.S2S_DIRECT_TLS] if s2s
                else [Service.C2S_STARTTLS, Service.C2S_DIRECT_TLS])
    endpoints: list[Endpoint] = []
    declined = False  # a "." record: the domain says it offers no such service
    failures: list[str] = []
    for service in services:
        try:
            records = srv_order(await resolver.srv(f"{SRV_NAMES[service]}.{target.host}"))
        except DiscoveryError as exc:
            failures.append(str(exc))
            continue
        for record in records:
            if record.target in ("", "."):
                declined = True
                continue
            endpoint = Endpoint(target.host, record.target.lower().rstrip("."), record.port,
                                service, "srv")
            if endpoint not in endpoints:
                endpoints.append(endpoint)
    if endpoints:
        return endpoints
    if declined:
        raise DiscoveryError(f"{target.host}: its SRV records say it offers no XMPP "
                             f"{'server-to-server' if s2s else 'client'} service")
    if not await resolver.has_address(target.host):
        if failures:
            raise DiscoveryError(f"{target.host}: {failures[0]}; and no A/AAAA record")
        raise DiscoveryError(f"{target.host}: no SRV records and no A/AAAA record")
    fallback = Service.S2S_STARTTLS if s2s else Service.C2S_STARTTLS
    # A failed SRV lookup is said in the source, so the report shows what was guessed.
    source = "a/aaaa fallback" + (f" ({failures[0]})" if failures else "")
    return [Endpoint(target.host, target.host, DEFAULT_PORTS[fallback], fallback, source)]


class DNSResolver:
    """The :class:`Resolver`: SRV with dnspython's asyncio resolver, addresses with the
    system's resolver (so /etc/hosts counts, as it does for the client being audited)."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s

    async def srv(self, name: str) -> list[SRVRecord]:
        import dns.asyncresolver
        import dns.exception
        import dns.resolver

        try:
            resolver = dns.asyncresolver.Resolver()
            resolver.lifetime = self.timeout_s
            answer = await resolver.resolve(name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"DNS lookup of {name} failed: {exc}") from None
        return [SRVRecord(r.priority, r.weight, r.port, r.target.to_text().rstrip(".") or ".")
                for r in answer]

    async def has_address(self, host: str) -> bool:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM))
        except (OSError, TimeoutError):
            return False
