"""Audit reports as JSON, Markdown and HTML (core.audit.render): schema and hostile text."""

from __future__ import annotations

import html.parser
import json
import re

from stockade.core.audit.grading import RULES_VERSION
from stockade.core.audit.model import Endpoint, Finding, Fix, Report, Service, Severity
from stockade.core.audit.render import printable, to_dict, to_html, to_json, to_markdown

HOSTILE = "<script>alert(1)</script>\x1b[2J\u202e`\n```\n<img src=x onerror=alert(2)>&amp;"
FIX = Fix(stockade="[tls] min_version = \"1.2\"", prosody="ssl = { protocol = \"tlsv1_2+\" }",
          ejabberd="protocol_options: [no_tlsv1, no_tlsv1_1]")
EP = Endpoint("example.org", "xmpp.example.org", 5222, Service.C2S_STARTTLS, "srv")


def report(observed: str = "TLS 1.0 accepted") -> Report:
    findings = [
        Finding("tls.version.tls1_0", "TLS 1.0 accepted", Severity.HIGH, observed,
                why="TLS 1.0 lacks modern protections.", fix=FIX, endpoint=str(EP)),
        Finding("tls.version.tls1_3", "TLS 1.3 accepted", Severity.PASS, "ServerHello 0x0304",
                endpoint=str(EP)),
        Finding("cert.ocsp", "OCSP stapling", Severity.NOT_TESTED, "no status_request",
                endpoint=str(EP)),
        Finding("stream.version", "Version disclosed", Severity.INFO, "Stockade 0.1"),
    ]
    return Report("example.org", [EP], findings, grade="C", rules_version=RULES_VERSION,
                  started="2026-01-01T00:00:00+00:00", duration_s=1.5)


def test_json_schema_has_every_field_and_worst_first() -> None:
    data = json.loads(to_json(report()))
    assert data["schema"] == 1 and data["rules_version"] == RULES_VERSION
    assert (data["target"], data["grade"], data["score"]) == ("example.org", "C", 70)
    assert any(r.startswith("C2") for r in data["reasons"])
    assert data["counts"] == {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 0, "LOW": 0, "INFO": 1,
                              "PASS": 1, "NOT_TESTED": 1}
    assert data["endpoints"] == [{"domain": "example.org", "host": "xmpp.example.org",
                                  "port": 5222, "service": "c2s-starttls", "direct_tls": False,
                                  "source": "srv", "id": str(EP)}]
    first = data["findings"][0]
    assert first == {"check": "tls.version.tls1_0", "title": "TLS 1.0 accepted",
                     "severity": "HIGH", "endpoint": str(EP), "observed": "TLS 1.0 accepted",
                     "why": "TLS 1.0 lacks modern protections.",
                     "fix": {"stockade": FIX.stockade, "prosody": FIX.prosody,
                             "ejabberd": FIX.ejabberd}}
    assert [x["severity"] for x in data["findings"]] == ["HIGH", "INFO", "PASS", "NOT_TESTED"]
    assert data["findings"][-1]["fix"] is None


def test_json_is_ascii_and_keeps_the_observed_text_exactly() -> None:
    text = to_json(report(HOSTILE))
    assert text.isascii()
    assert json.loads(text)["findings"][0]["observed"] == HOSTILE


def test_grade_is_computed_when_the_report_has_none() -> None:
    r = report()
    r.grade = ""
    assert to_dict(r)["grade"] == "C"


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_hostile_server_text() -> None:
    page = to_html(report(HOSTILE))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # the server's own entity text is shown, not interpreted
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not any(name.startswith("on") for name, _ in parsed.attributes)
    assert "\x1b" not in page and "\u202e" not in page
    assert "<script>alert(1)</script>" in "".join(parsed.text)  # shown to the reader as text


def test_html_escapes_hostile_text_in_every_field() -> None:
    evil = "<b>x</b>"
    finding = Finding(evil, evil, Severity.MEDIUM, evil, why=evil, fix=Fix(evil, evil, evil),
                      endpoint=evil)
    page = to_html(Report(evil, [Endpoint(evil, evil, 1, Service.C2S_STARTTLS, evil)],
                          [finding], grade="B"))
    assert "<b>" not in page
    assert page.count("&lt;b&gt;x&lt;/b&gt;") >= 10


def test_html_is_self_contained() -> None:
    page = to_html(report())
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert not any(name in ("src", "href") for name, _ in parsed.attributes)
    assert "<style>" in page and "default-src 'none'" in page
    assert "TLS 1.0 lacks modern protections." in page and FIX.ejabberd in page
    assert "Scoring rules" in page and "C2" in page


def test_markdown_has_grade_findings_fixes_and_rules() -> None:
    text = to_markdown(report())
    assert "**Grade: C**" in text
    assert "### HIGH: TLS 1.0 accepted" in text
    assert '- Prosody: ssl = { protocol = "tlsv1\\_2+" }' in text
    assert text.index("HIGH") < text.index("NOT\\_TESTED: OCSP")
    # Passed checks are one table row each, not a section.
    assert "| tls.version.tls1\\_3 | TLS 1.3 accepted |" in text
    assert "PASS: TLS 1.3" not in text
    assert "| C1 | Any CRITICAL finding: F. |" in text


def test_markdown_code_fence_cannot_be_closed_by_the_server() -> None:
    text = to_markdown(report("a ```` b"))
    block = next(line for line in text.splitlines() if line.startswith("`````"))
    assert block == "`````text"  # one backtick longer than the server's longest run


def test_markdown_has_no_raw_html_from_the_server() -> None:
    evil = "<img src=x onerror=alert(2)> [link](http://evil.example) `code` *em* | cell"
    r = report()
    r.findings[0] = Finding("tls.x", evil, Severity.HIGH, "o", why=evil, fix=Fix(evil, evil, evil))
    r.findings[1] = Finding("tls.y", evil, Severity.PASS, evil)
    text = to_markdown(r)
    assert "<img" not in text
    assert not re.search(r"[^\\]\]\(http", text)  # no link: its brackets are escaped
    assert " `code`" not in text
    assert text.count("&lt;img src=x onerror=alert(2)&gt; \\[link\\]") == 7
    assert "\\| cell |" in text  # a pipe cannot split the passed-checks table


def test_printable_shows_control_and_bidi_characters() -> None:
    assert printable("a\x1b[31mb\x00\u202ec\n\td") == "a\\x1b[31mb\\x00\\u202ec\n\td"
