"""Server configuration: a TOML file checked against a typed schema with strict defaults.

Every option is declared once, in :data:`_CORE_SCHEMA` or by the feature module that uses it
(:func:`register_section`), with its type, default, bounds, one-line doc); the
README's reference table is generated from it, and an unknown key or a bad value is refused
at start with a message naming the key.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockade.core.errors import ConfigError, JIDError
from stockade.core.jid import prepare_domainpart


@dataclass(frozen=True, slots=True)
class Option:
    """One configuration key."""

    type: type | tuple[type, ...]
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None  # returns an error message or None


def int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    """A check for an int option between ``lo`` and ``hi`` inclusive."""
    def check(value: Any) -> str | None:
        return None if lo <= value <= hi else f"must be between {lo} and {hi}"
    return check


def choice(*allowed: str) -> Callable[[Any], str | None]:
    """A check for a string option with a fixed set of values."""
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"
    return check


def _addresses(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str):
            return "must be a list of \"host:port\" strings"
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            return f"{item!r} is not \"host:port\""
    return None


def _loopback_addresses(value: Any) -> str | None:
    problem = _addresses(value)
    if problem is not None:
        return problem
    for item in value:
        host = item.rpartition(":")[0].strip("[]")
        if host != "localhost" and not _is_loopback_ip(host):
            # SECURITY: plain HTTP carries passwords in the clear and counts as a secure
            # transport here (for a TLS-terminating proxy on the same machine); anywhere but
            # loopback it would put logins on the network unencrypted.
            return (f"{item!r} is not a loopback address; plain HTTP is for 127.0.0.1/::1 "
                    "only (use http.tls_listen for other addresses)")
    return None


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_path(value: Any) -> str | None:
    if not re.fullmatch(r"/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*", value):
        return "must be an absolute URL path such as /xmpp-websocket"
    return None


_ORIGIN = re.compile(r"https?://[a-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")


def _origins(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str) or not (item == "*" or _ORIGIN.fullmatch(item.lower())):
            return f"{item!r} is not \"*\" or an origin like https://chat.example.org"
    return None


def _public_url(value: Any) -> str | None:
    if value and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
        return "must be empty or an http(s) URL such as https://xmpp.example.org"
    return None


def _module_names(value: Any) -> str | None:
    from stockade.server.modules import import_all

    known = {cls.name for cls in import_all()}
    for item in value:
        if item not in known:
            return f"{item!r} is not a module (known: {', '.join(sorted(known))})"
    return None


def _domains(value: Any) -> str | None:
    if not value:
        return "must name at least one domain"
    if len(value) > 1:
        # Accounts are keyed by localpart: two domains would share them (a later issue).
        return "one domain per server in this release"
    for item in value:
        if not isinstance(item, str):
            return "must be a list of domain names"
        try:
            prepare_domainpart(item)
        except JIDError as exc:
            return f"{item!r} is not a valid domain ({exc})"
    return None


_CORE_SCHEMA: dict[str, dict[str, Option]] = {
    "server": {
        "domains": Option(list, ["localhost"], "The domain this server hosts, as a one-element "
                          "list (one domain per server in this release).", _domains),
        "data_dir": Option(str, "var", "Directory for the database, generated certificates "
                           "and uploads (relative paths are relative to the working directory)."),
        "log_level": Option(str, "info", "Log level: debug, info, warning or error.",
                            choice("debug", "info", "warning", "error")),
        "log_format": Option(str, "text", "Log format: text or json (one object per line).",
                             choice("text", "json")),
        "disabled_modules": Option(list, [], "Feature modules not to run, by name (e.g. "
                                   "[\"xep0280_carbons\"]); the README's feature table "
                                   "lists what each implements.", _module_names),
    },
    "c2s": {
        "starttls_listen": Option(list, ["127.0.0.1:5222"], "Addresses for client connections "
                                  "that start in plaintext and must upgrade with STARTTLS.",
                                  _addresses),
        "direct_tls_listen": Option(list, ["127.0.0.1:5223"], "Addresses for client "
                                    "connections that start with TLS (XEP-0368).", _addresses),
        "max_stanza_bytes": Option(int, 256 * 1024, "Largest stanza accepted after "
                                   "authentication (bytes).", int_range(10_000, 16 * 1024 * 1024)),
        "max_preauth_stanza_bytes": Option(int, 16 * 1024, "Largest element accepted before "
                                           "authentication (bytes).", int_range(4096, 262_144)),
        "max_depth": Option(int, 32, "Deepest element nesting accepted in a stanza.",
                            int_range(4, 256)),
        "max_auth_failures": Option(int, 3, "Failed SASL attempts allowed on one stream before "
                                    "it is closed (RFC 6120 §6.4.5: 2 to 5).", int_range(2, 5)),
        "auth_timeout_s": Option(int, 30, "Seconds a connection may take to authenticate and "
                                 "bind.", int_range(5, 600)),
        "allow_plain": Option(bool, True, "Offer SASL PLAIN (only ever over TLS)."),
        "send_buffer_high_bytes": Option(int, 256 * 1024, "Unsent bytes queued for a client "
                                         "beyond which new messages go to offline storage "
                                         "until it reads again (slow readers).",
                                         int_range(16 * 1024, 64 * 1024 * 1024)),
        "send_buffer_max_bytes": Option(int, 16 * 1024 * 1024, "Unsent bytes at which a client "
                                        "that does not read is disconnected.",
                                        int_range(256 * 1024, 1024 * 1024 * 1024)),
        "send_stall_timeout_s": Option(int, 60, "Seconds a client may stay above "
                                       "send_buffer_high_bytes before it is disconnected.",
                                       int_range(5, 3600)),
        "sm_resume_timeout_s": Option(int, 300, "Seconds a stream-managed session (XEP-0198) "
                                      "stays resumable after its connection drops; its unacked "
                                      "messages then go to another resource or offline storage.",
                                      int_range(0, 86_400)),
        "sm_max_unacked": Option(int, 5000, "Stanzas a client may leave unacknowledged before "
                                 "its stream is closed (bounded memory per session).",
                                 int_range(10, 1_000_000)),
        "resource_conflict": Option(str, "kick_old", "When a client binds a resource already "
                                    "in use: kick_old, refuse or random (RFC 6120 §7.7.2.2).",
                                    choice("kick_old", "refuse", "random")),
    },
    "http": {
        "listen": Option(list, ["127.0.0.1:5280"], "Plain HTTP addresses (WebSocket RFC 7395, "
                         "host-meta, uploads); loopback only (a TLS-terminating reverse proxy "
                         "or local clients): logins over it count as secure.",
                         _loopback_addresses),
        "tls_listen": Option(list, ["127.0.0.1:5443"], "HTTPS addresses (same services over "
                             "TLS, certificate from [tls]).", _addresses),
        "websocket_path": Option(str, "/xmpp-websocket", "Path of the XMPP WebSocket endpoint.",
                                 _http_path),
        "allowed_origins": Option(list, [], "Origins (scheme://host[:port]) allowed to open "
                                  "WebSocket connections; empty: any origin on loopback "
                                  "listeners and none on others; [\"*\"]: any origin. "
                                  "Clients that send no Origin (not browsers) are not affected.",
                                  _origins),
        "public_url": Option(str, "", "Base URL clients reach this server at (https://host), "
                             "used in host-meta and upload URLs; empty: derived from the "
                             "listener that received the request.", _public_url),
        "idle_timeout_s": Option(int, 10, "Seconds an HTTP connection may take to send a "
                                 "request (head, or the next one on a kept-alive connection).",
                                 int_range(1, 300)),
    },
    "limits": {
        "max_connections_per_ip": Option(int, 200, "Simultaneous client connections (TCP and "
                                         "WebSocket) from one IP address; more are refused "
                                         "with policy-violation.", int_range(1, 1_000_000)),
        "max_resources_per_account": Option(int, 10, "Resources one account may have bound at "
                                            "once; another bind gets resource-constraint.",
                                            int_range(1, 10_000)),
        "stanzas_per_second": Option(int, 50, "Sustained stanza rate of one connection (token "
                                     "bucket); stanzas beyond it get resource-constraint.",
                                     int_range(1, 1_000_000)),
        "stanza_burst": Option(int, 200, "Stanzas a connection may send at once above the "
                               "sustained rate (the bucket's size).", int_range(1, 10_000_000)),
        "stanza_timeout_s": Option(int, 30, "Seconds a client may take to finish a stanza it "
                                   "started; a half-sent stanza that stalls is cut off.",
                                   int_range(1, 3600)),
        "idle_timeout_s": Option(int, 900, "Seconds without any byte from a client (stanzas, "
                                 "whitespace keepalives, acks) before it is disconnected; 0: "
                                 "never.", int_range(0, 86_400)),
    },
    "tls": {
        "cert": Option(str, "", "PEM certificate chain. Empty: a self-signed certificate for "
                       "the first domain is generated under data_dir."),
        "key": Option(str, "", "PEM private key for cert."),
        "min_version": Option(str, "1.2", "Lowest TLS version accepted: 1.2 or 1.3.",
                              choice("1.2", "1.3")),
        "client_ca": Option(str, "", "PEM CA bundle whose client certificates may log in with "
                            "SASL EXTERNAL (XEP-0178). Empty: EXTERNAL only for certificates "
                            "registered to an account."),
    },
    "auth": {
        "scram_iterations": Option(int, 4096, "PBKDF2 iterations for newly stored SCRAM keys.",
                                   int_range(4096, 10_000_000)),
        "max_failures_per_ip": Option(int, 10, "Failed logins per client IP per minute before "
                                      "further attempts from it are refused.",
                                      int_range(1, 10_000)),
        "max_failures_per_account": Option(int, 5, "Failed logins per account per minute "
                                           "before further attempts on it are refused.",
                                           int_range(1, 10_000)),
    },
    "storage": {
        "database": Option(str, "", "SQLite database path. Empty: data_dir/stockade.db."),
        "max_offline_messages": Option(int, 1000, "Offline messages kept per account; "
                                       "beyond it senders get resource-constraint.",
                                       int_range(0, 1_000_000)),
    },
}


_FEATURE_SCHEMA: dict[str, dict[str, Option]] = {}


def register_section(section: str, options: dict[str, Option]) -> None:
    """Declare a feature module's configuration section (called when its module is imported).

    Raises:
        ConfigError: the section is already declared (two modules cannot share one).
    """
    if section in _CORE_SCHEMA or _FEATURE_SCHEMA.get(section, options) is not options:
        raise ConfigError(f"configuration section [{section}] declared twice")
    _FEATURE_SCHEMA[section] = options


def schema() -> dict[str, dict[str, Option]]:
    """Every section: the core ones, then those the feature modules declare."""
    # The modules declare their sections when imported; importing them here keeps one
    # registry whoever asks first (the CLI, the server or a test).
    import stockade.server.modules

    # In module order, not import order (which depends on who imported what first), so the
    # README table and error messages do not change with it.
    order = [cls.config_section for cls in stockade.server.modules.import_all()
             if cls.config_section is not None and cls.config_section in _FEATURE_SCHEMA]
    order += sorted(set(_FEATURE_SCHEMA) - set(order))
    return {**_CORE_SCHEMA, **{name: _FEATURE_SCHEMA[name] for name in order}}


@dataclass(frozen=True, slots=True)
class Config:
    """A checked configuration: ``config["c2s"]["max_depth"]``."""

    values: dict[str, dict[str, Any]]
    path: Path | None = None

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    @property
    def data_dir(self) -> Path:
        """The data directory, resolved against the working directory."""
        return Path(self.values["server"]["data_dir"]).expanduser()

    @property
    def database(self) -> Path:
        """The SQLite database path."""
        configured = self.values["storage"]["database"]
        return Path(configured).expanduser() if configured else self.data_dir / "stockade.db"

    @property
    def domains(self) -> list[str]:
        """The hosted domains, prepared."""
        return [prepare_domainpart(d) for d in self.values["server"]["domains"]]


def load_config(path: Path | None) -> Config:
    """Read and check a TOML file (``None``: all defaults).

    Raises:
        ConfigError: unreadable file, unknown key or invalid value (the message names it).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return Config(check_config(raw), path)


