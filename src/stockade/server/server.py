"""The server process: configuration, storage, hosts, TLS and listeners wired together."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import secrets
import ssl
from pathlib import Path
from typing import Any

from stockade.core.crypto.certs import (
    fingerprint_sha256,
    first_cert_der,
    is_ca_certificate,
    issued_by_any,
    self_signed,
    tls_server_end_point,
    xmpp_addresses,
)
from stockade.core.errors import ConfigError, JIDError, StreamErrorCondition
from stockade.core.jid import JID
from stockade.core.stream.c2s import C2SPolicy
from stockade.core.xml import ParserLimits
from stockade.io.c2s import C2SConnection, TimeoutSweeper
from stockade.io.http import HTTPListener, HTTPRoute, builtin_routes
from stockade.io.tls import server_context
from stockade.io.websocket import WebSocketConnection
from stockade.server.config import Config
from stockade.server.host import Host
from stockade.server.throttle import FailureWindow
from stockade.storage import open_storage
from stockade.storage.base import Storage

log = logging.getLogger("stockade.server")


def ensure_certificate(config: Config) -> tuple[Path, Path]:
    """The configured certificate, or a self-signed one under data_dir (made once)."""
    tls = config["tls"]
    if tls["cert"] or tls["key"]:
        if not (tls["cert"] and tls["key"]):
            raise ConfigError("tls.cert and tls.key must be given together")
        cert, key = Path(tls["cert"]).expanduser(), Path(tls["key"]).expanduser()
        for name, path in (("tls.cert", cert), ("tls.key", key)):
            if not path.is_file():
                raise ConfigError(f"{name}: {path} does not exist")
        return cert, key
    domain = config.domains[0]
    cert = config.data_dir / f"{domain}.crt"
    key = config.data_dir / f"{domain}.key"
    if not (cert.exists() and key.exists()):
        write_self_signed(domain, cert, key)
        log.warning("generated a self-signed certificate", extra={"path": str(cert)})
    return cert, key


def write_self_signed(domain: str, cert: Path, key: Path) -> None:
    """Write a new self-signed certificate and key (the key readable by the owner only)."""
    cert_pem, key_pem = self_signed(domain, datetime.datetime.now(datetime.UTC))
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.touch(mode=0o600, exist_ok=True)
    key.chmod(0o600)
    key.write_bytes(key_pem)
    cert.write_bytes(cert_pem)


def server_secret(config: Config) -> bytes:
    """A random secret kept under data_dir, stable across restarts (SCRAM mock salts)."""
    path = config.data_dir / "server.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(secrets.token_bytes(32))
    secret = path.read_bytes()
    if len(secret) < 16:
        raise ConfigError(f"{path}: secret too short; delete it to make a new one")
    return secret


def c2s_policy(config: Config, mock_secret: bytes, host: Host | None = None) -> C2SPolicy:
    """The stream policy from the [c2s] section and what ``host``'s modules add."""
    c2s = config["c2s"]
    sasl2 = config["sasl2"]
    mechanisms = C2SPolicy(frozenset()).mechanisms
    if not c2s["allow_plain"]:
        mechanisms = tuple(m for m in mechanisms if m != "PLAIN")
    return C2SPolicy(
        domains=frozenset(config.domains),
        mechanisms=mechanisms,
        max_auth_failures=c2s["max_auth_failures"],
        preauth_limits=ParserLimits(max_stanza_bytes=c2s["max_preauth_stanza_bytes"],
                                    max_depth=min(8, c2s["max_depth"])),
        limits=ParserLimits(max_stanza_bytes=c2s["max_stanza_bytes"],
                            max_depth=c2s["max_depth"]),
        mock_secret=mock_secret,
        mock_iterations=config["auth"]["scram_iterations"],
        sm_resume_max_s=c2s["sm_resume_timeout_s"],
        sm_max_unacked=c2s["sm_max_unacked"],
        bind_features=tuple(host.stream_features["bind"]) if host else (),
        sasl_features=tuple(host.stream_features["sasl"]) if host else (),
        nonzas=frozenset(host.nonzas) if host else frozenset(),
        preauth_iqs=frozenset(host.preauth_iqs) if host else frozenset(),
        sasl2=sasl2["enabled"],
        fast_token_lifetime_s=sasl2["fast_token_lifetime_days"] * 86_400 if sasl2["fast"] else 0,
        bind2_features=frozenset(host.bind2_inline) if host else frozenset(),
        bind2_vars=tuple(dict.fromkeys(r.var or r.ns for r in host.bind2_inline.values()))
        if host else (),
    )


