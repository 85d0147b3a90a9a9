"""Entity Time, XEP-0202: the server tells its clock (UTC)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.module import Feature, IQHandler, Module, Registration, Spec, Target
from stockade.server.modules.xep0160_offline import delay_stamp
from stockade.server.session import Session

NS_TIME = "urn:xmpp:time"
# SECURITY: the server reports UTC whatever its local zone, so the answer reveals nothing
# about where the machine is.
TZO = "+00:00"


def time_element(now: float) -> Element:
    """XEP-0202 §3: ``<time><tzo/><utc/></time>``, utc in XEP-0082 DateTime format."""
    el = Element(NS_TIME, "time")
    el.sub(NS_TIME, "tzo", text=TZO)
    el.sub(NS_TIME, "utc", text=delay_stamp(now))
    return el


class EntityTime(Module):
    """XEP-0202 §3 for the server itself."""

    name = "xep0202_time"
    specs = (Spec("XEP-0202", "Entity Time", "2.0"),)
    depends = ("xep0030_disco",)

    def registrations(self) -> Iterable[Registration]:
        """A feature and a get handler on the host (and no 'to', as for ping)."""
        yield Feature(NS_TIME)
        yield IQHandler("get", (NS_TIME, "time"), Target.HOST | Target.SELF, self.on_time)

    async def on_time(self, iq: Stanza, session: Session) -> Element:
        """Reply with the current time."""
        return result_reply(iq, str(iq.to) if iq.to is not None else None,
                            time_element(time.time()))


MODULES = (EntityTime,)
