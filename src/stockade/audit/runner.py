"""Run every probe on every endpoint, collect the findings, grade them: a :class:`Report`.

A probe that crashes or hangs is a finding (NOT_TESTED, naming the error), never a
traceback: one broken check must not hide what the other checks found.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stockade.core.audit import grading
from stockade.core.audit.model import Endpoint, Finding, Report, Severity

ProbeFunction = Callable[[Endpoint, float], Awaitable[list[Finding]]]

DEFAULT_CONCURRENCY = 4
# A probe makes many connections, each bounded by timeout_s; this bounds the whole probe.
PROBE_DEADLINE_FACTOR = 40


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe: its area (the check-id prefix of its findings) and how to run it."""

    area: str
    run: ProbeFunction


class ProgressSink(Protocol):
    """Told how much there is to do and when each (endpoint, probe) is done."""

    def begin(self, total: int) -> None: ...

    def advance(self, description: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AccountLogin:
    """``--account``: who to log in as. The password never appears in a repr or a log."""

    jid: str
    password: str = field(repr=False)


def default_probes(ca_file: str | None = None,
                   account: AccountLogin | None = None) -> list[Probe]:
    """The probes of ``stockade.audit``, imported only when used (a probe module that cannot
    be imported becomes a NOT_TESTED finding, not a failed audit). The account probe runs
    only when an account is given, and only on client endpoints."""
    probes = [
        Probe("tls", _lazy("stockade.audit.tls", {})),
        Probe("cert", _lazy("stockade.audit.certificate", {"ca_file": ca_file})),
        Probe("stream", _lazy("stockade.audit.stream", {})),
    ]
    if account is not None:
        probes.append(Probe("account", _client_only(_lazy("stockade.audit.account", {
            "jid": account.jid, "password": account.password, "ca_file": ca_file}))))
    return probes


def _lazy(module_name: str, extra: dict[str, str | None]) -> ProbeFunction:
    async def run(endpoint: Endpoint, timeout_s: float) -> list[Finding]:
        module = importlib.import_module(module_name)
        findings: list[Finding] = await module.probe(endpoint, timeout_s=timeout_s, **extra)
        return findings
    return run


def _client_only(run: ProbeFunction) -> ProbeFunction:
    async def on_client(endpoint: Endpoint, timeout_s: float) -> list[Finding]:
        if endpoint.service.stream_namespace != "jabber:client":
            return []  # accounts log in to the client service only
        return await run(endpoint, timeout_s)
    return on_client


def probe_failed(probe: Probe, what: str) -> Finding:
    """The finding that stands for a probe that could not finish."""
    return Finding(
        check=f"{probe.area}.probe",
        title=f"The {probe.area} checks could not be made",
        severity=Severity.NOT_TESTED,
        observed=what,
        why="These checks did not run, so the report cannot say anything about them.",
    )


async def run_probe(probe: Probe, endpoint: Endpoint, timeout_s: float) -> list[Finding]:
    """The probe's findings for ``endpoint``, each naming it; a failure is one finding."""
    deadline_s = timeout_s * PROBE_DEADLINE_FACTOR
    try:
        async with asyncio.timeout(deadline_s):
            findings = list(await probe.run(endpoint, timeout_s))
    except TimeoutError:
        findings = [probe_failed(probe, f"the probe did not finish within {deadline_s:g} s")]
    except Exception as exc:  # noqa: BLE001 - any probe bug becomes a finding, by design
        findings = [probe_failed(probe, f"the probe failed: {type(exc).__name__}: {exc}")]
    return [dataclasses.replace(f, endpoint=str(endpoint)) for f in findings]


async def run_audit(target: str, endpoints: Sequence[Endpoint], *,
                    probes: Sequence[Probe] | None = None, timeout_s: float = 5.0,
                    concurrency: int = DEFAULT_CONCURRENCY,
                    progress: ProgressSink | None = None,
                    extra_findings: Sequence[Finding] = ()) -> Report:
    """Every probe on every endpoint, at most ``concurrency`` at a time, graded.

    Findings come out in a reproducible order (endpoint, then probe, then the probe's own
    order) whatever order the probes finish in. ``extra_findings`` (e.g. checks the command
    line could not make) are added as they are.
    """
    probes = list(default_probes() if probes is None else probes)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    clock = time.monotonic()
    limit = asyncio.Semaphore(max(1, concurrency))
    jobs = [(endpoint, probe) for endpoint in endpoints for probe in probes]
    if progress is not None:
        progress.begin(len(jobs))

    async def job(endpoint: Endpoint, probe: Probe) -> list[Finding]:
        async with limit:
            findings = await run_probe(probe, endpoint, timeout_s)
        if progress is not None:
            progress.advance(f"{probe.area} checks on {endpoint}")
        return findings

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(job(endpoint, probe)) for endpoint, probe in jobs]
    findings = [f for task in tasks for f in task.result()]
    findings.extend(extra_findings)
    letter, _score, _reasons = grading.grade(findings)
    return Report(target=target, endpoints=list(endpoints), findings=findings, grade=letter,
                  rules_version=grading.RULES_VERSION, started=started,
                  duration_s=time.monotonic() - clock)
