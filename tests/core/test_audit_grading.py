"""The scoring rules of ``stockade audit`` (core.audit.grading, rules version 2)."""

from __future__ import annotations

import pytest

from stockade.core.audit.grading import (
    GRADES,
    RULES_VERSION,
    grade,
    is_below,
    letter_for,
    rules_markdown,
    score,
)
from stockade.core.audit.model import Finding, Severity

P, N = Severity.PASS, Severity.NOT_TESTED


def f(check: str, severity: Severity, endpoint: str = "e1") -> Finding:
    return Finding(check, check, severity, "observed", endpoint=endpoint)


# A clean modern server: every required area tested and passing, TLS 1.3 accepted.
CLEAN = [f("tls.version.tls1_3", P), f("tls.version.tls1_0", P), f("cert.chain", P),
         f("cert.identity", P), f("stream.starttls.required", P), f("sasl.before_tls", P)]


def test_clean_server_with_tls13_gets_a_plus() -> None:
    letter, points, reasons = grade(CLEAN)
    assert (letter, points) == ("A+", 100)
    assert any(r.startswith("P1: A+") for r in reasons)


def test_info_findings_keep_a_plus() -> None:
    assert grade([*CLEAN, f("stream.version_disclosed", Severity.INFO)])[0] == "A+"


def test_without_tls13_the_best_is_a() -> None:
    findings = [x for x in CLEAN if x.check != "tls.version.tls1_3"]
    letter, _, reasons = grade([*findings, f("tls.version.tls1_3", Severity.LOW)])
    assert letter == "A"
    assert any("TLS 1.3 was not seen accepted" in r for r in reasons)


def test_accepted_cbc_suite_blocks_a_plus_even_at_info() -> None:
    letter, _, reasons = grade([*CLEAN, f("tls.ciphers.cbc", Severity.INFO)])
    assert letter == "A"
    assert any("CBC" in r and "tls.ciphers.cbc" in r for r in reasons)


def test_one_low_finding_is_a_but_not_a_plus() -> None:
    letter, points, _ = grade([*CLEAN, f("cert.ocsp_stapling", Severity.LOW)])
    assert (letter, points) == ("A", 95)


def test_not_tested_required_check_blocks_a_plus_but_costs_nothing() -> None:
    letter, points, reasons = grade([*CLEAN, f("cert.ocsp_stapling", N)])
    assert (letter, points) == ("A", 100)
    assert any("cert.ocsp_stapling" in r and "not tested" in r for r in reasons)


def test_not_tested_never_raises_a_grade() -> None:
    weak = [*CLEAN, f("tls.cipher.3des", Severity.HIGH)]
    assert grade(weak)[0] == grade([*weak, *(f(f"tls.x{i}", N) for i in range(10))])[0]
    assert score([*weak, f("tls.y", N)])[0] == score(weak)[0]


def test_any_critical_is_f_whatever_the_score() -> None:
    letter, points, reasons = grade([*CLEAN, f("sasl.before_tls", Severity.CRITICAL)])
    assert letter == "F"
    assert points == 50  # the score alone would earn C: the cap is what makes it F
    assert any(r.startswith("C1") and "sasl.before_tls" in r for r in reasons)


def test_any_high_caps_at_c() -> None:
    letter, points, reasons = grade([*CLEAN, f("tls.cipher.3des", Severity.HIGH)])
    assert (letter, points) == ("C", 70)  # 70 alone would be B
    assert any(r.startswith("C2") and "tls.cipher.3des" in r for r in reasons)


def test_any_medium_caps_at_b() -> None:
    letter, points, reasons = grade([*CLEAN, f("cert.key_size", Severity.MEDIUM)])
    assert (letter, points) == ("B", 85)  # 85 alone would be A-
    assert any(r.startswith("C3") for r in reasons)


