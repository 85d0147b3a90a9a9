"""The TLS and certificate probes of `stockade audit` over loopback: against Stockade's own
server (it must come out clean) and against deliberately weak servers (every weakness found,
with the severity the rules give it)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trustme
from rawxmpp import DOMAIN, HOST, running_server
from weaktls import (
    TLS1_0,
    TLS1_2,
    WeakPolicy,
    certificate_server,
    silent_server,
    weak_hello_server,
)

from stockade.audit import certificate, tls
from stockade.core.audit.model import Endpoint, Finding, Service, Severity
from stockade.core.audit.tls import MAX_CONNECTIONS
from stockade.core.crypto.certs import self_signed
from stockade.core.tls.suites import SUITES, TLSVersion

PORTS = {"starttls": Service.C2S_STARTTLS, "direct_tls": Service.C2S_DIRECT_TLS}


def severities(findings: list[Finding]) -> dict[str, Severity]:
    return {f.check: f.severity for f in findings}


def finding(findings: list[Finding], check: str) -> Finding:
    (found,) = [f for f in findings if f.check == check]
    return found


@pytest.mark.timeout(30)
@pytest.mark.parametrize("port_kind", list(PORTS))
async def test_stockade_itself_has_no_serious_tls_finding(tmp_path: Path, ca: trustme.CA,
                                                          port_kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        endpoint = Endpoint(DOMAIN, HOST, h.server.ports[port_kind][0], PORTS[port_kind])
        findings = await tls.probe(endpoint)
        got = severities(findings)
        assert not [f for f in findings if f.severity >= Severity.MEDIUM], findings
        assert got["tls.version.tls1_3"] is Severity.PASS
        assert got["tls.version.tls1_0"] is Severity.PASS  # PASS = refused
        assert got["tls.version.tls1_1"] is Severity.PASS
        assert "protocol_version" in finding(findings, "tls.version.tls1_1").observed
        assert got["tls.cipher.3des"] is Severity.PASS
        assert got["tls.compression"] is Severity.PASS
        assert got["tls.renegotiation"] is Severity.PASS
        listing = finding(findings, "tls.cipher.list").observed
        assert "TLS_AES_128_GCM_SHA256" in listing
        assert "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" in listing
        assert "x25519" in finding(findings, "tls.groups.tls1_3").observed
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("port_kind", list(PORTS))
async def test_stockade_certificate_passes_with_its_ca(tmp_path: Path, ca: trustme.CA,
                                                       port_kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        endpoint = Endpoint(DOMAIN, HOST, h.server.ports[port_kind][0], PORTS[port_kind])
        findings = await certificate.probe(endpoint, ca_file=str(h.deployment.ca_file))
        assert severities(findings) == {
            "cert.chain": Severity.PASS, "cert.identity": Severity.PASS,
            "cert.expiry": Severity.PASS, "cert.key": Severity.PASS,
            "cert.signature": Severity.PASS, "cert.ocsp_stapling": Severity.NOT_TESTED}
        # Without the test CA the same chain has an unknown issuer.
        untrusted = finding(await certificate.probe(endpoint), "cert.chain")
        assert untrusted.severity is Severity.HIGH
        assert "local issuer" in untrusted.observed


@pytest.mark.timeout(30)
async def test_tls10_and_3des_are_found_behind_starttls() -> None:
    async with weak_hello_server() as server:
        findings = await tls.probe(Endpoint(DOMAIN, HOST, server.port, Service.C2S_STARTTLS))
        got = severities(findings)
        assert got["tls.version.tls1_0"] is Severity.HIGH
        assert got["tls.cipher.3des"] is Severity.CRITICAL
        assert "TLS 1.0 TLS_RSA_WITH_3DES_EDE_CBC_SHA" in finding(
            findings, "tls.cipher.3des").observed
        assert got["tls.cipher.rc4"] is Severity.CRITICAL
        assert got["tls.cipher.no_forward_secrecy"] is Severity.MEDIUM
        assert got["tls.cipher.aead"] is Severity.MEDIUM
        assert got["tls.version.tls1_1"] is Severity.PASS  # it answered with TLS 1.0 instead
        assert got["tls.version.tls1_3"] is Severity.MEDIUM
        assert got["tls.compression"] is Severity.HIGH
        assert got["tls.renegotiation"] is Severity.MEDIUM
        assert got["tls.ocsp_stapling"] is Severity.LOW
        assert finding(findings, "tls.cipher.list").observed.startswith(
            "TLS 1.0: TLS_RSA_WITH_3DES_EDE_CBC_SHA, TLS_RSA_WITH_RC4_128_SHA, "
            "TLS_RSA_WITH_AES_128_CBC_SHA;")
        assert all(f.why and f.fix for f in findings if f.severity > Severity.INFO)


@pytest.mark.timeout(30)
async def test_direct_tls_server_with_secure_renegotiation() -> None:
    policy = WeakPolicy(versions=(TLS1_2,), preference=(0xC02F, 0x000A), compress=False,
                        renegotiation_info=True, starttls=False)
    async with weak_hello_server(policy) as server:
        got = severities(await tls.probe(
            Endpoint(DOMAIN, HOST, server.port, Service.C2S_DIRECT_TLS)))
        assert got["tls.version.tls1_0"] is Severity.PASS
        assert got["tls.cipher.3des"] is Severity.CRITICAL  # found though listed second
        assert got["tls.cipher.aead"] is Severity.PASS
        assert got["tls.compression"] is Severity.PASS
        assert got["tls.renegotiation"] is Severity.PASS


@pytest.mark.timeout(30)
async def test_connections_stay_bounded_against_a_server_accepting_everything() -> None:
    everything = tuple(c for c, s in SUITES.items() if s.allows(TLSVersion.TLS1_2) and c)
    policy = WeakPolicy(versions=(TLS1_0, TLS1_2), preference=everything, starttls=False)
    async with weak_hello_server(policy) as server:
        findings = await tls.probe(Endpoint(DOMAIN, HOST, server.port, Service.C2S_DIRECT_TLS))
        assert server.connections <= MAX_CONNECTIONS
        assert "connection limit" in finding(findings, "tls.cipher.list").observed
        assert severities(findings)["tls.cipher.null"] is Severity.CRITICAL


@pytest.mark.timeout(30)
async def test_unreachable_endpoint_is_not_tested() -> None:
    async with weak_hello_server() as server:
        port = server.port
    findings = await tls.probe(Endpoint(DOMAIN, HOST, port, Service.C2S_STARTTLS), timeout_s=2)
    assert [(f.check, f.severity) for f in findings] == [("tls.probe", Severity.NOT_TESTED)]
    assert "connection failed" in findings[0].observed
    cert_findings = await certificate.probe(Endpoint(DOMAIN, HOST, port,
                                                     Service.C2S_DIRECT_TLS), timeout_s=2)
    assert [(f.check, f.severity) for f in cert_findings] == [("cert.probe",
                                                               Severity.NOT_TESTED)]


@pytest.mark.timeout(30)
async def test_silent_servers_time_out_into_findings() -> None:
    async with silent_server() as port:
        before_tls = await tls.probe(Endpoint(DOMAIN, HOST, port, Service.C2S_STARTTLS),
                                     timeout_s=0.3)
        assert [(f.check, f.severity) for f in before_tls] == [("tls.probe",
                                                                Severity.NOT_TESTED)]
        assert "before TLS started" in before_tls[0].observed
        after_hello = await tls.probe(Endpoint(DOMAIN, HOST, port, Service.C2S_DIRECT_TLS),
                                      timeout_s=0.3)
        assert severities(after_hello)["tls.version.none"] is Severity.HIGH
        assert "to the ClientHello" in finding(after_hello, "tls.version.tls1_3").observed
        cert = await certificate.probe(Endpoint(DOMAIN, HOST, port, Service.C2S_DIRECT_TLS),
                                       timeout_s=0.3)
        assert [(f.check, f.severity) for f in cert] == [("cert.probe", Severity.NOT_TESTED)]
        assert "timeout" in cert[0].observed


@pytest.mark.timeout(30)
async def test_self_signed_certificate_with_wrong_name(tmp_path: Path) -> None:
    cert_pem, key_pem = self_signed("wrong.example", datetime.datetime.now(datetime.UTC))
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    async with certificate_server(tmp_path / "c.pem", tmp_path / "k.pem") as port:
        findings = await certificate.probe(Endpoint(DOMAIN, HOST, port,
                                                    Service.C2S_DIRECT_TLS))
    chain = finding(findings, "cert.chain")
    assert chain.severity is Severity.HIGH and chain.title == "Self-signed certificate"
    identity = finding(findings, "cert.identity")
    assert identity.severity is Severity.HIGH and "wrong.example" in identity.observed
    assert finding(findings, "cert.expiry").severity is Severity.PASS


@pytest.mark.timeout(30)
async def test_expired_certificate_from_a_trusted_ca(tmp_path: Path, ca: trustme.CA) -> None:
    leaf = ca.issue_cert(DOMAIN, not_before=datetime.datetime(2020, 1, 1),
                         not_after=datetime.datetime(2021, 1, 1))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    async with certificate_server(tmp_path / "c.pem", tmp_path / "k.pem") as port:
        findings = await certificate.probe(Endpoint(DOMAIN, HOST, port,
                                                    Service.C2S_DIRECT_TLS),
                                           ca_file=str(tmp_path / "ca.pem"))
    assert finding(findings, "cert.expiry").severity is Severity.CRITICAL
    chain = finding(findings, "cert.chain")
    assert chain.severity is Severity.HIGH and "expired" in chain.observed
    assert finding(findings, "cert.identity").severity is Severity.PASS
