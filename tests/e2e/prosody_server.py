"""A real Prosody (Debian's package) on loopback, for auditing an independent server.

Each test gets its own Prosody process in the foreground (``prosody -F``), with a config,
data directory, pidfile, log and certificate of its own under ``tmp_path``, listening only
on 127.0.0.1 on ports the OS picked: a system Prosody the package may have started on
5222/5269 is never involved. s2s is off; one VirtualHost, "localhost".

Example::

    async with running_prosody(tmp_path, ca, STRICT) as prosody:
        endpoint = prosody.starttls_endpoint  # audit it
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from stockade.core.audit.model import Endpoint, Service

PROSODY = shutil.which("prosody")
HOST = "127.0.0.1"
DOMAIN = "localhost"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Security:
    """The settings a test configuration varies (Prosody 0.12 option values, as Lua)."""

    name: str
    require_encryption: bool
    allow_unencrypted_plain_auth: bool
    ssl_extra: str  # more fields of the global ``ssl = { ... }`` table


# Prosody's recommended hardening: STARTTLS required, no PLAIN in the clear, TLS 1.2+.
STRICT = Security("strict", require_encryption=True, allow_unencrypted_plain_auth=False,
                  ssl_extra='protocol = "tlsv1_2+";')
# Everything this Prosody and this OpenSSL can still be talked into: TLS 1.0 and every
# cipher OpenSSL has (CBC included; 3DES and RC4 are not even compiled into Debian's
# OpenSSL 3, so they cannot be offered), security level 0. Anonymous and NULL suites are
# left out: no real deployment has them, and they would hide the findings under test.
WEAK = Security("weak", require_encryption=False, allow_unencrypted_plain_auth=True,
                ssl_extra='protocol = "tlsv1+"; ciphers = "ALL:!aNULL:!eNULL:@SECLEVEL=0";')


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nobody listens on now (the OS picks them; all are
    held open together so it cannot pick one twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in sockets]


def lua_bool(value: bool) -> str:
    return "true" if value else "false"


def render_config(root: Path, security: Security, starttls_port: int,
                  direct_tls_port: int) -> str:
    """The whole Prosody config: nothing comes from /etc/prosody."""
    cert, key = root / "certs" / "localhost.crt", root / "certs" / "localhost.key"
    lines = [
        # mod_posix refuses to start as root unless told; the tests may run as root.
        f"run_as_root = {lua_bool(os.geteuid() == 0)}",
        f'data_path = "{root / "data"}"',
        f'pidfile = "{root / "prosody.pid"}"',
        f'log = {{ {{ levels = {{ min = "info" }}, to = "file", '
        f'filename = "{root / "prosody.log"}" }} }}',
        f'certificates = "{root / "certs"}"',
        'interfaces = { "127.0.0.1" }',
        f"c2s_ports = {{ {starttls_port} }}",
        f"c2s_direct_tls_ports = {{ {direct_tls_port} }}",
        "s2s_ports = { }",
        'modules_disabled = { "s2s" }',
        # Debian's default set, trimmed to what a c2s audit touches.
        'modules_enabled = { "tls", "saslauth", "disco", "ping", "version", "roster" }',
        'authentication = "internal_hashed"',
        f"c2s_require_encryption = {lua_bool(security.require_encryption)}",
        f"allow_unencrypted_plain_auth = {lua_bool(security.allow_unencrypted_plain_auth)}",
        f'ssl = {{ certificate = "{cert}"; key = "{key}"; {security.ssl_extra} }}',
        f'VirtualHost "{DOMAIN}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class ProsodyServer:
    """A running Prosody: its ports, files and process."""

    root: Path
    starttls_port: int
    direct_tls_port: int
    process: asyncio.subprocess.Process

    @property
    def log_path(self) -> Path:
        return self.root / "prosody.log"

    @property
    def starttls_endpoint(self) -> Endpoint:
        return Endpoint(DOMAIN, HOST, self.starttls_port, Service.C2S_STARTTLS)

    @property
    def direct_tls_endpoint(self) -> Endpoint:
        return Endpoint(DOMAIN, HOST, self.direct_tls_port, Service.C2S_DIRECT_TLS)

    def log_tail(self, lines: int = 20) -> str:
        """The end of Prosody's log and console output, for failure messages."""
        texts = [p.read_text(errors="replace") for p in (self.log_path, self.root / "console.txt")
                 if p.exists()]
        return "\n".join("\n".join(t.splitlines()[-lines:]) for t in texts)


def write_files(root: Path, ca: trustme.CA, security: Security, starttls_port: int,
                direct_tls_port: int) -> Path:
    """Certificate, key, data directory and config under ``root``; the config's path."""
    certs = root / "certs"
    certs.mkdir(parents=True)
    (root / "data").mkdir()
    issued = ca.issue_cert(DOMAIN)
    issued.cert_chain_pems[0].write_to_path(str(certs / "localhost.crt"))
    # Prosody runs as this user, so the key only has to be readable by us.
    issued.private_key_pem.write_to_path(str(certs / "localhost.key"))
    (certs / "localhost.key").chmod(0o600)
    config = root / "prosody.cfg.lua"
    config.write_text(render_config(root, security, starttls_port, direct_tls_port))
    return config


async def port_accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_until_listening(server: ProsodyServer) -> None:
    """Return when both ports accept; raise (with Prosody's log) if it exits or stalls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while True:
        if server.process.returncode is not None:
            raise RuntimeError(f"prosody exited with {server.process.returncode}:\n"
                               + server.log_tail())
        if (await port_accepts(server.starttls_port)
                and await port_accepts(server.direct_tls_port)):
            return
        if loop.time() > deadline:
            raise RuntimeError(f"prosody did not listen within {START_TIMEOUT_S:g} s:\n"
                               + server.log_tail())
        await asyncio.sleep(0.05)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (Prosody shuts down cleanly), then SIGKILL if it does not exit in time."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def running_prosody(tmp_path: Path, ca: trustme.CA,
                          security: Security) -> AsyncIterator[ProsodyServer]:
    """Start Prosody with ``security``, wait until it listens, stop it afterwards."""
    if PROSODY is None:
        raise RuntimeError("prosody is not installed")
    root = tmp_path / f"prosody-{security.name}"
    starttls_port, direct_tls_port = free_ports(2)
    config = write_files(root, ca, security, starttls_port, direct_tls_port)
    with (root / "console.txt").open("wb") as console:
        process = await asyncio.create_subprocess_exec(
            PROSODY, "-F", "--config", str(config), stdin=asyncio.subprocess.DEVNULL,
            stdout=console, stderr=asyncio.subprocess.STDOUT)
    server = ProsodyServer(root, starttls_port, direct_tls_port, process)
    try:
        await wait_until_listening(server)
        yield server
    finally:
        await stop(process)
