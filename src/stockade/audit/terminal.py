"""The audit on a terminal: a report a person can act on, and progress while it runs.

Every string from a finding goes in as :class:`rich.text.Text` (never markup), after
:func:`printable`: the audited server cannot style, hide or inject terminal escapes.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from stockade.core.audit import grading
from stockade.core.audit.model import Finding, Report, Severity
from stockade.core.audit.render import counts, ordered, printable

STYLES = {
    Severity.CRITICAL: "bold white on red", Severity.HIGH: "bold red",
    Severity.MEDIUM: "bold dark_orange", Severity.LOW: "yellow", Severity.INFO: "cyan",
    Severity.PASS: "green", Severity.NOT_TESTED: "dim",
}
GRADE_STYLES = {"A+": "bold white on green", "A": "bold white on green",
                "A-": "bold black on green_yellow", "B": "bold black on yellow",
                "C": "bold black on dark_orange", "D": "bold white on red",
                "E": "bold white on red", "F": "bold white on dark_red"}


def _t(text: str, style: str = "") -> Text:
    return Text(printable(text), style=style)


def print_report(report: Report, console: Console | None = None, *,
                 show_passes: bool = True) -> None:
    """The summary, the endpoints, then each finding worst first with why and how to fix."""
    console = console or Console()
    letter, points, reasons = grading.grade(report.findings)
    letter = report.grade or letter
    head = Text.assemble(("Grade ", "bold"), (f" {letter} ", GRADE_STYLES.get(letter, "bold")),
                         f"  score {points}/100, rules version {report.rules_version}")
    lines: list[Text] = [head, _t(f"Target {report.target}, started {report.started}, "
                                  f"took {report.duration_s:.1f} s")]
    lines += [_t(f"  {reason}", "dim") for reason in reasons]
    lines.append(_t(", ".join(f"{n} {name}" for name, n in counts(report.findings).items()
                              if n)))
    console.print(Panel(Group(*lines), title="stockade audit", expand=False))
    endpoints = Table("Endpoint", "Service", "Found by", title="Endpoints", title_justify="left")
    for endpoint in report.endpoints:
        endpoints.add_row(_t(f"{endpoint.host}:{endpoint.port}"), _t(endpoint.service.value),
                          _t(endpoint.source))
    console.print(endpoints)
    for finding in ordered(report.findings):
        if finding.severity is Severity.PASS:
            continue
        console.print(_finding(finding))
    if show_passes:
        console.print(_passes([f for f in report.findings if f.severity is Severity.PASS]))


def _finding(finding: Finding) -> Panel:
    style = STYLES[finding.severity]
    body: list[Text] = [Text.assemble(("Observed: ", "bold"), _t(finding.observed))]
    if finding.why:
        body.append(Text.assemble(("Why: ", "bold"), _t(finding.why)))
    if finding.fix is not None:
        body.append(Text("How to fix:", style="bold"))
        for name, text in (("Stockade", finding.fix.stockade), ("Prosody", finding.fix.prosody),
                           ("ejabberd", finding.fix.ejabberd)):
            body.append(Text.assemble(f"  {name}: ", _t(text)))
    title = Text.assemble((f" {finding.severity.name} ", style), " ", _t(finding.title))
    subtitle = _t(f"{finding.check} — {finding.endpoint or 'all endpoints'}")
    return Panel(Group(*body), title=title, title_align="left", subtitle=subtitle,
                 subtitle_align="right", border_style=style.replace("bold ", ""))


def _passes(passes: list[Finding]) -> Table:
    table = Table("Check", "Result", "Endpoint", title="Passed checks", title_justify="left")
    for finding in passes:
        table.add_row(_t(finding.check), _t(finding.title, "green"), _t(finding.endpoint))
    return table


class ProgressDisplay:
    """A progress bar on stderr while probes run; does nothing when stderr is not a TTY."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.console = Console(file=stream, stderr=stream is sys.stderr)
        self.enabled = self.console.is_terminal
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn(), MofNCompleteColumn(), console=self.console,
                                  transient=True, disable=not self.enabled)
        self._task = self._progress.add_task("probing", total=None)

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._progress.stop()

    def begin(self, total: int) -> None:
        self._progress.update(self._task, total=total, description="probing")

    def advance(self, description: str) -> None:
        self._progress.update(self._task, advance=1, description=printable(description))
