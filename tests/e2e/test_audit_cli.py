"""``stockade audit`` against Stockade's own server with default settings: the real CLI
(a subprocess) on the STARTTLS port and the real runner on the direct TLS port, with the
real probes. Our own defaults must earn A or better, with nothing critical."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import trustme
from rawxmpp import DOMAIN, HOST, running_server

from stockade.audit.runner import default_probes, run_audit
from stockade.core.audit.model import Endpoint, Service, Severity

# The probes are written alongside the runner; without one of them this test cannot say
# anything, so it is skipped rather than failed.
for _module in ("stockade.audit.tls", "stockade.audit.certificate", "stockade.audit.stream"):
    pytest.importorskip(_module)

GOOD_GRADES = ("A+", "A")


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stockade.cli.main", "audit", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"})
    out, err = await asyncio.wait_for(proc.communicate(), 50)
    assert proc.returncode is not None  # for mypy: communicate() waited for the exit
    return proc.returncode, out.decode(), err.decode()


async def test_cli_grades_our_own_starttls_port_a(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        code, out, err = await run_cli(f"{HOST}:{h.starttls_port}", "--domain", DOMAIN,
                                       "--ca-file",
                                       str(h.deployment.ca_file), "--timeout", "3", "--json",
                                       "--fail-below", "A")
        page = tmp_path / "report.html"
        html_code, terminal, html_err = await run_cli(
            f"{HOST}:{h.starttls_port}", "--domain", DOMAIN, "--ca-file",
            str(h.deployment.ca_file), "--timeout", "3", "--html", str(page))
    assert html_code == 0, html_err
    assert "Grade" in terminal and "Passed checks" in terminal
    assert "<!DOCTYPE html>" in page.read_text(encoding="utf-8")
    assert code == 0, err
    assert "Traceback" not in err
    report = json.loads(out)
    critical = [f for f in report["findings"] if f["severity"] == "CRITICAL"]
    assert not critical, critical
    assert report["grade"] in GOOD_GRADES, report["reasons"]
    assert {f["check"].split(".")[0] for f in report["findings"]} >= {"tls", "cert", "stream"}
    assert not [f for f in report["findings"] if f["check"].endswith(".probe")]


async def test_runner_grades_our_own_direct_tls_port_a(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        endpoint = Endpoint(DOMAIN, HOST, h.direct_tls_port, Service.C2S_DIRECT_TLS)
        report = await run_audit(DOMAIN, [endpoint], timeout_s=3,
                                 probes=default_probes(str(h.deployment.ca_file)))
    assert not [f for f in report.findings if f.severity is Severity.CRITICAL]
    assert not [f for f in report.findings if f.check.endswith(".probe")], report.findings
    assert report.grade in GOOD_GRADES, report.findings
    assert all(f.endpoint == str(endpoint) for f in report.findings)
