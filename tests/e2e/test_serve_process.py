"""`stockade serve` as an operator runs it: a separate process on uvloop, its own
self-signed certificate, accounts from the CLI, a slixmpp client, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import slixmpp
from tests.conftest import Deployment, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
async def test_serve_generates_a_certificate_and_serves_slixmpp(tmp_path: Path) -> None:
    data = tmp_path / "var"
    starttls, direct = free_port(), free_port()
    config = tmp_path / "stockade.toml"
    write_config(config, {
        "server": {"data_dir": str(data)},
        "c2s": {"starttls_listen": [f"127.0.0.1:{starttls}"],
                "direct_tls_listen": [f"127.0.0.1:{direct}"]},
    })
    deployment = Deployment(tmp_path, config, data / "localhost.crt")
    deployment.add_user("alice@localhost", "alice-password")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stockade.cli.main", "serve", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "error"})
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(_line_with, proc.stderr, "serving"),
                                      20)
        assert f"STARTTLS on [{starttls}]" in line and f"direct TLS on [{direct}]" in line
        assert (data / "localhost.key").stat().st_mode & 0o077 == 0
        assert (data / "stockade.db").exists()

        client = slixmpp.ClientXMPP("alice@localhost/laptop", "alice-password")
        client.ssl_context = ssl.create_default_context(cafile=str(data / "localhost.crt"))
        client.enable_direct_tls = False
        got: asyncio.Queue[slixmpp.Message] = asyncio.Queue()
        client.add_event_handler("message", got.put_nowait)
        started = asyncio.get_running_loop().create_future()
        client.add_event_handler("session_start", lambda _e: started.set_result(True))
        client.add_event_handler("failed_auth", lambda _e: started.set_exception(
            AssertionError("authentication failed")))
        client.connect(host="127.0.0.1", port=starttls)
        await asyncio.wait_for(started, 20)
        client.send_presence()
        client.send_message(mto="alice@localhost/laptop", mbody="note to self", mtype="chat")
        msg = await asyncio.wait_for(got.get(), 10)
        assert msg["body"] == "note to self"
        assert str(msg["from"]) == "alice@localhost/laptop"
        client.disconnect()
        await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == 0


def _line_with(stream: object, marker: str) -> str:
    for line in stream:  # type: ignore[attr-defined]
        if marker in line:
            return str(line)
    raise AssertionError(f"server exited without printing {marker!r}")
