"""Configuration checking and the CLI that reads it."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from stockade.core.errors import ConfigError
from stockade.server.config import check_config, load_config, reference_markdown
from tests.conftest import Deployment

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_strict() -> None:
    values = check_config({})
    assert values["tls"]["min_version"] == "1.2"
    assert values["auth"]["scram_iterations"] >= 4096
    assert values["c2s"]["max_stanza_bytes"] == 256 * 1024


@pytest.mark.parametrize(("raw", "message"), [
    ({"c2s": {"max_depth": "deep"}}, "c2s.max_depth: expected int, got str"),
    ({"c2s": {"max_depth": 2}}, "c2s.max_depth: must be between 4 and 256"),
    ({"c2s": {"allow_plain": 1}}, "c2s.allow_plain: expected bool, got int"),
    ({"c2s": {"max_depth": True}}, "c2s.max_depth: expected int, got bool"),
    ({"c2s": {"starttls": True}}, "c2s.starttls: unknown option"),
    ({"c2s": {"starttls_listen": ["localhost"]}}, "c2s.starttls_listen: 'localhost' is not"),
    ({"tls": {"min_version": "1.0"}}, "tls.min_version: must be one of 1.2, 1.3"),
    ({"auth": {"scram_iterations": 1000}}, "auth.scram_iterations: must be between 4096"),
    ({"server": {"domains": []}}, "server.domains: must name at least one domain"),
    ({"server": {"domains": ["a.example", "b.example"]}},
     "server.domains: one domain per server in this release"),
    ({"server": {"domains": ["a b"]}}, "server.domains: 'a b' is not a valid domain"),
    ({"wat": {}}, "unknown section [wat]"),
    ({"c2s": 5}, "[c2s] must be a table"),
])
def test_bad_values_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_config(raw)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(path)


def test_readme_reference_matches_the_schema() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme, "regenerate the README table: make config-reference"


def test_cli_refuses_a_bad_config_with_one_line(deployment: Deployment) -> None:
    deployment.config_path.write_text("[c2s]\nmax_depth = 1\n")
    result = deployment.stockade("config", "check")
    assert result.returncode == 2
    assert result.stderr.strip() == ("stockade: config error: c2s.max_depth: must be between "
                                     "4 and 256")


def test_cli_config_check_ok(deployment: Deployment) -> None:
    result = deployment.stockade("config", "check")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_user_lifecycle_and_scram_only_storage(deployment: Deployment) -> None:
    deployment.add_user("Juliet@localhost", "correct horse battery")
    assert deployment.stockade("user", "list").stdout.split() == ["juliet@localhost"]
    again = deployment.stockade("user", "add", "juliet@localhost", stdin="x" * 10 + "\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    db = deployment.root / "data" / "stockade.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    raw = db.read_bytes() + Path(str(db) + "-wal").read_bytes() if Path(
        str(db) + "-wal").exists() else db.read_bytes()
    assert b"correct horse battery" not in raw  # only SCRAM keys are stored
    with sqlite3.connect(db) as conn:
        hashes = {r[0] for r in conn.execute("SELECT hash_name FROM scram_credentials")}
    assert hashes == {"SHA-1", "SHA-256", "SHA-512"}
    assert deployment.stockade("user", "passwd", "juliet@localhost",
                               stdin="another good one\n").returncode == 0
    assert deployment.stockade("user", "delete", "juliet@localhost").returncode == 0
    assert deployment.stockade("user", "list").stdout.strip() == ""
    gone = deployment.stockade("user", "delete", "juliet@localhost")
    assert gone.returncode == 1 and "does not exist" in gone.stderr


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["user", "add", "not a jid"], "password123\n", "is not a valid JID"),
    (["user", "add", "juliet@elsewhere.example"], "password123\n", "is not served here"),
    (["user", "add", "juliet@localhost/res"], "password123\n", "must be a bare JID"),
    (["user", "add", "juliet@localhost"], "short\n", "at least 8 characters"),
    (["user", "add"], "password123\n", "give the account as user@domain"),
])
def test_cli_bad_arguments(deployment: Deployment, args: list[str], stdin: str,
                           message: str) -> None:
    result = deployment.stockade(*args, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_password_is_never_taken_from_argv(deployment: Deployment) -> None:
    result = deployment.stockade("user", "add", "juliet@localhost", "hunter2hunter2",
                                 stdin="")
    # The extra argument is not a password option: nothing is created from it.
    assert result.returncode != 0
    assert deployment.stockade("user", "list").stdout.strip() == ""


def test_cert_self_signed(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = deployment.stockade("cert", "self-signed", "example.org", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "example.org.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert stat.S_IMODE((out / "example.org.key").stat().st_mode) == 0o600


def test_text_log_fields_cannot_forge_other_fields() -> None:
    import logging

    from stockade.server.logs import TextFormatter
    record = logging.LogRecord("stockade.c2s", logging.INFO, "", 0, "bound", (), None)
    record.jid = "alice@localhost/x user=admin"
    line = TextFormatter().format(record)
    assert line.endswith('bound jid="alice@localhost/x user=admin"')