def check_config(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Merge ``raw`` over the defaults, refusing anything the schema does not allow."""
    sections = schema()
    for section in raw:
        if section not in sections:
            raise ConfigError(f"unknown section [{section}]")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"[{section}] must be a table")
    values: dict[str, dict[str, Any]] = {}
    for section, options in sections.items():
        given = raw.get(section, {})
        for key in given:
            if key not in options:
                raise ConfigError(f"{section}.{key}: unknown option")
        values[section] = {key: _check_value(f"{section}.{key}", opt, given.get(key, opt.default))
                           for key, opt in options.items()}
    return values


def _check_value(name: str, opt: Option, value: Any) -> Any:
    wanted = opt.type
    # bool is an int subclass in Python; TOML keeps them apart and so do we.
    if (wanted is int and isinstance(value, bool)) or not isinstance(value, wanted):
        type_name = wanted.__name__ if isinstance(wanted, type) else str(wanted)
        raise ConfigError(f"{name}: expected {type_name}, got {type(value).__name__}")
    if opt.check is not None and (problem := opt.check(value)) is not None:
        raise ConfigError(f"{name}: {problem}")
    return value


def reference_markdown() -> str:
    """The configuration reference table (used by the README and checked by a test)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for section, options in schema().items():
        for key, opt in options.items():
            default = repr(opt.default).replace("'", '"')
            lines.append(f"| `{section}.{key}` | `{default}` | {opt.doc} |")
    return "\n".join(lines)
