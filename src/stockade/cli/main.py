"""``stockade`` command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import getpass
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stockade.core.audit.model import Report
from stockade.core.crypto.certs import fingerprint_sha256, first_cert_der, is_ca_certificate
from stockade.core.errors import ConfigError, JIDError, StockadeError
from stockade.core.jid import JID
from stockade.core.sasl import SCRAM_HASHES, derive_credential, prepare_password
from stockade.core.sasl.credentials import ScramCredential
from stockade.server.config import Config, load_config
from stockade.server.server import Server, c2s_policy, ensure_certificate, write_self_signed
from stockade.storage import AccountExists, AccountNotFound, Storage, open_storage

if TYPE_CHECKING:
    from stockade.audit.runner import AccountLogin

MIN_PASSWORD_CHARS = 8


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockade", description="Stockade XMPP server")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, dest="sub_config", help=argparse.SUPPRESS)

    user = sub.add_parser("user", help="manage accounts")
    user.add_argument("action", choices=["add", "passwd", "delete", "list", "cert", "tokens"])
    user.add_argument("jid", nargs="?", help="user@domain (list: a domain, optional; "
                      "tokens: list or revoke, then user@domain)")
    user.add_argument("extra", nargs="?", metavar="cert_file|jid",
                      help="cert: PEM client certificate for SASL EXTERNAL; tokens: the account")
    user.add_argument("--config", type=Path, dest="sub_config", help=argparse.SUPPRESS)

    cert = sub.add_parser("cert", help="certificates")
    cert.add_argument("action", choices=["self-signed"])
    cert.add_argument("domain")
    cert.add_argument("--out", type=Path, default=None, help="directory (default: data_dir)")
    cert.add_argument("--config", type=Path, dest="sub_config", help=argparse.SUPPRESS)

    config = sub.add_parser("config", help="configuration")
    config.add_argument("action", choices=["check"])
    config.add_argument("--config", type=Path, dest="sub_config", help=argparse.SUPPRESS)
    _audit_parser(sub)
    return parser


def _audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser(
        "audit", help="grade the transport security of any XMPP server",
        description="Probe an XMPP server's STARTTLS/direct TLS, certificates and stream "
                    "behaviour and grade it (A+ to F). Exit status: 0 when a grade was "
                    "computed (whatever the grade), 1 for bad arguments or a target without "
                    "endpoints, 3 when --fail-below is given and the grade is below it.")
    audit.add_argument("target", help="a domain (DNS SRV, else A/AAAA) or host:port")
    audit.add_argument("--port", metavar="N", help="test host:N instead of looking up SRV")
    service = audit.add_mutually_exclusive_group()
    service.add_argument("--c2s", action="store_true", help="client service (the default)")
    service.add_argument("--s2s", action="store_true", help="server-to-server service")
    audit.add_argument("--domain", metavar="D",
                       help="the XMPP domain (stream 'to', SNI, certificate name) when "
                            "host:port does not name it, e.g. an IP address")
    audit.add_argument("--direct-tls", action="store_true",
                       help="host:port speaks TLS from the first byte (XEP-0368); "
                            "default: STARTTLS")
    output = audit.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON report on stdout")
    output.add_argument("--markdown", action="store_true", help="Markdown report on stdout")
    output.add_argument("--html", metavar="FILE", type=Path, help="write an HTML report")
    audit.add_argument("--ca-file", metavar="F", type=Path,
                       help="PEM CA certificates to trust instead of the system's")
    audit.add_argument("--timeout", metavar="S", default="5",
                       help="seconds per network operation (default 5)")
    audit.add_argument("--fail-below", metavar="GRADE", help="exit 3 if the grade is below it")
    audit.add_argument("--account", metavar="JID",
                       help="also log in as JID (SCRAM over verified TLS only) and check the "
                            "account's features: carbons, MAM, PEP for OMEMO, blocking, SM, "
                            "sessions")
    audit.add_argument("--password-file", metavar="F", type=Path,
                       help="the account's password (first line); never given on the "
                            "command line")
    audit.add_argument("--config", type=Path, dest="sub_config", help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    path = getattr(args, "sub_config", None) or args.config
    try:
        config = load_config(path)
        return _COMMANDS[args.command](args, config)
    except ConfigError as exc:
        print(f"stockade: config error: {exc}", file=sys.stderr)
        return 2
    except (StockadeError, ValueError) as exc:
        print(f"stockade: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------- serve
def _serve(_args: argparse.Namespace, config: Config) -> int:
    from stockade.server.logs import setup_logging

    setup_logging(config["server"]["log_level"], config["server"]["log_format"])
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_run_server(Server(config)))
    return 0


async def _run_server(server: Server) -> None:
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    ports = server.ports
    print(f"stockade: serving {', '.join(server.hosts)} — STARTTLS on {ports['starttls']}, "
          f"direct TLS on {ports['direct_tls']}, WebSocket/HTTP on {ports.get('http', [])}, "
          f"WebSocket/HTTPS on {ports.get('https', [])}", file=sys.stderr, flush=True)
    await stop.wait()
    await server.stop()


# ---------------------------------------------------------------------- user
def _account(config: Config, text: str | None) -> str:
    if not text:
        raise ValueError("give the account as user@domain")
    try:
        jid = JID.parse(text)
    except JIDError as exc:
        raise ValueError(f"{text!r} is not a valid JID: {exc}") from None
    if jid.local is None or jid.resource is not None:
        raise ValueError(f"{text!r} must be a bare JID user@domain")
    if jid.domain not in config.domains:
        raise ValueError(f"{jid.domain} is not served here (server.domains)")
    return jid.local


def read_password() -> str:
    """From a prompt (asked twice) on a terminal, else the first line of stdin.

    SECURITY: never from argv, where other local users can read it.
    """
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        password = prepare_password(password)
    except ValueError:
        raise ValueError("the password contains characters that are not allowed") from None
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    return password


def _credentials(config: Config, password: str) -> list[ScramCredential]:
    iterations = config["auth"]["scram_iterations"]
    return [derive_credential(password, name, iterations) for name in SCRAM_HASHES]


def _user(args: argparse.Namespace, config: Config) -> int:
    action = args.action
    if action == "list":
        return _with_storage(config, lambda s: _list(s, config, args.jid))
    if action == "tokens":
        return _tokens(config, args.jid, args.extra)
    username = _account(config, args.jid)
    if action == "add":
        creds = _credentials(config, read_password())
        return _with_storage(config, lambda s: _add(s, username, creds, args.jid))
    if action == "passwd":
        creds = _credentials(config, read_password())
        return _with_storage(config, lambda s: _passwd(s, username, creds, args.jid))
    if action == "delete":
        return _with_storage(config, lambda s: _delete(s, config, username, args.jid))
    if args.extra is None:
        raise ValueError("user cert JID FILE: give the PEM certificate file")
    cert_file = Path(args.extra)
    try:
        pem = cert_file.read_bytes()
        der = first_cert_der(pem)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{cert_file}: not a readable PEM certificate ({exc})") from None
    if is_ca_certificate(der):
        # SECURITY: registered certificates become TLS trust anchors; a CA among them
        # could sign certificates for other accounts.
        raise ValueError(f"{cert_file}: is a CA certificate (CA:TRUE); register the "
                         "device's own end-entity certificate")
    return _with_storage(config, lambda s: _cert(s, config, username, pem, der))


def _tokens(config: Config, what: str | None, jid: str | None) -> int:
    """``user tokens list|revoke JID``: the account's FAST tokens (XEP-0484)."""
    if what not in ("list", "revoke"):
        raise ValueError("user tokens list|revoke JID")
    username = _account(config, jid)
    if what == "list":
        return _with_storage(config, lambda s: _list_tokens(s, username))
    return _with_storage(config, lambda s: _revoke_tokens(s, username, str(jid)))


