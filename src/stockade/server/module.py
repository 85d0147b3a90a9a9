"""Feature modules: each declares what it handles; the host installs the declarations."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from stockade.core.spec import Spec
from stockade.core.stanza import Stanza
from stockade.core.xml import Element

if TYPE_CHECKING:
    from stockade.server.config import Config
    from stockade.server.host import Host
    from stockade.server.session import Session

__all__ = ["AccountFeature", "Bind2Inline", "Component", "Feature", "HTTPEndpoint", "Hook",
           "IQHandler", "Identity", "Module", "Nonza", "PreauthIQ", "Registration", "Spec",
           "Stage", "StanzaEvent", "StreamFeature", "Target"]


class Target(enum.Flag):
    """Whom an IQ is addressed to, as the router sees it (RFC 6120 §10.3, §10.5)."""

    HOST = enum.auto()  # to the server's domain
    SELF = enum.auto()  # no 'to', or the sender's own bare JID
    ACCOUNT = enum.auto()  # another local account's bare JID


IQHandlerFn = Callable[[Stanza, "Session"], Awaitable[Element | None]]


@dataclass(frozen=True, slots=True)
class IQHandler:
    """Handles IQs of ``type`` whose payload is ``(namespace, name)`` sent to ``targets``."""

    type: str  # "get" | "set"
    payload: tuple[str, str]
    targets: Target
    handler: IQHandlerFn


@dataclass(frozen=True, slots=True)
class Feature:
    """A disco#info feature var (XEP-0030) advertised by the server."""

    var: str


@dataclass(frozen=True, slots=True)
class AccountFeature:
    """A disco#info feature var advertised on each account's bare JID."""

    var: str


@dataclass(frozen=True, slots=True)
class HTTPEndpoint:
    """A route on every HTTP listener (e.g. XEP-0363 uploads): ``handler`` is an
    ``io.http.Handler`` taking (request, body, listener)."""

    method: str
    path: str
    handler: Any
    max_body_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Identity:
    """A disco#info identity (XEP-0030 §3.1) on the host (``on_account`` False) or on each
    account's bare JID (e.g. pubsub/pep)."""

    category: str
    type: str
    on_account: bool = False


class Stage(enum.Enum):
    """Points on a stanza's path where modules may act (see :class:`StanzaEvent`)."""

    # A local session sent a stanza (its 'from' is stamped), before any routing. Hooks may
    # raise StanzaError (the sender gets it) or set ``stop`` (the stanza goes no further).
    SENT = "sent"
    # A message is about to be delivered to a local account (``account``): from a local
    # session, a component or the server. Hooks may raise StanzaError, set ``stop``, or
    # replace ``stanza`` (e.g. to add a stanza-id); it runs before delivery or storage.
    MESSAGE_INBOUND = "message-inbound"
    # After delivery: ``delivered`` lists the sessions written to, ``stored`` says whether it
    # went to offline storage. Hooks may only add new stanzas (carbon copies).
    MESSAGE_DELIVERED = "message-delivered"
    # An IQ get/set is about to be forwarded to a local full JID (``account``).
    IQ_INBOUND = "iq-inbound"


@dataclass(slots=True)
class StanzaEvent:
    """What a :class:`Hook` sees. ``origin`` is None for server- or component-made stanzas."""

    stanza: Stanza
    origin: Session | None
    account: str | None = None  # the local recipient's username (inbound stages)
    delivered: list[Session] = field(default_factory=list)
    stored: bool = False
    stop: bool = False


HookFn = Callable[[StanzaEvent], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Hook:
    """Runs ``fn`` for ``kinds`` of stanza at ``stage``; lower ``order`` runs first."""

    stage: Stage
    kinds: frozenset[str]
    fn: HookFn
    order: int = 50


ComponentFn = Callable[[Stanza, "Session | None"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Component:
    """A service on ``<subdomain>.<host domain>`` (e.g. MUC on rooms.example.org): every
    stanza addressed to that domain or its JIDs goes to ``handler``."""

    subdomain: str
    name: str  # disco#items name
    handler: ComponentFn


@dataclass(frozen=True, slots=True)
class StreamFeature:
    """A child of <stream:features>: ``stage`` "bind" offers it beside resource binding
    (after SASL), "sasl" beside the mechanisms (over TLS, before authentication)."""

    stage: str
    xml: str


NonzaFn = Callable[[Element, "Session"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Nonza:
    """A top-level non-stanza element a bound client may send (e.g. XEP-0352 <active/>)."""

    ns: str
    name: str
    handler: NonzaFn


PreauthFn = Callable[[Element, str, str], Awaitable[Element | None]]


@dataclass(frozen=True, slots=True)
class PreauthIQ:
    """An IQ payload allowed over TLS before authentication (XEP-0077 registration):
    ``handler(iq, peer_ip, domain)`` returns the reply."""

    payload: tuple[str, str]
    handler: PreauthFn


Bind2InlineFn = Callable[[Element, "Session"], Awaitable[Element | None] | Element | None]


@dataclass(frozen=True, slots=True)
class Bind2Inline:
    """A session feature a client may turn on inside its XEP-0386 ``<bind/>`` (e.g. XEP-0280
    ``<enable/>``, XEP-0352 ``<inactive/>``): ``handler(element, session)`` runs for the new
    session right after binding, before SASL2 ``<success/>``; an element it returns goes into
    ``<bound/>``. ``var`` (default: ``ns``) is advertised as ``<feature var=''/>``."""

    ns: str
    name: str
    handler: Bind2InlineFn
    var: str = ""


Registration = (IQHandler | Feature | AccountFeature | Identity | HTTPEndpoint | Hook
                | Component | StreamFeature | Nonza | PreauthIQ | Bind2Inline)


class Module:
    """Base of feature modules. ``name`` is the spec it implements.

    ``config_section``: the module's [section] (declared with register_section when the
    module file is imported); if it has an ``enabled`` option, that switches the module.
    """

    name = ""
    depends: tuple[str, ...] = ()
    specs: ClassVar[tuple[Spec, ...]] = ()
    config_section: ClassVar[str | None] = None

    def __init__(self, host: Host) -> None:
        self.host = host

    @classmethod
    def is_enabled(cls, config: Config) -> bool:
        """Whether the configuration switches this module on (default: always)."""
        if cls.config_section is None:
            return True
        return bool(config[cls.config_section].get("enabled", True))

    @property
    def options(self) -> dict[str, Any]:
        """This module's configuration section."""
        assert self.config_section is not None
        return self.host.config[self.config_section]

    async def start(self) -> None:
        """Called once the server's storage is open, before it listens."""

    async def stop(self) -> None:
        """Called at shutdown, before storage closes."""

    def registrations(self) -> Iterable[Registration]:
        """What this module handles."""
        return ()

    async def on_session_end(self, session: Session) -> None:
        """Called when a bound session goes away."""
