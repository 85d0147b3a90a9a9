"""Helpers for end-to-end tests with the real third-party client slixmpp.

Every client verifies the server's certificate against the test CA, never falls back to
plaintext, and tries exactly one way in: STARTTLS (the default) or direct TLS (XEP-0368).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath
from tests.conftest import deployment_config

if TYPE_CHECKING:
    import trustme
    from tests.conftest import Deployment

STEP_TIMEOUT = 10.0  # seconds for any single network step; tests have 60 s in all
NS_CLIENT = "jabber:client"
ALICE, BOB = "alice@localhost", "bob@localhost"
ACCOUNTS = {ALICE: "alice's secret", BOB: "bob's secret"}
_TEMPLATES: dict[str, Any] = {}


def registered_accounts() -> tuple[Callable[..., Path], Callable[..., Deployment]]:
    """Fixtures ``accounts_template`` and an overriding ``deployment`` for a test module:
    alice and bob are created once per session with the real CLI, and every test's server
    starts on a copy of that data directory (two CLI runs per test would dominate the
    run time). Use: ``accounts_template, deployment = registered_accounts()``."""

    @pytest.fixture(scope="session")
    def accounts_template(tmp_path_factory: pytest.TempPathFactory,
                          ca: trustme.CA) -> Path:
        if _TEMPLATES.get("ca") is not ca:  # shared by every module of the session
            template, _raw = deployment_config(tmp_path_factory.mktemp("accounts"), ca)
            for jid, password in ACCOUNTS.items():
                template.add_user(jid, password)
            _TEMPLATES.update(ca=ca, data=template.root / "data")
        return _TEMPLATES["data"]

    @pytest.fixture
    def deployment(deployment: Deployment, accounts_template: Path) -> Deployment:
        shutil.copytree(accounts_template, deployment.root / "data")
        return deployment

    return accounts_template, deployment


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that queues what it receives, for tests to await."""

    def __init__(self, jid: str, password: str, ca_file: Path, *, direct_tls: bool = False,
                 sasl_mech: str | None = None) -> None:
        super().__init__(jid, password, sasl_mech=sasl_mech)
        self.ssl_context = ssl.create_default_context(cafile=str(ca_file))
        # One way in only, so a test really exercises what it names.
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        self.whitespace_keepalive = False
        # Subscriptions are decided by each test, not by slixmpp's defaults.
        self.auto_authorize = None
        self.auto_subscribe = False
        for plugin in ("xep_0030", "xep_0199", "xep_0203"):
            self.register_plugin(plugin)

        self.messages: asyncio.Queue[slixmpp.Message] = asyncio.Queue()
        self.message_errors: asyncio.Queue[slixmpp.Message] = asyncio.Queue()
        self.presences: asyncio.Queue[slixmpp.Presence] = asyncio.Queue()
        self.roster_pushes: asyncio.Queue[slixmpp.Iq] = asyncio.Queue()
        self.auth_failures: list[Any] = []
        self.stream_errors: list[Any] = []
        self.received = bytearray()  # the raw (decrypted) stream from the server

        self.register_handler(Callback(
            "test: any message", MatchXPath(f"{{{NS_CLIENT}}}message"), self._on_message))
        self.add_event_handler("presence", self.presences.put_nowait)
        self.register_handler(Callback(
            "test: roster push", StanzaPath("iq@type=set/roster"),
            self.roster_pushes.put_nowait))
        self.add_event_handler("failed_auth", self.auth_failures.append)
        self.add_event_handler("stream_error", self.stream_errors.append)

    def _on_message(self, msg: slixmpp.Message) -> None:
        if msg["type"] == "error":
            self.message_errors.put_nowait(msg)
        else:
            self.messages.put_nowait(msg)

    def data_received(self, data: bytes | str) -> None:
        """Keep a copy of everything the server sends (after TLS: the plaintext)."""
        self.received += data.encode() if isinstance(data, str) else data
        super().data_received(data)

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS object of the live connection, or None when not on TLS."""
        if self.transport is None:
            return None
        return self.transport.get_extra_info("ssl_object")

    @property
    def mechanism(self) -> str | None:
        """The SASL mechanism slixmpp last authenticated (or tried) with."""
        mech = self.plugin["feature_mechanisms"].mech
        return mech.name if mech is not None else None


async def next_item(queue: asyncio.Queue[Any], what: str,
                    within: float = STEP_TIMEOUT) -> Any:
    """The next item of ``queue``, failing clearly if nothing arrives in time."""
    try:
        return await asyncio.wait_for(queue.get(), within)
    except TimeoutError:
        raise AssertionError(f"timed out after {within}s waiting for {what}") from None


async def next_matching(queue: asyncio.Queue[Any], what: str, predicate: Any,
                        within: float = STEP_TIMEOUT) -> Any:
    """The next item of ``queue`` for which ``predicate`` is true (others are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        item = await next_item(queue, what, left)
        if predicate(item):
            return item


async def assert_empty(queue: asyncio.Queue[Any], what: str, wait: float = 0.3) -> None:
    """Nothing (more) arrives on ``queue`` within ``wait`` seconds."""
    await asyncio.sleep(wait)
    assert queue.empty(), f"unexpected {what}: {queue.get_nowait()}"


async def login(client: Client, port: int, within: float = STEP_TIMEOUT) -> str:
    """Connect and wait for the outcome: 'session_start', 'failed_auth', 'disconnected',
    'connection_failed' or 'timeout'. On anything but 'session_start' the connection
    attempt is stopped (slixmpp would otherwise retry other mechanisms or reconnect)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[str] = loop.create_future()

    def settle(name: str) -> Any:
        def handler(_event: Any) -> None:
            if not outcome.done():
                outcome.set_result(name)
        return handler

    handlers = {name: settle(name) for name in
                ("session_start", "failed_auth", "connection_failed", "disconnected")}
    for name, handler in handlers.items():
        client.add_event_handler(name, handler)
    try:
        client.connect(host="127.0.0.1", port=port)
        try:
            result = await asyncio.wait_for(asyncio.shield(outcome), within)
        except TimeoutError:
            result = "timeout"
    finally:
        for name, handler in handlers.items():
            client.del_event_handler(name, handler)
    if result != "session_start":
        await disconnect(client)
    return result


async def connect_and_start(client: Client, port: int, *, roster: bool = False,
                            presence: bool = False, within: float = STEP_TIMEOUT) -> None:
    """Log in and bind; optionally fetch the roster and send initial presence."""
    result = await login(client, port, within)
    assert result == "session_start", (
        f"{client.requested_jid} could not log in: {result} "
        f"(auth failures: {[str(f) for f in client.auth_failures]}, "
        f"stream errors: {[str(e) for e in client.stream_errors]})")
    if roster:
        await client.get_roster(timeout=within)
    if presence:
        client.send_presence()


async def disconnect(client: Client, within: float = STEP_TIMEOUT) -> None:
    """Close the stream cleanly and wait until the TCP connection is gone."""
    client.cancel_connection_attempt()
    if client.transport is None:
        return
    done = asyncio.ensure_future(client.wait_until("disconnected", within))
    await asyncio.sleep(0)
    client.disconnect(wait=2.0)
    try:
        await done
    except TimeoutError:
        client.abort()
        raise AssertionError(f"{client.boundjid} did not disconnect in {within}s") from None


async def disconnect_all(clients: Iterable[Client]) -> None:
    """Disconnect every client, even if some already are (for ``finally`` blocks)."""
    for client in clients:
        with contextlib.suppress(AssertionError):
            await disconnect(client)


async def add_users(deployment: Deployment, *accounts: tuple[str, str]) -> None:
    """Create accounts with the real CLI without blocking the server's event loop."""
    # Concurrent CLI runs are fine: the database is in WAL mode with a busy timeout.
    await asyncio.gather(*(asyncio.to_thread(deployment.add_user, jid, password)
                           for jid, password in accounts))


async def cli(deployment: Deployment, *args: str, stdin: str | None = None) -> str:
    """Run the real ``stockade`` CLI off the event loop; return stderr+stdout, assert rc 0."""
    result = await asyncio.to_thread(deployment.stockade, *args, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr
