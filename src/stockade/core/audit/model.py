"""What an audit finds: endpoints, findings with their evidence, and the report.

Every probe (``stockade.audit.*``) returns :class:`Finding` objects; grading
(``core.audit.grading``) turns them into a grade; renderers print them. A check that could
not be made is a finding too (severity ``NOT_TESTED``), never a guess.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    """How bad a finding is; the grading rules key on it."""

    NOT_TESTED = -1  # the probe was impossible here; says why in ``observed``
    PASS = 0  # the check was made and the server behaves well
    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


class Service(enum.Enum):
    """Which XMPP service an endpoint offers and how TLS starts on it."""

    C2S_STARTTLS = "c2s-starttls"  # _xmpp-client._tcp, 5222
    C2S_DIRECT_TLS = "c2s-direct-tls"  # _xmpps-client._tcp (XEP-0368), 5223
    S2S_STARTTLS = "s2s-starttls"  # _xmpp-server._tcp, 5269
    S2S_DIRECT_TLS = "s2s-direct-tls"  # _xmpps-server._tcp

    @property
    def direct_tls(self) -> bool:
        """Whether TLS starts with the first byte (XEP-0368)."""
        return self in (Service.C2S_DIRECT_TLS, Service.S2S_DIRECT_TLS)

    @property
    def stream_namespace(self) -> str:
        """The stream's content namespace."""
        return "jabber:client" if self.value.startswith("c2s") else "jabber:server"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address to test: ``domain`` is the XMPP domain (stream 'to', TLS SNI, the name
    the certificate must carry); ``host``/``port`` is where to connect."""

    domain: str
    host: str
    port: int
    service: Service
    source: str = "given"  # "srv", "a/aaaa fallback", "given"

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.service.value})"


@dataclass(frozen=True, slots=True)
class Fix:
    """How to fix a finding, per server software (configuration terms)."""

    stockade: str
    prosody: str
    ejabberd: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One result. ``check`` is a stable id (e.g. "tls.version.tls1_0"); ``observed`` says
    exactly what was seen (bytes, negotiated parameters); ``why`` why it matters."""

    check: str
    title: str
    severity: Severity
    observed: str
    why: str = ""
    fix: Fix | None = None
    endpoint: str = ""  # str(Endpoint), filled in by the runner


@dataclass(slots=True)
class Report:
    """The whole audit of a target."""

    target: str
    endpoints: list[Endpoint] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    grade: str = ""
    rules_version: str = ""
    started: str = ""  # ISO 8601, UTC
    duration_s: float = 0.0