async def _list_tokens(storage: Storage, username: str) -> None:
    # Never anything secret: the tokens themselves are not stored.
    for client_id, token in await storage.list_fast_tokens(username):
        expiry = datetime.datetime.fromtimestamp(token.expires_at, datetime.UTC)
        print(f"{client_id}\t{token.slot}\t{token.mechanism}\texpires {expiry:%Y-%m-%dT%H:%M:%SZ}")


async def _revoke_tokens(storage: Storage, username: str, jid: str) -> None:
    if not await storage.account_exists(username):
        raise ValueError(f"{jid} does not exist")
    count = await storage.revoke_fast_tokens(username)
    print(f"revoked {count} FAST token(s) of {jid}; its clients log in with the password "
          "next time", file=sys.stderr)


async def _list(storage: Storage, config: Config, domain: str | None) -> None:
    for username in await storage.list_accounts():
        for d in config.domains:
            if domain in (None, d):
                print(f"{username}@{d}")


async def _add(storage: Storage, username: str, creds: list[ScramCredential], jid: str) -> None:
    try:
        await storage.create_account(username, creds)
    except AccountExists:
        raise ValueError(f"{jid} already exists") from None
    print(f"created {jid}", file=sys.stderr)


async def _passwd(storage: Storage, username: str, creds: list[ScramCredential], jid: str) -> None:
    try:
        await storage.set_credentials(username, creds)
    except AccountNotFound:
        raise ValueError(f"{jid} does not exist") from None
    print(f"password changed for {jid}", file=sys.stderr)


async def _delete(storage: Storage, config: Config, username: str, jid: str) -> None:
    try:
        fingerprints = await storage.list_cert_fingerprints(username)
        await storage.delete_account(username)
    except AccountNotFound:
        raise ValueError(f"{jid} does not exist") from None
    for fingerprint in fingerprints:  # no longer trusted after the next restart
        (config.data_dir / "client-certs" / f"{fingerprint}.pem").unlink(missing_ok=True)
    print(f"deleted {jid}", file=sys.stderr)


