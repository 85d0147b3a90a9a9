"""Reports as JSON, Markdown and a self-contained HTML page.

Findings carry text the audited server chose (banners, stream errors, certificate names):
every renderer treats it as hostile. Control characters are shown as escapes (no terminal
or log injection), Markdown gets no raw HTML and no code fence it could close, and HTML is
escaped everywhere and loads nothing from anywhere.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from stockade.core.audit import grading
from stockade.core.audit.model import Finding, Report, Severity

JSON_SCHEMA_VERSION = 1
# Worst first: the order of a report.
SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO,
                  Severity.PASS, Severity.NOT_TESTED]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control and bidi-override characters as visible escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def ordered(findings: list[Finding]) -> list[Finding]:
    """Worst first; stable within a severity (the probes' order)."""
    return sorted(findings, key=lambda f: SEVERITY_ORDER.index(f.severity))


def counts(findings: list[Finding]) -> dict[str, int]:
    """How many findings of each severity (every severity present as a key)."""
    return {s.name: sum(1 for f in findings if f.severity is s) for s in SEVERITY_ORDER}


# ---------------------------------------------------------------------- JSON
def to_dict(report: Report) -> dict[str, Any]:
    """The stable JSON schema (``schema`` is bumped when a field changes meaning)."""
    letter, points, reasons = grading.grade(report.findings)
    return {
        "schema": JSON_SCHEMA_VERSION,
        "rules_version": report.rules_version or grading.RULES_VERSION,
        "target": report.target,
        "grade": report.grade or letter,
        "score": points,
        "reasons": reasons,
        "started": report.started,
        "duration_s": round(report.duration_s, 3),
        "counts": counts(report.findings),
        "endpoints": [{"domain": e.domain, "host": e.host, "port": e.port,
                       "service": e.service.value, "direct_tls": e.service.direct_tls,
                       "source": e.source, "id": str(e)} for e in report.endpoints],
        "findings": [_finding_dict(f) for f in ordered(report.findings)],
    }


def _finding_dict(finding: Finding) -> dict[str, Any]:
    fix = finding.fix
    return {
        "check": finding.check,
        "title": finding.title,
        "severity": finding.severity.name,
        "endpoint": finding.endpoint,
        "observed": finding.observed,
        "why": finding.why,
        "fix": None if fix is None else {"stockade": fix.stockade, "prosody": fix.prosody,
                                         "ejabberd": fix.ejabberd},
    }


def to_json(report: Report) -> str:
    """JSON text (ASCII only: nothing the server sent can smuggle raw bytes through)."""
    return json.dumps(to_dict(report), indent=2, ensure_ascii=True) + "\n"


# ---------------------------------------------------------------------- Markdown
# What can start inline markup mid-line (links, emphasis, code, tables, strikethrough).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_text(text: str) -> str:
    """Inline Markdown text: no markup, no raw HTML, one line."""
    text = printable(text).replace("\n", " ")
    text = html.escape(text, quote=False)  # raw HTML in Markdown would be rendered
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text: str) -> str:
    """A fenced block ``text`` cannot close: the fence is longer than any backtick run."""
    text = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def to_markdown(report: Report) -> str:
    """A Markdown report: summary, endpoints, findings worst first, the rules."""
    data = to_dict(report)
    lines = [f"# XMPP security audit of {md_text(report.target)}", "",
             f"**Grade: {md_text(data['grade'])}** (score {data['score']}/100, "
             f"rules version {md_text(data['rules_version'])})", ""]
    lines += [f"- {md_text(reason)}" for reason in data["reasons"]]
    lines += ["", f"Started {md_text(report.started)}, took {report.duration_s:.1f} s.", "",
              "## Endpoints", ""]
    lines += [f"- {md_text(str(e))} ({md_text(e.source)})" for e in report.endpoints]
    summary = ", ".join(f"{n} {name}" for name, n in data["counts"].items() if n)
    lines += ["", "## Findings", "", f"{md_text(summary)}", ""]
    passes = [f for f in report.findings if f.severity is Severity.PASS]
    for finding in ordered(report.findings):
        if finding.severity is not Severity.PASS:
            lines += _md_finding(finding)
    if passes:
        lines += ["## Passed checks", "", "| Check | Result | Endpoint | Observed |",
                  "|-------|--------|----------|----------|"]
        lines += [f"| {md_text(f.check)} | {md_text(f.title)} | {md_text(f.endpoint)} | "
                  f"{md_text(f.observed)} |" for f in passes]
        lines.append("")
    lines += ["## Scoring rules", "", grading.rules_markdown()]
    return "\n".join(lines)


