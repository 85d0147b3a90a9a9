"""Scoring rules of ``stockade audit``: findings in, a grade (A+ … F) and the reasons out.

Rules version 1. The grade is the *lower* of two things: the letter the score earns and
the caps that the worst findings impose. Every rule that lowered the grade is named in the
reasons, so a report can say exactly why it is not better.

| Rule | What it does |
|------|--------------|
| S1 | Start at 100; each check id counts once, at its worst severity over all endpoints. |
| S2 | LOW: 5 points off each, at most 20 in total. |
| S3 | MEDIUM: 15 points off each, at most 45 in total. |
| S4 | HIGH: 30 points off each, at most 60 in total. |
| S5 | CRITICAL: 50 points off each (the score never goes below 0). |
| S6 | PASS and INFO cost nothing; NOT_TESTED neither costs nor earns anything. |
| L1 | Score to letter: 90+ A, 80+ A-, 65+ B, 50+ C, 35+ D, 20+ E, else F. |
| C1 | Any CRITICAL finding: F. |
| C2 | Any HIGH finding: at most C. |
| C3 | Any MEDIUM finding: at most B. |
| C4 | Nothing could be tested (no PASS or LOW+ finding; INFO notes alone do not count): F. |
| C5 | A required area (tls, cert, stream) without one tested finding (same sense): at most B. |
| P1 | A+: an A with TLS 1.3, no CBC, nothing above INFO, no required area NOT_TESTED. |

P1 in detail: "TLS 1.3 accepted" is a PASS finding of a ``tls.version`` check whose id names
1.3 (``tls.version.tls1_3``); "a CBC suite accepted" is any finding above PASS whose check id
contains ``cbc``.

NOT_TESTED never raises a grade: an untested check is listed in the report, but it can only
stand in the way of A+ (P1) or, when a whole area is untested, of an A (C5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stockade.core.audit.model import Finding, Severity

RULES_VERSION = "2"  # 2: INFO notes alone no longer count as "tested" (C4, C5)

GRADES = ("A+", "A", "A-", "B", "C", "D", "E", "F")  # best first
REQUIRED_AREAS = ("tls", "cert", "stream")
START_SCORE = 100


@dataclass(frozen=True, slots=True)
class Deduction:
    """Points lost per finding of a severity, and the most lost in total (None: no cap)."""

    points: int
    cap: int | None


DEDUCTIONS: dict[Severity, Deduction] = {
    Severity.LOW: Deduction(5, 20),
    Severity.MEDIUM: Deduction(15, 45),
    Severity.HIGH: Deduction(30, 60),
    Severity.CRITICAL: Deduction(50, None),
}
# (minimum score, letter), best first (rule L1)
LETTERS = ((90, "A"), (80, "A-"), (65, "B"), (50, "C"), (35, "D"), (20, "E"), (0, "F"))
# (severity, the best grade allowed while such a finding exists) (rules C1-C3)
SEVERITY_CAPS = ((Severity.CRITICAL, "F"), (Severity.HIGH, "C"), (Severity.MEDIUM, "B"))
UNTESTED_AREA_CAP = "B"  # rule C5


def rules_markdown() -> str:
    """The rules table above, for the README and the reports."""
    doc = __doc__ or ""
    table = [line for line in doc.splitlines() if line.startswith("|")]
    return f"Scoring rules version {RULES_VERSION}\n\n" + "\n".join(table) + "\n"


def worse(a: str, b: str) -> str:
    """The lower of two grade letters."""
    return a if GRADES.index(a) >= GRADES.index(b) else b


def is_below(letter: str, threshold: str) -> bool:
    """Whether ``letter`` is a worse grade than ``threshold``."""
    return GRADES.index(letter) > GRADES.index(threshold)


def area(check: str) -> str:
    """The area of a check id: "tls.version.tls1_0" → "tls"."""
    return check.split(".", 1)[0]


def worst_per_check(findings: Iterable[Finding]) -> dict[str, Severity]:
    """Each check id once, at its worst severity (rule S1: endpoints do not multiply a flaw)."""
    worst: dict[str, Severity] = {}
    for finding in findings:
        if finding.check not in worst or finding.severity > worst[finding.check]:
            worst[finding.check] = finding.severity
    return worst


def score(findings: Iterable[Finding]) -> tuple[int, list[str]]:
    """Rules S1-S6: the score and one reason per severity that cost points."""
    severities = list(worst_per_check(findings).values())
    total, reasons = START_SCORE, []
    for severity, rule in DEDUCTIONS.items():
        count = severities.count(severity)
        if not count:
            continue
        lost = count * rule.points
        if rule.cap is not None and lost > rule.cap:
            lost = rule.cap
            reasons.append(f"-{lost} for {count} {severity.name} finding(s) "
                           f"(capped at -{rule.cap})")
        else:
            reasons.append(f"-{lost} for {count} {severity.name} finding(s)")
        total -= lost
    return max(total, 0), reasons


def letter_for(points: int) -> str:
    """Rule L1."""
    return next(letter for minimum, letter in LETTERS if points >= minimum)


def _tested(severity: Severity) -> bool:
    # A PASS or a problem is a check that was made; an INFO note may be written without
    # reaching the server at all (e.g. "STARTTLS checks do not apply to a direct TLS port").
    return severity is Severity.PASS or severity >= Severity.LOW


def _caps(worst: dict[str, Severity]) -> list[tuple[str, str]]:
    """Rules C1-C5: (best grade allowed, why) for each cap that applies."""
    caps: list[tuple[str, str]] = []
    if not any(_tested(s) for s in worst.values()):
        caps.append(("F", "C4: nothing could be tested"))
        return caps
    for severity, cap in SEVERITY_CAPS:
        checks = sorted(c for c, s in worst.items() if s is severity)
        if checks:
            caps.append((cap, f"C{SEVERITY_CAPS.index((severity, cap)) + 1}: {severity.name} "
                              f"finding(s) {', '.join(checks)} cap the grade at {cap}"))
    for name in REQUIRED_AREAS:
        if not any(_tested(s) for c, s in worst.items() if area(c) == name):
            caps.append((UNTESTED_AREA_CAP, f"C5: no {name} check could be made; an "
                                            f"unverified area caps the grade at "
                                            f"{UNTESTED_AREA_CAP}"))
    return caps


def _plus_blockers(worst: dict[str, Severity]) -> list[str]:
    """Rule P1: what stands between an A and an A+ (empty: nothing)."""
    blockers = []
    if not any(c.startswith("tls.version") and ("1_3" in c or "13" in c) and s is Severity.PASS
               for c, s in worst.items()):
        blockers.append("TLS 1.3 was not seen accepted")
    cbc = sorted(c for c, s in worst.items() if "cbc" in c.lower() and s > Severity.PASS)
    if cbc:
        blockers.append(f"CBC suites accepted ({', '.join(cbc)})")
    above_info = sorted(c for c, s in worst.items() if s > Severity.INFO)
    if above_info:
        blockers.append(f"findings above INFO ({', '.join(above_info)})")
    untested = sorted(c for c, s in worst.items()
                      if area(c) in REQUIRED_AREAS and s is Severity.NOT_TESTED)
    if untested:
        blockers.append(f"required checks not tested ({', '.join(untested)})")
    return blockers


def grade(findings: Iterable[Finding]) -> tuple[str, int, list[str]]:
    """The grade letter, the score (0-100) and the reasons (which rules applied)."""
    findings = list(findings)
    worst = worst_per_check(findings)
    points, reasons = score(findings)
    letter = letter_for(points)
    reasons.insert(0, f"L1: score {points} earns {letter}")
    for cap, why in _caps(worst):
        if is_below(cap, letter) or cap == letter:
            reasons.append(why)
        letter = worse(letter, cap)
    if letter == "A":
        blockers = _plus_blockers(worst)
        if blockers:
            reasons.append("P1: not A+: " + "; ".join(blockers))
        else:
            letter = "A+"
            reasons.append("P1: A+ (TLS 1.3, no CBC, nothing above INFO, all required "
                           "areas tested)")
    return letter, points, reasons