async def _cert(storage: Storage, config: Config, username: str, pem: bytes,
                der: bytes) -> None:
    fingerprint = fingerprint_sha256(der)
    await storage.add_cert_fingerprint(username, fingerprint)
    target = config.data_dir / "client-certs" / f"{fingerprint}.pem"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pem)
    print(f"registered certificate sha256:{fingerprint} (restart the server to trust it)",
          file=sys.stderr)


def _with_storage(config: Config, action: Callable[[Storage], Awaitable[None]]) -> int:
    async def run() -> None:
        storage = open_storage(str(config.database))
        await storage.open()
        try:
            await action(storage)
        finally:
            await storage.close()
    asyncio.run(run())
    return 0


# ---------------------------------------------------------------------- cert, config
def _cert_cmd(args: argparse.Namespace, config: Config) -> int:
    try:
        domain = JID.parse(args.domain).domain
    except JIDError as exc:
        raise ValueError(f"{args.domain!r} is not a valid domain: {exc}") from None
    out = args.out or config.data_dir
    cert, key = out / f"{domain}.crt", out / f"{domain}.key"
    write_self_signed(domain, cert, key)
    print(f"wrote {cert} and {key}")
    return 0


def _config_cmd(_args: argparse.Namespace, config: Config) -> int:
    if config["tls"]["cert"]:
        ensure_certificate(config)
    c2s_policy(config, b"\x00" * 32)
    where = config.path or "built-in defaults"
    print(f"configuration OK ({where}); domains: {', '.join(config.domains)}")
    return 0


# ---------------------------------------------------------------------- audit
EXIT_BELOW_THRESHOLD = 3


def _audit(args: argparse.Namespace, _config: Config) -> int:
    from stockade.audit import discovery
    from stockade.audit.runner import default_probes, run_audit
    from stockade.audit.terminal import ProgressDisplay, print_report
    from stockade.core.audit import grading, render

    timeout_s = _positive_seconds(args.timeout)
    port = discovery.parse_port(args.port) if args.port is not None else None
    target = discovery.parse_target(args.target, port)
    domain = None
    if args.domain is not None:
        parsed = discovery.parse_target(args.domain)
        if parsed.port is not None:
            raise ValueError(f"--domain {args.domain!r}: a domain, without a port")
        domain = parsed.host
    if args.direct_tls and target.port is None:
        raise ValueError("--direct-tls needs host:port or --port (SRV says which ports "
                         "speak direct TLS)")
    if args.ca_file is not None and not args.ca_file.is_file():
        raise ValueError(f"--ca-file {args.ca_file}: no such file")
    if args.fail_below is not None and args.fail_below not in grading.GRADES:
        raise ValueError(f"--fail-below must be one of {', '.join(grading.GRADES)}")
    account = _account_login(args)
    ca_file = str(args.ca_file) if args.ca_file is not None else None

    async def run() -> Report:
        endpoints = await discovery.discover(target, discovery.DNSResolver(timeout_s),
                                             s2s=args.s2s, direct_tls=args.direct_tls,
                                             domain=domain)
        with ProgressDisplay() as progress:
            return await run_audit(args.target, endpoints,
                                   probes=default_probes(ca_file, account),
                                   timeout_s=timeout_s, progress=progress)

    report = asyncio.run(run())
    if args.json:
        sys.stdout.write(render.to_json(report))
    elif args.markdown:
        sys.stdout.write(render.to_markdown(report))
    else:
        print_report(report)
        if args.html is not None:
            try:
                args.html.write_text(render.to_html(report), encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"--html {args.html}: cannot write: {exc.strerror}") from None
            print(f"wrote {args.html}", file=sys.stderr)
    if args.fail_below is not None and grading.is_below(report.grade, args.fail_below):
        return EXIT_BELOW_THRESHOLD
    return 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:  # also refuses nan and inf
        raise ValueError(f"--timeout {text!r}: give seconds between 0 and 600")
    return value


def _account_login(args: argparse.Namespace) -> AccountLogin | None:
    """``--account JID --password-file F``; the password is read from the file's first line
    (never from argv, where other users of the machine could read it) and never printed."""
    from stockade.audit.runner import AccountLogin

    if args.account is None and args.password_file is None:
        return None
    if args.account is None or args.password_file is None:
        raise ValueError("--account and --password-file go together")
    if args.s2s:
        raise ValueError("--account logs in to the client service: not with --s2s")
    try:
        jid = JID.parse(args.account)
    except JIDError as exc:
        raise ValueError(f"--account {args.account!r}: {exc}") from None
    if jid.local is None:
        raise ValueError(f"--account {args.account!r}: give the account as user@domain")
    try:
        lines = args.password_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ValueError(f"--password-file {args.password_file}: cannot read: {reason}") from None
    password = lines[0] if lines else ""
    if not password:
        raise ValueError(f"--password-file {args.password_file}: the first line is empty")
    return AccountLogin(str(jid.bare) if jid.resource else str(jid), password)


_COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "serve": _serve,
    "user": _user,
    "cert": _cert_cmd,
    "config": _config_cmd,
    "audit": _audit,
}

if __name__ == "__main__":
    sys.exit(main())
