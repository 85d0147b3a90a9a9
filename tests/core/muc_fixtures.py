"""Support for the MUC core tests: a service with predictable ids, stanzas from XML text,
and readers for what the effects say (who gets what, status codes, error conditions)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from stockade.core.errors import NS_STANZAS
from stockade.core.muc import Effect, MucLimits, MucService, Send
from stockade.core.muc._ns import NS_DATA, NS_MUC_OWNER, NS_MUC_USER, NS_ROOMCONFIG
from stockade.core.stanza import parse_stanza
from stockade.core.xml import Element, XMLStreamParser

SERVICE = "rooms.example.org"
ROOM = f"coven@{SERVICE}"
OWNER = "crone@example.org/desk"
ADMIN = "wicca@example.org/laptop"
HAG = "hag@example.org/pda"
EVE = "eve@example.org/phone"
HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


def parse(xml: str) -> Element:
    """One element from XML text (in the jabber:client namespace)."""
    parser = XMLStreamParser()
    parser.feed(HEADER)
    (element,) = [e for e in parser.feed(xml.encode()) if isinstance(e, Element)]
    return element


@dataclass
class Muc:
    """A service plus a clock; ``send`` runs one stanza through it."""

    limits: MucLimits = field(default_factory=MucLimits)
    now: float = 1_000_000.0

    def __post_init__(self) -> None:
        counter = itertools.count(1)
        self.service = MucService(SERVICE, self.limits, new_id=lambda: f"id{next(counter)}")

    def send(self, xml: str) -> list[Effect]:
        return self.service.handle(parse_stanza(parse(xml)), self.now)

    # ---------------------------------------------------------------- shortcuts
    def join(self, who: str, nick: str, room: str = ROOM, muc_x: str = "") -> list[Effect]:
        x = f"<x xmlns='http://jabber.org/protocol/muc'>{muc_x}</x>"
        return self.send(f"<presence from='{who}' to='{room}/{nick}' id='j-{nick}'>{x}"
                         "</presence>")

    def leave(self, who: str, nick: str, room: str = ROOM) -> list[Effect]:
        return self.send(f"<presence from='{who}' to='{room}/{nick}' type='unavailable'/>")

    def configure(self, who: str, fields: dict[str, str | list[str]],
                  room: str = ROOM) -> list[Effect]:
        body = "".join(
            f"<field var='{var}'>"
            + "".join(f"<value>{v}</value>" for v in ([value] if isinstance(value, str)
                                                       else value))
            + "</field>" for var, value in fields.items())
        return self.send(
            f"<iq from='{who}' to='{room}' type='set' id='cfg'>"
            f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='{NS_DATA}' type='submit'>"
            f"<field var='FORM_TYPE'><value>{NS_ROOMCONFIG}</value></field>{body}"
            "</x></query></iq>")

    def create(self, owner: str = OWNER, nick: str = "firstwitch", room: str = ROOM,
               **fields: str) -> list[Effect]:
        """Create and configure a room (an instant room without ``fields``)."""
        self.join(owner, nick, room)
        return self.configure(owner, {f"muc#roomconfig_{k}": v for k, v in fields.items()},
                              room)

    def admin(self, who: str, items: str, kind: str = "set", room: str = ROOM
              ) -> list[Effect]:
        return self.send(f"<iq from='{who}' to='{room}' type='{kind}' id='adm'>"
                         f"<query xmlns='http://jabber.org/protocol/muc#admin'>{items}"
                         "</query></iq>")

    def say(self, who: str, text: str, room: str = ROOM, msg_id: str = "m1") -> list[Effect]:
        return self.send(f"<message from='{who}' to='{room}' type='groupchat' id='{msg_id}'>"
                         f"<body>{text}</body></message>")


def sent(effects: list[Effect], to: str | None = None, name: str | None = None
         ) -> list[Element]:
    """The elements sent (to one full JID, of one kind), in order."""
    return [e.element for e in effects if isinstance(e, Send)
            and (to is None or str(e.to) == to) and (name is None or e.element.name == name)]


def only(effects: list[Effect], to: str | None = None, name: str | None = None) -> Element:
    (element,) = sent(effects, to, name)
    return element


def codes(element: Element) -> set[str]:
    """The muc#user status codes of a stanza."""
    x = element.find(NS_MUC_USER, "x")
    return {s.attrs["code"] for s in x.find_all(NS_MUC_USER, "status")} if x else set()


def item(element: Element) -> dict[str, str]:
    """The attributes of the muc#user <item/> of a presence."""
    x = element.find(NS_MUC_USER, "x")
    assert x is not None, element
    found = x.find(NS_MUC_USER, "item")
    assert found is not None, element
    return found.attrs


def error_of(element: Element) -> str | None:
    """The defined condition of an error stanza, or None if it is not one."""
    if element.get("type") != "error":
        return None
    error = element.find(element.ns, "error")
    assert error is not None
    return next(c.name for c in error.elements() if c.ns == NS_STANZAS and c.name != "text")


def error_reply(effects: list[Effect]) -> str | None:
    """The condition of the single error among ``effects``."""
    errors = [error_of(e) for e in sent(effects) if error_of(e) is not None]
    assert len(errors) == 1, errors
    return errors[0]
