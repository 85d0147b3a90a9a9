"""Shared fixtures: a throwaway CA, a real Stockade server on loopback, CLI account creation."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from stockade.server.config import Config, check_config
from stockade.server.server import Server

DOMAIN = "localhost"
# Test-support modules (tlsprobe, rawxmpp, ...) are imported by plain name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A CA that issues the server's certificate (clients verify against it)."""
    return trustme.CA()


@dataclass
class Deployment:
    """Paths of a test server's files."""

    root: Path
    config_path: Path
    ca_file: Path

    def stockade(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real ``stockade`` CLI against this deployment's configuration."""
        return subprocess.run(
            [sys.executable, "-m", "stockade.cli.main", "--config", str(self.config_path),
             *args],
            input=stdin, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONWARNINGS": "error"}, check=False,
        )

    def add_user(self, jid: str, password: str) -> None:
        """Create an account with the CLI, password on stdin (as an operator would)."""
        result = self.stockade("user", "add", jid, stdin=password + "\n")
        assert result.returncode == 0, result.stderr


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, raw: dict[str, dict[str, object]]) -> None:
    """Write a TOML config file (the stdlib reads TOML but does not write it)."""
    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def deployment_config(tmp_path: Path, ca: trustme.CA,
                      overrides: dict[str, dict[str, object]] | None = None,
                      ) -> tuple[Deployment, dict[str, dict[str, object]]]:
    """Files and raw configuration for a server on ephemeral loopback ports."""
    cert = ca.issue_cert(DOMAIN)
    cert_file, key_file, ca_file = (tmp_path / "server.crt", tmp_path / "server.key",
                                    tmp_path / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        with cert_file.open("ab") as f:
            f.write(pem.bytes())
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    raw: dict[str, dict[str, object]] = {
        "server": {"domains": [DOMAIN], "data_dir": str(tmp_path / "data")},
        "c2s": {"starttls_listen": ["127.0.0.1:0"], "direct_tls_listen": ["127.0.0.1:0"]},
        "http": {"listen": ["127.0.0.1:0"], "tls_listen": ["127.0.0.1:0"]},
        "tls": {"cert": str(cert_file), "key": str(key_file)},
    }
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    config_path = tmp_path / "stockade.toml"
    write_config(config_path, raw)
    return Deployment(tmp_path, config_path, ca_file), raw


@pytest.fixture
def deployment(tmp_path: Path, ca: trustme.CA) -> Deployment:
    """A configured (not yet running) deployment in a temporary directory."""
    return deployment_config(tmp_path, ca)[0]


@pytest.fixture
async def server(deployment: Deployment) -> AsyncIterator[Server]:
    """A running server; ``server.ports["starttls"][0]`` is its STARTTLS port."""
    from stockade.server.config import load_config

    srv = Server(load_config(deployment.config_path))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def make_config(raw: dict[str, dict[str, object]]) -> Config:
    """A checked Config from a raw dict (for unit tests)."""
    return Config(check_config(raw))
