"""``stockade audit --account`` against Stockade's own server on loopback: the probe logs in
(SCRAM-PLUS over TLS verified with the deployment CA) and finds every feature; a wrong
password, an unverifiable certificate and a server without the features each give a clear
finding, never a crash; and the real CLI reads the password from the file, never prints it."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, DOMAIN, HOST, running_server

from stockade.audit.account import probe
from stockade.core.audit.model import Endpoint, Finding, Service, Severity

S = Severity
ALL_CHECKS = {"account.login", "account.carbons", "account.mam", "account.pep",
              "account.pep.publish_options", "account.blocking", "account.sm",
              "account.sessions"}
ALICE = f"alice@{DOMAIN}"


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    checks = [f.check for f in findings]
    assert len(checks) == len(set(checks)), f"duplicate checks: {checks}"
    return {f.check: f for f in findings}


def summary(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity.name} {f.check}: {f.observed}" for f in findings)


@pytest.mark.timeout(30)
async def test_every_feature_is_found_on_both_ports(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        ca_file = str(h.deployment.ca_file)
        starttls, direct = await asyncio.gather(
            probe(Endpoint(DOMAIN, HOST, h.starttls_port, Service.C2S_STARTTLS),
                  jid=ALICE, password=ACCOUNTS["alice"], ca_file=ca_file),
            probe(Endpoint(DOMAIN, HOST, h.direct_tls_port, Service.C2S_DIRECT_TLS),
                  jid=ALICE, password=ACCOUNTS["alice"], ca_file=ca_file))
    for findings in (starttls, direct):
        found = by_check(findings)
        assert set(found) == ALL_CHECKS, summary(findings)
        assert {f.severity for f in findings} == {S.PASS}, summary(findings)
        assert "-PLUS bound to the TLS channel (tls-server-end-point)" in \
            found["account.login"].observed
        assert ACCOUNTS["alice"] not in summary(findings)
    found = by_check(starttls)
    assert "advertised by the account" in found["account.mam"].observed
    assert "server" in found["account.carbons"].observed


@pytest.mark.timeout(30)
async def test_wrong_password_is_a_clear_finding(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        findings = await probe(Endpoint(DOMAIN, HOST, h.starttls_port, Service.C2S_STARTTLS),
                               jid=ALICE, password="not-alices-password",
                               ca_file=str(h.deployment.ca_file))
        await h.assert_still_serving()
    found = by_check(findings)
    assert set(found) == ALL_CHECKS
    assert {f.severity for f in findings} == {S.NOT_TESTED}
    login = found["account.login"]
    assert "refused the login" in login.observed and "not-authorized" in login.observed
    assert "not-alices-password" not in summary(findings)


@pytest.mark.timeout(30)
async def test_no_password_over_an_unverified_certificate(tmp_path: Path,
                                                          ca: trustme.CA) -> None:
    # Without --ca-file the system store does not know the test CA: the password stays home.
    async with running_server(tmp_path, ca) as h:
        findings = await probe(Endpoint(DOMAIN, HOST, h.direct_tls_port,
                                        Service.C2S_DIRECT_TLS),
                               jid=ALICE, password=ACCOUNTS["alice"])
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        starttls = await probe(Endpoint(DOMAIN, HOST, h.starttls_port, Service.C2S_STARTTLS),
                               jid=ALICE, password=ACCOUNTS["alice"], ca_file=str(other_ca))
    for result in (findings, starttls):
        login = by_check(result)["account.login"]
        assert login.severity is S.NOT_TESTED
        assert "the password was not sent" in login.observed
        assert "certificate did not verify" in login.observed


@pytest.mark.timeout(30)
async def test_missing_features_are_graded(tmp_path: Path, ca: trustme.CA) -> None:
    overrides: dict[str, dict[str, object]] = {
        "pep": {"enabled": False}, "mam": {"enabled": False}}
    async with running_server(tmp_path, ca, overrides) as h:
        findings = await probe(Endpoint(DOMAIN, HOST, h.starttls_port, Service.C2S_STARTTLS),
                               jid=ALICE, password=ACCOUNTS["alice"],
                               ca_file=str(h.deployment.ca_file))
    found = by_check(findings)
    expected = {"account.pep": S.MEDIUM, "account.pep.publish_options": S.LOW,
                "account.blocking": S.PASS, "account.mam": S.INFO, "account.carbons": S.PASS,
                "account.login": S.PASS, "account.sm": S.PASS, "account.sessions": S.PASS}
    assert {c: f.severity for c, f in found.items()} == expected, summary(findings)
    assert found["account.pep"].fix is not None and found["account.pep"].why


@pytest.mark.timeout(40)
async def test_cli_logs_in_with_the_password_file(tmp_path: Path, ca: trustme.CA) -> None:
    password_file = tmp_path / "alice.password"
    password_file.write_text(ACCOUNTS["alice"] + "\n", encoding="utf-8")
    async with running_server(tmp_path, ca) as h:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stockade.cli.main", "audit", f"{HOST}:{h.starttls_port}",
            "--domain", DOMAIN, "--ca-file", str(h.deployment.ca_file), "--timeout", "3",
            "--json", "--account", ALICE, "--password-file", str(password_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "error"})
        out, err = await asyncio.wait_for(proc.communicate(), 35)
    assert proc.returncode == 0, err.decode()
    assert ACCOUNTS["alice"].encode() not in out + err
    findings = [f for f in json.loads(out)["findings"] if f["check"].startswith("account.")]
    assert {f["check"] for f in findings} == ALL_CHECKS
    assert {f["severity"] for f in findings} == {"PASS"}, findings


@pytest.mark.timeout(20)
async def test_plain_only_server_never_gets_the_password(ca: trustme.CA) -> None:
    # A direct-TLS server that offers only PLAIN and keeps everything it is sent.
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(4096))  # the stream header
        writer.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     b"xmlns:stream='http://etherx.jabber.org/streams' id='s' from='"
                     + DOMAIN.encode() + b"' version='1.0'><stream:features>"
                     b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                     b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
        await writer.drain()
        while data := await reader.read(4096):
            received.append(data)
        writer.close()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(DOMAIN).configure_cert(context)
    server = await asyncio.start_server(serve, HOST, 0, ssl=context)
    ca_file = ca.cert_pem.tempfile()
    try:
        port = server.sockets[0].getsockname()[1]
        with ca_file as path:
            findings = await probe(Endpoint(DOMAIN, HOST, port, Service.C2S_DIRECT_TLS),
                                   jid=ALICE, password="plain-secret-1", ca_file=path)
    finally:
        server.close()
        await server.wait_closed()
    login = by_check(findings)["account.login"]
    assert login.severity is S.NOT_TESTED
    assert "no SCRAM mechanism" in login.observed and "PLAIN" in login.observed
    assert received and received[0].startswith(b"<?xml")  # it did connect and talk
    everything = b"".join(received)
    assert b"<auth" not in everything and b"plain-secret-1" not in everything