def _md_finding(finding: Finding) -> list[str]:
    where = finding.endpoint or "all endpoints"
    lines = [f"### {md_text(finding.severity.name)}: {md_text(finding.title)}", "",
             f"`{md_text(finding.check)}` on {md_text(where)}", "", "Observed:", "",
             md_code(finding.observed), ""]
    if finding.why:
        lines += [f"Why it matters: {md_text(finding.why)}", ""]
    if finding.fix is not None:
        lines += ["How to fix:", "",
                  f"- Stockade: {md_text(finding.fix.stockade)}",
                  f"- Prosody: {md_text(finding.fix.prosody)}",
                  f"- ejabberd: {md_text(finding.fix.ejabberd)}", ""]
    return lines


# ---------------------------------------------------------------------- HTML
_COLOURS = {
    Severity.CRITICAL: "#8b0000", Severity.HIGH: "#c0392b", Severity.MEDIUM: "#d35400",
    Severity.LOW: "#b7950b", Severity.INFO: "#2874a6", Severity.PASS: "#1e8449",
    Severity.NOT_TESTED: "#7f8c8d",
}
_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}
h1{font-size:1.6rem}.grade{font-size:3rem;font-weight:700;display:inline-block;
padding:.2rem 1rem;border-radius:.4rem;color:#fff;background:#333}
.finding{border-left:.4rem solid #999;padding:.3rem 1rem;margin:1rem 0;background:#fafafa}
.sev{font-weight:700;color:#fff;padding:0 .4rem;border-radius:.2rem}
pre{white-space:pre-wrap;word-break:break-all;background:#f0f0f0;padding:.5rem}
code{background:#f0f0f0}table{border-collapse:collapse}td,th{border:1px solid #ccc;
padding:.2rem .5rem;text-align:left}
"""


def h(text: object) -> str:
    """Escaped text for HTML content or a quoted attribute."""
    return html.escape(printable(str(text)), quote=True)


def to_html(report: Report) -> str:
    """One self-contained page: inline CSS, no scripts, no external resources."""
    data = to_dict(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may load from anywhere, even if escaping ever failed.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'">',
        f"<title>XMPP security audit of {h(report.target)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>XMPP security audit of {h(report.target)}</h1>",
        f'<p><span class="grade">{h(data["grade"])}</span> score {h(data["score"])}/100, '
        f"rules version {h(data['rules_version'])}; started {h(report.started)}, "
        f"took {report.duration_s:.1f} s</p>",
        "<ul>" + "".join(f"<li>{h(r)}</li>" for r in data["reasons"]) + "</ul>",
        "<h2>Endpoints</h2><ul>"
        + "".join(f"<li>{h(e)} ({h(e.source)})</li>" for e in report.endpoints) + "</ul>",
        "<h2>Findings</h2><table><tr>"
        + "".join(f"<th>{h(name)}</th>" for name in data["counts"]) + "</tr><tr>"
        + "".join(f"<td>{n}</td>" for n in data["counts"].values()) + "</tr></table>",
    ]
    parts += [_html_finding(f) for f in ordered(report.findings)]
    parts += ["<h2>Scoring rules</h2>", _html_rules(), "</body></html>"]
    return "\n".join(parts) + "\n"


def _html_finding(finding: Finding) -> str:
    colour = _COLOURS[finding.severity]
    out = [f'<div class="finding" style="border-left-color:{colour}">',
           f'<h3><span class="sev" style="background:{colour}">{h(finding.severity.name)}'
           f"</span> {h(finding.title)}</h3>",
           f"<p><code>{h(finding.check)}</code> on {h(finding.endpoint or 'all endpoints')}</p>",
           f"<p>Observed:</p><pre>{h(finding.observed)}</pre>"]
    if finding.why:
        out.append(f"<p>Why it matters: {h(finding.why)}</p>")
    if finding.fix is not None:
        out.append("<p>How to fix:</p><ul>"
                   f"<li>Stockade: {h(finding.fix.stockade)}</li>"
                   f"<li>Prosody: {h(finding.fix.prosody)}</li>"
                   f"<li>ejabberd: {h(finding.fix.ejabberd)}</li></ul>")
    out.append("</div>")
    return "\n".join(out)


def _html_rules() -> str:
    rows = [line.strip("|").split("|") for line in grading.rules_markdown().splitlines()
            if line.startswith("|") and not line.startswith("|--")]
    header, *body = rows
    return ("<table><tr>" + "".join(f"<th>{h(c.strip())}</th>" for c in header) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{h(c.strip())}</td>" for c in row) + "</tr>"
                      for row in body) + "</table>")
