"""The audit runner (stockade.audit.runner) with fake probes: order, endpoints, failures,
concurrency, grading."""

from __future__ import annotations

import asyncio

import pytest

from stockade.audit import runner
from stockade.audit.runner import Probe, default_probes, run_audit
from stockade.core.audit.model import Endpoint, Finding, Service, Severity

E1 = Endpoint("example.org", "a.example.org", 5222, Service.C2S_STARTTLS, "srv")
E2 = Endpoint("example.org", "b.example.org", 5223, Service.C2S_DIRECT_TLS, "srv")


def passing(area: str, *checks: str, delay_s: float = 0.0) -> Probe:
    async def run(endpoint: Endpoint, timeout_s: float) -> list[Finding]:
        await asyncio.sleep(delay_s)
        return [Finding(f"{area}.{c}", c, Severity.PASS, f"ok on {endpoint.host}")
                for c in checks]
    return Probe(area, run)


def crashing(area: str) -> Probe:
    async def run(endpoint: Endpoint, timeout_s: float) -> list[Finding]:
        raise RuntimeError("parser blew up on <stream:features/>")
    return Probe(area, run)


GOOD = [passing("tls", "version.tls1_3", "version.tls1_0"), passing("cert", "chain"),
        passing("stream", "starttls")]


async def test_every_probe_on_every_endpoint_in_a_stable_order() -> None:
    # The first probe is the slowest: the order is the plan's, not the finishing order.
    probes = [passing("tls", "version.tls1_3", delay_s=0.05), passing("cert", "chain"),
              passing("stream", "starttls")]
    report = await run_audit("example.org", [E1, E2], probes=probes)
    assert [(f.endpoint, f.check) for f in report.findings] == [
        (str(E1), "tls.version.tls1_3"), (str(E1), "cert.chain"), (str(E1), "stream.starttls"),
        (str(E2), "tls.version.tls1_3"), (str(E2), "cert.chain"), (str(E2), "stream.starttls")]
    assert report.findings[3].observed == "ok on b.example.org"
    assert report.endpoints == [E1, E2] and report.target == "example.org"


async def test_the_report_is_graded_with_the_rules_version() -> None:
    report = await run_audit("example.org", [E1], probes=GOOD)
    assert (report.grade, report.rules_version) == ("A+", "2")
    assert report.started.endswith("+00:00") and report.duration_s >= 0


async def test_a_crashing_probe_is_a_not_tested_finding_and_the_others_still_count() -> None:
    report = await run_audit("example.org", [E1],
                             probes=[GOOD[0], crashing("cert"), GOOD[2]])
    failed = [f for f in report.findings if f.check == "cert.probe"]
    assert len(failed) == 1
    assert failed[0].severity is Severity.NOT_TESTED
    assert failed[0].observed == ("the probe failed: RuntimeError: parser blew up on "
                                  "<stream:features/>")
    assert failed[0].endpoint == str(E1)
    assert "Traceback" not in failed[0].observed
    assert any(f.check == "stream.starttls" for f in report.findings)
    assert report.grade == "B"  # rule C5: the cert area could not be tested


async def test_a_hanging_probe_is_stopped_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "PROBE_DEADLINE_FACTOR", 1)
    report = await run_audit("example.org", [E1], timeout_s=0.05,
                             probes=[GOOD[0], passing("cert", "chain", delay_s=30), GOOD[2]])
    (failed,) = [f for f in report.findings if f.check == "cert.probe"]
    assert failed.observed == "the probe did not finish within 0.05 s"


async def test_concurrency_is_bounded() -> None:
    running, peak = 0, 0

    async def run(endpoint: Endpoint, timeout_s: float) -> list[Finding]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return []

    endpoints = [Endpoint("example.org", f"h{i}", 5222, Service.C2S_STARTTLS) for i in range(6)]
    await run_audit("example.org", endpoints, probes=[Probe("tls", run)], concurrency=2)
    assert peak == 2


async def test_progress_is_told_the_total_and_each_step() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.total = 0
            self.steps: list[str] = []

        def begin(self, total: int) -> None:
            self.total = total

        def advance(self, description: str) -> None:
            self.steps.append(description)

    recorder = Recorder()
    await run_audit("example.org", [E1, E2], probes=GOOD, progress=recorder)
    assert recorder.total == 6
    assert sorted(recorder.steps)[0] == f"cert checks on {E1}"
    assert len(recorder.steps) == 6


async def test_extra_findings_are_reported_and_graded() -> None:
    extra = Finding("account.checks", "Checks after login", Severity.NOT_TESTED, "not yet")
    report = await run_audit("example.org", [E1], probes=GOOD, extra_findings=[extra])
    assert report.findings[-1] == extra
    assert report.grade == "A+"  # NOT_TESTED outside the required areas costs nothing


async def test_default_probes_pass_the_ca_file_to_the_certificate_probe_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, dict[str, object]] = {}

    class FakeModule:
        def __init__(self, name: str) -> None:
            self.name = name

        async def probe(self, endpoint: Endpoint, **kwargs: object) -> list[Finding]:
            calls[self.name] = kwargs
            return []

    monkeypatch.setattr(runner.importlib, "import_module", FakeModule)
    probes = default_probes(ca_file="/tmp/ca.pem")
    assert [p.area for p in probes] == ["tls", "cert", "stream"]
    for probe in probes:
        await probe.run(E1, 2.5)
    assert calls == {"stockade.audit.tls": {"timeout_s": 2.5},
                     "stockade.audit.certificate": {"timeout_s": 2.5, "ca_file": "/tmp/ca.pem"},
                     "stockade.audit.stream": {"timeout_s": 2.5}}


async def test_a_missing_probe_module_is_not_tested(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(runner.importlib, "import_module", missing)
    report = await run_audit("example.org", [E1], probes=default_probes())
    assert [f.check for f in report.findings] == ["tls.probe", "cert.probe", "stream.probe"]
    assert all(f.severity is Severity.NOT_TESTED for f in report.findings)
    assert report.grade == "F"  # rule C4: nothing could be tested
