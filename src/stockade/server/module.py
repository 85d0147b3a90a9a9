"""Feature modules: each declares what it handles; the host installs the declarations."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stockade.core.stanza import Stanza
from stockade.core.xml import Element

if TYPE_CHECKING:
    from stockade.server.host import Host
    from stockade.server.session import Session


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


Registration = IQHandler | Feature | AccountFeature


class Module:
    """Base of feature modules. ``name`` is the spec it implements."""

    name = ""
    depends: tuple[str, ...] = ()

    def __init__(self, host: Host) -> None:
        self.host = host

    def registrations(self) -> Iterable[Registration]:
        """What this module handles."""
        return ()

    async def on_session_end(self, session: Session) -> None:
        """Called when a bound session goes away."""