class Server:
    """A running Stockade server."""

    def __init__(self, config: Config, storage: Storage | None = None) -> None:
        self.config = config
        self.storage: Storage = storage or open_storage(str(config.database))
        self.hosts = {domain: Host(domain, config, self.storage) for domain in config.domains}
        self.connections: set[C2SConnection] = set()
        self._per_ip: dict[str, int] = {}  # open connections by client address
        limits = config["limits"]
        self._sweeper = TimeoutSweeper(self.connections, limits["idle_timeout_s"],
                                       limits["stanza_timeout_s"])
        self.tasks: set[asyncio.Future[Any]] = set()  # work connections started
        self._listeners: list[asyncio.Server] = []
        auth = config["auth"]
        self._ip_failures = FailureWindow(auth["max_failures_per_ip"])
        self._account_failures = FailureWindow(auth["max_failures_per_account"])
        self.channel_binding: tuple[str, bytes] | None = None
        self.ssl_context: ssl.SSLContext | None = None
        self.ports: dict[str, list[int]] = {"starttls": [], "direct_tls": [], "http": [],
                                            "https": []}
        # HTTP routes of every HTTP listener; features add theirs before start().
        self.http_routes = builtin_routes()
        for host in self.hosts.values():
            for endpoint in host.http_endpoints:
                self.http_routes.add(endpoint.method, endpoint.path,
                                     HTTPRoute(endpoint.handler, endpoint.max_body_bytes))

    def admit_connection(self, conn: C2SConnection) -> bool:
        """Count a new client connection against its address; False if over the limit."""
        count = self._per_ip.get(conn.peer, 0)
        if count >= self.config["limits"]["max_connections_per_ip"]:
            return False
        self._per_ip[conn.peer] = count + 1
        self.connections.add(conn)
        return True

    def release_connection(self, conn: C2SConnection) -> None:
        """A connection closed (admitted or not)."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        left = self._per_ip.get(conn.peer, 1) - 1
        if left > 0:
            self._per_ip[conn.peer] = left
        else:
            self._per_ip.pop(conn.peer, None)

    def host_for(self, domain: str) -> Host:
        """The host serving ``domain`` (the stream core only accepts hosted domains)."""
        return self.hosts[domain]

    async def start(self) -> None:
        """Open storage, build the TLS context and listen."""
        await self.storage.open()
        cert, key = ensure_certificate(self.config)
        self.ssl_context = await self._tls_context(cert, key)
        # RFC 5929 tls-server-end-point: computed once, the same for every connection.
        self.channel_binding = ("tls-server-end-point",
                                tls_server_end_point(first_cert_der(cert.read_bytes())))
        for host in self.hosts.values():
            await host.start()
        # One domain per server (config.py), so its host's modules shape the policy.
        policy = c2s_policy(self.config, server_secret(self.config),
                            next(iter(self.hosts.values())))
        loop = asyncio.get_running_loop()
        for kind, direct in (("starttls", False), ("direct_tls", True)):
            for address in self.config["c2s"][f"{kind}_listen"]:
                host, _, port = address.rpartition(":")
                listener = await loop.create_server(
                    functools.partial(C2SConnection, self, policy, self.ssl_context,
                                      direct_tls=direct),
                    host.strip("[]"), int(port), reuse_address=True)
                self._listeners.append(listener)
                self.ports[kind].extend(s.getsockname()[1] for s in listener.sockets)
        await self._listen_http(policy)
        self._sweeper.start()
        log.info("listening", extra={"ports": self.ports, "domains": list(self.hosts)})

    async def _listen_http(self, policy: C2SPolicy) -> None:
        """HTTP listeners: host-meta and XMPP over WebSocket (RFC 7395), plain on loopback
        and over TLS."""
        http = self.config["http"]
        loop = asyncio.get_running_loop()
        assert self.ssl_context is not None
        for kind, tls in (("http", False), ("https", True)):
            for address in http["listen" if kind == "http" else "tls_listen"]:
                host, _, port = address.rpartition(":")
                info = HTTPListener(tls=tls, websocket_path=http["websocket_path"],
                                    allowed_origins=http["allowed_origins"],
                                    public_url=http["public_url"],
                                    domain=self.config.domains[0], routes=self.http_routes)
                # Not serving until the bound address is known: whether plain logins are
                # allowed depends on it.
                listener = await loop.create_server(
                    functools.partial(WebSocketConnection, self, policy, self.ssl_context,
                                      info),
                    host.strip("[]"), int(port), reuse_address=True, start_serving=False)
                self._listeners.append(listener)
                info.bound(listener.sockets[0].getsockname())
                if not tls and not all(HTTPListener.is_loopback_address(s.getsockname())
                                       for s in listener.sockets):
                    # SECURITY: config refuses such addresses; a name such as "localhost"
                    # could still resolve elsewhere, and plain logins must stay local.
                    raise ConfigError(f"http.listen: {address} is not a loopback address")
                await listener.start_serving()
                self.ports[kind].extend(s.getsockname()[1] for s in listener.sockets)

    async def _tls_context(self, cert: Path, key: Path) -> ssl.SSLContext:
        ca = self.config["tls"]["client_ca"]
        pinned = await self._registered_client_certs()
        return server_context(cert, key, min_version=self.config["tls"]["min_version"],
                              client_cas=[Path(ca)] if ca else [], pinned_client_certs=pinned)

    async def _registered_client_certs(self) -> list[bytes]:
        certs_dir = self.config.data_dir / "client-certs"
        if not certs_dir.is_dir():
            return []
        pinned = []
        for path in sorted(certs_dir.glob("*.pem")):
            der = first_cert_der(path.read_bytes())
            if is_ca_certificate(der):
                # SECURITY: a pinned CA would let its owner mint certificates for anyone.
                log.warning("ignoring a registered CA certificate", extra={"path": str(path)})
                continue
            pinned.append(der)
        return pinned

    async def stop(self) -> None:
        """Close listeners and connections, then storage."""
        self._sweeper.stop()
        for listener in self._listeners:
            listener.close()
        for conn in list(self.connections):
            try:
                conn.terminate(StreamErrorCondition.SYSTEM_SHUTDOWN)
            except Exception:
                log.exception("closing a connection failed", extra={"peer": conn.peer})
        for listener in self._listeners:
            await listener.wait_closed()
        for host in self.hosts.values():
            await host.end_hibernated()
        await self._finish_pending_work()
        for host in self.hosts.values():
            await host.stop()
        await self.storage.close()

    async def _finish_pending_work(self, timeout_s: float = 10.0) -> None:
        """Let stanzas already read finish (offline storage writes) before storage closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            pending = list(self.tasks)
            for host in self.hosts.values():
                pending.extend(host.tasks)
                pending.extend(host.offline.tasks)
            pending = [t for t in pending if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=deadline - loop.time())
        log.warning("shutdown: work still pending after the timeout")

    # ------------------------------------------------------------------ login policy
    def is_login_throttled(self, ip: str, username: str, now: float) -> bool:
        """Whether failed logins from this IP or on this account hit their limits."""
        return (self._ip_failures.is_blocked(ip, now)
                or self._account_failures.is_blocked(username, now))

    def record_login_failure(self, ip: str, username: str | None, now: float) -> None:
        """Count a failed login against the IP and (if known) the account."""
        self._ip_failures.record(ip, now)
        if username:
            self._account_failures.record(username, now)

    async def account_for_certificate(self, der: bytes | None, domain: str,
                                      authzid: str | None) -> str | None:
        """XEP-0178: the account a verified client certificate logs into, or None.

        A certificate registered to an account (by fingerprint) names that account; one
        issued by tls.client_ca names it by XmppAddr. An authzid must agree.
        """
        if der is None:
            return None
        username = await self.storage.account_for_fingerprint(fingerprint_sha256(der))
        ca_file = self.config["tls"]["client_ca"]
        if username is None and ca_file:
            # SECURITY: the TLS layer also trusts registered certificates, so an XmppAddr
            # counts only on a certificate that tls.client_ca itself issued.
            ca_pem = await asyncio.to_thread(Path(ca_file).read_bytes)
            if issued_by_any(der, ca_pem):
                username = _username_from_xmpp_addr(xmpp_addresses(der), domain)
        if username is None or not await self.storage.account_exists(username):
            return None
        if authzid:
            try:
                wanted = JID.parse(authzid)
            except JIDError:
                return None
            if wanted != JID(username, domain, None):
                return None
        return username


def _username_from_xmpp_addr(addresses: list[str], domain: str) -> str | None:
    for address in addresses:
        try:
            jid = JID.parse(address)
        except JIDError:
            continue
        if jid.domain == domain and jid.local is not None and jid.resource is None:
            return jid.local
    return None
