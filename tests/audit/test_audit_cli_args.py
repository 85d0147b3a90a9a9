"""``stockade audit`` on the command line with fake probes: argument errors, output formats,
exit statuses; and the terminal report with hostile server text."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from stockade.audit import runner
from stockade.audit.terminal import ProgressDisplay, print_report
from stockade.cli.main import main
from stockade.core.audit.model import Endpoint, Finding, Fix, Report, Service, Severity


def fake_probes(severity: Severity) -> list[runner.Probe]:
    def make(area: str, check: str, sev: Severity) -> runner.Probe:
        async def run(endpoint: Endpoint, timeout_s: float) -> list[Finding]:
            return [Finding(f"{area}.{check}", check, sev, f"seen on {endpoint.port}",
                            why="because", fix=Fix("s", "p", "e"))]
        return runner.Probe(area, run)
    return [make("tls", "version.tls1_3", Severity.PASS), make("cert", "chain", severity),
            make("stream", "starttls", Severity.PASS)]


@pytest.fixture
def logins() -> list[runner.AccountLogin | None]:
    """The ``account`` the CLI built its probes with, once per audit (see ``probes``)."""
    return []


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch,
           logins: list[runner.AccountLogin | None]) -> Iterator[list[str | None]]:
    """The CLI's probes replaced by fakes; yields the ca_file values they were built with.
    A ``cert.chain`` finding is HIGH when the CA file's name contains "weak"."""
    seen: list[str | None] = []

    def fake(ca_file: str | None = None,
             account: runner.AccountLogin | None = None) -> list[runner.Probe]:
        seen.append(ca_file)
        logins.append(account)
        weak = ca_file is not None and "weak" in ca_file
        return fake_probes(Severity.HIGH if weak else Severity.PASS)

    monkeypatch.setattr(runner, "default_probes", fake)
    yield seen


@pytest.mark.parametrize(("argv", "message"), [
    (["example.org:x"], "'x' is not a port number"),
    (["example.org", "--port", "99999"], "'99999' is not a port number"),
    (["example.org:5222", "--port", "5223"], "--port says 5223"),
    (["exa mple.org:5222"], "not a valid domain name"),
    (["example.org", "--direct-tls"], "--direct-tls needs host:port"),
    (["example.org:5222", "--timeout", "soon"], "--timeout 'soon'"),
    (["example.org:5222", "--timeout", "0"], "--timeout '0'"),
    (["example.org:5222", "--timeout", "nan"], "--timeout 'nan'"),
    (["example.org:5222", "--ca-file", "/nonexistent/ca.pem"], "no such file"),
    (["example.org:5222", "--fail-below", "Z"], "--fail-below must be one of A+, A"),
    (["example.org:5222", "--account", "a@example.org"], "go together"),
    (["example.org:5222", "--password-file", "/nonexistent/pw"], "go together"),
    (["example.org:5222", "--account", "a@example.org", "--password-file",
      "/nonexistent/pw"], "--password-file /nonexistent/pw: cannot read"),
    (["example.org:5222", "--account", "example.org", "--password-file", "/dev/null"],
     "give the account as user@domain"),
    (["example.org:5222", "--account", "a@example.org", "--password-file", "/dev/null"],
     "the first line is empty"),
    (["example.org:5222", "--s2s", "--account", "a@example.org", "--password-file",
      "/dev/null"], "not with --s2s"),
    (["127.0.0.1:5222", "--domain", "example.org:5222"], "without a port"),
    (["127.0.0.1:5222", "--domain", "bad domain"], "not a valid domain name"),
])
def test_bad_arguments_are_one_line_errors_with_exit_1(
        argv: list[str], message: str, probes: list[str | None],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("stockade: ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert probes == []  # refused before anything was probed


def test_argparse_refuses_conflicting_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "example.org:5222", "--c2s", "--s2s"])
    assert exit_info.value.code == 2  # argparse's own usage errors keep its exit status
    assert "not allowed with argument" in capsys.readouterr().err


def test_json_report_on_stdout(probes: list[str | None], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not read by the fake probes")
    assert main(["audit", "127.0.0.1:5223", "--direct-tls", "--json",
                 "--ca-file", str(ca_file), "--domain", "Example.org"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["grade"] == "A+"
    assert data["endpoints"][0]["service"] == "c2s-direct-tls"
    assert (data["endpoints"][0]["domain"], data["endpoints"][0]["host"]) == \
        ("example.org", "127.0.0.1")
    assert [f["observed"] for f in data["findings"]] == ["seen on 5223"] * 3
    assert probes == [str(ca_file)]


def test_account_password_is_read_from_the_file_and_never_printed(
        probes: list[str | None], logins: list[runner.AccountLogin | None], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret-first-line\nsecond line is ignored\n", encoding="utf-8")
    assert main(["audit", "127.0.0.1:5222", "--json", "--account", "a@example.org/phone",
                 "--password-file", str(password)]) == 0
    captured = capsys.readouterr()
    (login,) = logins
    assert login is not None
    assert (login.jid, login.password) == ("a@example.org", "s3cret-first-line")
    assert "s3cret" not in captured.out + captured.err + repr(login)


def test_no_account_no_login(probes: list[str | None],
                             logins: list[runner.AccountLogin | None]) -> None:
    assert main(["audit", "127.0.0.1:5222", "--json"]) == 0
    assert logins == [None]


def test_html_report_is_written_and_the_terminal_report_printed(
        probes: list[str | None], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "report.html"
    assert main(["audit", "127.0.0.1:5222", "--s2s", "--html", str(page)]) == 0
    captured = capsys.readouterr()
    assert "Grade" in captured.out and "A+" in captured.out
    assert f"wrote {page}" in captured.err
    assert "<!DOCTYPE html>" in page.read_text() and "s2s-starttls" in page.read_text()


def test_markdown_report(probes: list[str | None], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "127.0.0.1:5222", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("# XMPP security audit of 127.0.0.1:5222")


def test_fail_below_sets_exit_3_only_when_the_grade_is_below(
        probes: list[str | None], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weak = tmp_path / "weak-ca.pem"
    weak.write_text("")
    assert main(["audit", "127.0.0.1:5222", "--json", "--ca-file", str(weak),
                 "--fail-below", "B"]) == 3
    assert json.loads(capsys.readouterr().out)["grade"] == "C"
    assert main(["audit", "127.0.0.1:5222", "--json", "--ca-file", str(weak),
                 "--fail-below", "C"]) == 0
    assert main(["audit", "127.0.0.1:5222", "--json", "--ca-file", str(weak)]) == 0


def test_terminal_report_shows_server_text_literally() -> None:
    hostile = "[bold red]fake PASS[/] \x1b[2J\x1b]0;pwned\x07"
    finding = Finding("stream.header", "Banner", Severity.MEDIUM, hostile, why="w",
                      fix=Fix("stockade fix", "prosody fix", "ejabberd fix"), endpoint="e1")
    report = Report("example.org", [Endpoint("example.org", "h", 5222, Service.C2S_STARTTLS)],
                    [finding], grade="B", rules_version="1")
    out = io.StringIO()
    print_report(report, Console(file=out, width=200, force_terminal=True))
    text = out.getvalue()
    assert "[bold red]fake PASS[/]" in text  # not taken as markup
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text
    assert "\\x1b[2J" in text
    assert "prosody fix" in text and "MEDIUM" in text


def test_progress_is_off_when_not_a_terminal() -> None:
    out = io.StringIO()
    with ProgressDisplay(out) as progress:
        progress.begin(3)
        progress.advance("tls checks on h:5222")
    assert not progress.enabled
    assert out.getvalue() == ""
