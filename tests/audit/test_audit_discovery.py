"""From TARGET to endpoints (stockade.audit.discovery), with a fake DNS resolver."""

from __future__ import annotations

import pytest

from stockade.audit.discovery import (
    DiscoveryError,
    DNSResolver,
    SRVRecord,
    Target,
    discover,
    parse_target,
)
from stockade.core.audit.model import Endpoint, Service


class FakeResolver:
    def __init__(self, srv: dict[str, list[SRVRecord]] | None = None,
                 addresses: set[str] | None = None, failing: set[str] | None = None) -> None:
        self.records = srv or {}
        self.addresses = addresses or set()
        self.failing = failing or set()
        self.asked: list[str] = []

    async def srv(self, name: str) -> list[SRVRecord]:
        self.asked.append(name)
        if name in self.failing:
            raise DiscoveryError(f"DNS lookup of {name} failed: timeout")
        return self.records.get(name, [])

    async def has_address(self, host: str) -> bool:
        return host in self.addresses


@pytest.mark.parametrize(("text", "port", "expected"), [
    ("example.org", None, Target("example.org", None)),
    ("Example.ORG.", None, Target("example.org", None)),
    ("example.org:5223", None, Target("example.org", 5223)),
    ("example.org", 5280, Target("example.org", 5280)),
    ("127.0.0.1:5222", None, Target("127.0.0.1", 5222)),
    ("[::1]:5222", None, Target("::1", 5222)),
    ("[2001:db8::1]", None, Target("2001:db8::1", None)),
    ("::1", None, Target("::1", None)),
    ("bücher.example", None, Target("bücher.example", None)),
])
def test_parse_target(text: str, port: int | None, expected: Target) -> None:
    assert parse_target(text, port) == expected


@pytest.mark.parametrize(("text", "port", "message"), [
    ("example.org:x", None, "not a port number"),
    ("example.org:0", None, "not a port number"),
    ("example.org:65536", None, "not a port number"),
    ("example.org:5222", 5223, "--port says 5223"),
    ("[::1", None, "missing ']'"),
    ("[::1]5222", None, "expected ':PORT'"),
    ("", None, "no host name"),
    (":5222", None, "no host name"),
    ("exa mple.org", None, "not a valid domain name"),
    ("-bad.example", None, "not a valid domain name"),
    ("a..b", None, "not a valid domain name"),
    ("x" * 64 + ".org", None, "not a valid domain name"),
])
def test_parse_target_refuses(text: str, port: int | None, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message.replace("[", r"\[")):
        parse_target(text, port)


async def test_host_port_is_one_endpoint_starttls_unless_direct_tls() -> None:
    resolver = FakeResolver()
    target = Target("xmpp.example.org", 5222)
    assert await discover(target, resolver) == [
        Endpoint("xmpp.example.org", "xmpp.example.org", 5222, Service.C2S_STARTTLS, "given")]
    assert (await discover(target, resolver, direct_tls=True))[0].service \
        is Service.C2S_DIRECT_TLS
    assert (await discover(target, resolver, s2s=True))[0].service is Service.S2S_STARTTLS
    assert (await discover(target, resolver, s2s=True, direct_tls=True))[0].service \
        is Service.S2S_DIRECT_TLS
    assert resolver.asked == []  # a port given: no DNS


async def test_srv_records_of_both_kinds_in_priority_then_weight_order() -> None:
    resolver = FakeResolver({
        "_xmpp-client._tcp.example.org": [SRVRecord(20, 0, 5222, "backup.example.org"),
                                          SRVRecord(10, 10, 5222, "light.example.org"),
                                          SRVRecord(10, 60, 5222, "Heavy.example.org.")],
        "_xmpps-client._tcp.example.org": [SRVRecord(5, 0, 443, "tls.example.org")],
    })
    endpoints = await discover(Target("example.org", None), resolver)
    assert [(e.host, e.port, e.service) for e in endpoints] == [
        ("heavy.example.org", 5222, Service.C2S_STARTTLS),
        ("light.example.org", 5222, Service.C2S_STARTTLS),
        ("backup.example.org", 5222, Service.C2S_STARTTLS),
        ("tls.example.org", 443, Service.C2S_DIRECT_TLS),
    ]
    assert all(e.domain == "example.org" and e.source == "srv" for e in endpoints)
    assert resolver.asked == ["_xmpp-client._tcp.example.org", "_xmpps-client._tcp.example.org"]


async def test_s2s_asks_the_server_records() -> None:
    resolver = FakeResolver({"_xmpps-server._tcp.example.org": [
        SRVRecord(0, 0, 5270, "s2s.example.org")]})
    endpoints = await discover(Target("example.org", None), resolver, s2s=True)
    assert [(e.host, e.port, e.service) for e in endpoints] == [
        ("s2s.example.org", 5270, Service.S2S_DIRECT_TLS)]
    assert resolver.asked == ["_xmpp-server._tcp.example.org", "_xmpps-server._tcp.example.org"]


async def test_duplicate_records_give_one_endpoint() -> None:
    record = SRVRecord(0, 0, 5222, "xmpp.example.org")
    resolver = FakeResolver({"_xmpp-client._tcp.example.org": [record, record]})
    assert len(await discover(Target("example.org", None), resolver)) == 1


@pytest.mark.parametrize(("s2s", "port", "service"), [
    (False, 5222, Service.C2S_STARTTLS), (True, 5269, Service.S2S_STARTTLS)])
async def test_without_srv_falls_back_to_the_address_on_the_default_port(
        s2s: bool, port: int, service: Service) -> None:
    resolver = FakeResolver(addresses={"example.org"})
    assert await discover(Target("example.org", None), resolver, s2s=s2s) == [
        Endpoint("example.org", "example.org", port, service, "a/aaaa fallback")]


async def test_a_failed_srv_lookup_falls_back_and_says_so() -> None:
    resolver = FakeResolver(addresses={"example.org"},
                            failing={"_xmpp-client._tcp.example.org"})
    (endpoint,) = await discover(Target("example.org", None), resolver)
    assert endpoint.port == 5222
    assert "failed: timeout" in endpoint.source


async def test_no_srv_and_no_address_is_an_error() -> None:
    with pytest.raises(DiscoveryError, match="no SRV records and no A/AAAA record"):
        await discover(Target("nowhere.example", None), FakeResolver())


async def test_a_dot_target_means_no_service_and_no_fallback() -> None:
    resolver = FakeResolver({"_xmpp-client._tcp.example.org": [SRVRecord(0, 0, 0, ".")]},
                            addresses={"example.org"})
    with pytest.raises(DiscoveryError, match="offers no XMPP client service"):
        await discover(Target("example.org", None), resolver)


async def test_the_real_resolver_finds_the_address_of_localhost() -> None:
    # getaddrinfo: /etc/hosts counts, no network needed.
    assert await DNSResolver(timeout_s=2).has_address("localhost")


async def test_domain_names_the_xmpp_domain_of_an_address() -> None:
    endpoints = await discover(Target("192.0.2.7", 5222), FakeResolver(), domain="example.org")
    assert endpoints == [Endpoint("example.org", "192.0.2.7", 5222, Service.C2S_STARTTLS,
                                  "given")]
    with pytest.raises(DiscoveryError, match="--domain only with host:port"):
        await discover(Target("example.org", None), FakeResolver(), domain="other.example")
