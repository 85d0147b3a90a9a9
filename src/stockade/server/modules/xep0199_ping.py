"""XMPP Ping, XEP-0199: the server answers pings addressed to it."""

from __future__ import annotations

from collections.abc import Iterable

from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.module import Feature, IQHandler, Module, Registration, Spec, Target
from stockade.server.session import Session

NS_PING = "urn:xmpp:ping"


class Ping(Module):
    """XEP-0199 §4.2: client-to-server pings."""

    name = "xep0199_ping"
    specs = (Spec("XEP-0199", "XMPP Ping", "2.0.1"),)
    depends = ("xep0030_disco",)

    def registrations(self) -> Iterable[Registration]:
        """A feature and a get handler for the host (and no 'to')."""
        yield Feature(NS_PING)
        yield IQHandler("get", (NS_PING, "ping"), Target.HOST | Target.SELF, self.on_ping)

    async def on_ping(self, iq: Stanza, session: Session) -> Element:
        """Reply with an empty result."""
        # RFC 6120 §8.1.2.1: the reply comes from whom the ping was addressed to.
        return result_reply(iq, str(iq.to) if iq.to is not None else None)


MODULES = (Ping,)
