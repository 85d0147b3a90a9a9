"""``stockade.audit.stream.probe`` over loopback: against Stockade itself (nothing above
INFO) and against the deliberately weak fixture (each weakness found, rightly graded)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import trustme
from rawxmpp import running_server
from weakxmpp import Weakness, weak_server

from stockade.audit.stream import probe
from stockade.core.audit.model import Endpoint, Finding, Service, Severity

S = Severity
# Every check a STARTTLS endpoint gets, and those only a direct TLS endpoint gets.
STARTTLS_CHECKS = {
    "stream.starttls.offered", "stream.starttls.required", "sasl.before_tls",
    "sasl.plain_before_tls", "sasl.enforced_before_tls", "stream.enforced_before_tls",
    "stream.starttls.injection", "sasl.mechanisms", "sasl.sasl2", "stream.compression",
    "stream.header_disclosure", "stream.stanza_before_auth", "stream.version_disclosure",
    "stream.doctype",
}
MUST_PASS = {"stream.starttls.offered", "stream.starttls.required", "sasl.before_tls",
             "sasl.plain_before_tls", "sasl.enforced_before_tls", "stream.enforced_before_tls",
             "stream.starttls.injection", "stream.compression", "stream.stanza_before_auth",
             "stream.version_disclosure", "stream.doctype", "stream.header_disclosure"}


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    checks = [f.check for f in findings]
    assert len(checks) == len(set(checks)), f"duplicate checks: {checks}"
    return {f.check: f for f in findings}


def assert_actionable(findings: list[Finding]) -> None:
    for f in findings:
        if f.severity > S.INFO:
            assert f.why and f.fix is not None, f
            assert f.fix.stockade and f.fix.prosody and f.fix.ejabberd, f


def summary(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity.name} {f.check}: {f.observed}" for f in findings)


@pytest.mark.timeout(30)
async def test_stockade_passes_every_stream_check(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        starttls, direct = await asyncio.gather(
            probe(Endpoint("localhost", "127.0.0.1", h.starttls_port, Service.C2S_STARTTLS)),
            probe(Endpoint("localhost", "127.0.0.1", h.direct_tls_port,
                           Service.C2S_DIRECT_TLS)))
    for findings in (starttls, direct):
        assert all(f.severity in (S.PASS, S.INFO) for f in findings), summary(findings)
    found = by_check(starttls)
    assert STARTTLS_CHECKS <= set(found), summary(starttls)
    assert {c for c in MUST_PASS if found[c].severity is not S.PASS} == set(), summary(starttls)
    assert "SCRAM-SHA-256-PLUS" in found["sasl.channel_binding"].observed
    assert "tls-server-end-point" in found["sasl.channel_binding"].observed
    assert "HT-SHA-256" in found["sasl.fast"].observed
    direct_found = by_check(direct)
    assert {"stream.direct_tls", "stream.doctype", "stream.stanza_before_auth",
            "sasl.mechanisms"} <= set(direct_found), summary(direct)
    assert "stream.starttls.injection" not in direct_found


@pytest.mark.timeout(30)
async def test_well_behaved_fixture_passes(ca: trustme.CA) -> None:
    # The fixture without switches is a sound server: the weaknesses below are the switches'.
    async with weak_server(Weakness(), ca) as server:
        findings = await probe(server.endpoint())
    assert all(f.severity in (S.PASS, S.INFO) for f in findings), summary(findings)
    assert STARTTLS_CHECKS <= {f.check for f in findings}


WEAKNESSES: dict[str, tuple[Weakness, dict[str, Severity]]] = {
    "starttls-not-offered": (Weakness(starttls_offered=False), {
        "stream.starttls.offered": S.CRITICAL, "stream.starttls.required": S.HIGH,
        "stream.starttls.injection": S.NOT_TESTED, "stream.doctype": S.NOT_TESTED,
        "sasl.mechanisms": S.NOT_TESTED, "sasl.sasl2": S.NOT_TESTED}),
    "starttls-not-required": (Weakness(starttls_required=False), {
        "stream.starttls.required": S.HIGH}),
    "plain-before-tls": (Weakness(plain_before_tls=True), {
        "sasl.before_tls": S.CRITICAL, "sasl.plain_before_tls": S.CRITICAL,
        "sasl.enforced_before_tls": S.CRITICAL}),
    "stanzas-before-auth": (Weakness(answer_before_auth=True), {
        "stream.stanza_before_auth": S.CRITICAL, "stream.enforced_before_tls": S.CRITICAL}),
    "starttls-injection": (Weakness(injection=True), {
        "stream.starttls.injection": S.CRITICAL}),
    "doctype-accepted": (Weakness(doctype_accepted=True), {"stream.doctype": S.HIGH}),
    "version-disclosed": (Weakness(version_disclosed=True), {
        "stream.version_disclosure": S.LOW, "stream.stanza_before_auth": S.CRITICAL,
        "stream.header_disclosure": S.INFO}),
    "compression": (Weakness(compression=True), {"stream.compression": S.HIGH}),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(WEAKNESSES))
async def test_each_weakness_is_found(ca: trustme.CA, case: str) -> None:
    weakness, expected = WEAKNESSES[case]
    async with weak_server(weakness, ca) as server:
        findings = await probe(server.endpoint())
    found = by_check(findings)
    assert {c: found[c].severity for c in expected if c in found} == expected, \
        summary(findings)
    # Nothing else is flagged: every other check still passes.
    others = {f.check: f.severity for f in findings
              if f.check not in expected and f.severity not in (S.PASS, S.INFO)}
    assert others == {}, summary(findings)
    assert_actionable(findings)


@pytest.mark.timeout(30)
async def test_direct_tls_endpoint_gets_the_same_checks(ca: trustme.CA) -> None:
    weakness = Weakness(doctype_accepted=True, version_disclosed=True, compression=True)
    async with weak_server(weakness, ca) as server:
        findings = await probe(server.endpoint(direct_tls=True))
    found = {f.check: f.severity for f in findings}
    assert found["stream.doctype"] is S.HIGH, summary(findings)
    assert found["stream.version_disclosure"] is S.LOW
    assert found["stream.compression"] is S.HIGH
    assert "weakxmpp 0.1 (Linux)" in by_check(findings)["stream.version_disclosure"].observed
    assert "stream.starttls.offered" not in found


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(30)
async def test_refused_connection_is_not_tested_not_an_exception() -> None:
    findings = await probe(Endpoint("localhost", "127.0.0.1", _unused_port(),
                                    Service.C2S_STARTTLS), timeout_s=1.0)
    assert {f.severity for f in findings} == {S.NOT_TESTED}
    assert STARTTLS_CHECKS <= {f.check for f in findings}
    assert all("connection failed" in f.observed for f in findings), summary(findings)


@pytest.mark.timeout(30)
async def test_silent_server_times_out_into_findings() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept and never speak
        writer.close()

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        findings = await probe(Endpoint("localhost", "127.0.0.1", port, Service.C2S_STARTTLS),
                               timeout_s=0.3)
    finally:
        listener.close()
    # No stream at all: nothing is reported as present, absent or passed.
    assert {f.severity for f in findings} == {S.NOT_TESTED}, summary(findings)
    assert STARTTLS_CHECKS <= {f.check for f in findings}
    assert all("nothing within 0.3 s" in f.observed for f in findings), summary(findings)