def test_deductions_are_capped_per_severity() -> None:
    lows = [f(f"tls.low{i}", Severity.LOW) for i in range(10)]
    points, reasons = score([*CLEAN, *lows])
    assert points == 80  # 10 x 5 = 50, capped at 20
    assert any("capped at -20" in r for r in reasons)
    highs = [f(f"tls.high{i}", Severity.HIGH) for i in range(5)]
    assert score([*CLEAN, *highs])[0] == 40  # 5 x 30, capped at 60


def test_many_lows_alone_lower_the_letter() -> None:
    lows = [f(f"tls.low{i}", Severity.LOW) for i in range(3)]
    assert grade([*CLEAN, *lows])[:2] == ("A-", 85)


def test_severities_add_up_and_the_score_floors_at_zero() -> None:
    findings = [*CLEAN, f("tls.a", Severity.MEDIUM), f("tls.b", Severity.HIGH),
                f("tls.c", Severity.LOW)]
    assert score(findings)[0] == 100 - 15 - 30 - 5
    assert score([f(f"x.c{i}", Severity.CRITICAL) for i in range(3)])[0] == 0


def test_one_flaw_on_two_endpoints_counts_once_at_its_worst() -> None:
    findings = [*CLEAN, f("tls.cipher.3des", Severity.MEDIUM, "e1"),
                f("tls.cipher.3des", Severity.HIGH, "e2"),
                f("tls.cipher.3des", Severity.HIGH, "e3")]
    letter, points, _ = grade(findings)
    assert (letter, points) == ("C", 70)


def test_nothing_tested_is_f() -> None:
    letter, _, reasons = grade([f("tls.probe", N), f("cert.probe", N), f("stream.probe", N)])
    assert letter == "F"
    assert any(r.startswith("C4") for r in reasons)
    assert grade([])[0] == "F"


def test_an_untested_required_area_caps_at_b() -> None:
    findings = [x for x in CLEAN if not x.check.startswith("cert.")]
    letter, points, reasons = grade([*findings, f("cert.probe", N)])
    assert (letter, points) == ("B", 100)
    assert any(r.startswith("C5") and "cert" in r for r in reasons)


@pytest.mark.parametrize(("points", "letter"), [(100, "A"), (90, "A"), (89, "A-"), (80, "A-"),
                                                (79, "B"), (65, "B"), (64, "C"), (50, "C"),
                                                (49, "D"), (35, "D"), (34, "E"), (20, "E"),
                                                (19, "F"), (0, "F")])
def test_score_letter_boundaries(points: int, letter: str) -> None:
    assert letter_for(points) == letter


def test_grade_order() -> None:
    assert GRADES == ("A+", "A", "A-", "B", "C", "D", "E", "F")
    assert is_below("B", "A-") and not is_below("A", "A") and not is_below("A+", "A")


def test_rules_table_is_versioned_markdown_naming_every_rule() -> None:
    text = rules_markdown()
    assert f"version {RULES_VERSION}" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    names = {row.split("|")[1].strip() for row in rows[1:]}
    assert names == {"S1", "S2", "S3", "S4", "S5", "S6", "L1", "C1", "C2", "C3", "C4", "C5",
                     "P1"}


def test_readme_shows_the_current_rules() -> None:
    from pathlib import Path

    from stockade.core.audit.grading import rules_markdown

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert rules_markdown().strip() in readme, "paste rules_markdown() into README.md"


def test_an_unreachable_server_is_f_even_with_info_notes() -> None:
    from stockade.core.audit.grading import grade
    from stockade.core.audit.model import Finding, Severity

    findings = [
        Finding("tls.probe", "TLS probe", Severity.NOT_TESTED, "connection refused"),
        Finding("cert.probe", "certificate probe", Severity.NOT_TESTED, "connection refused"),
        Finding("stream.probe", "stream probe", Severity.NOT_TESTED, "connection refused"),
        Finding("stream.direct_tls", "direct TLS", Severity.INFO, "STARTTLS checks n/a"),
    ]
    letter, _score, reasons = grade(findings)
    assert letter == "F" and any(r.startswith("C4") for r in reasons)
