"""A stand-in for a client connection in server tests: records what the server delivers."""

from __future__ import annotations

from stockade.core.errors import StreamErrorCondition
from stockade.core.xml import Element, XMLStreamParser

HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


class FakeConn:
    """Collects what the server delivers to one client (stored stanzas parsed as a client
    would). ``close_on_terminate``: whether a stream error also makes it stop taking
    stanzas, as a real connection does."""

    peer = "test"

    def __init__(self, *, close_on_terminate: bool = False) -> None:
        self.received: list[Element] = []
        self.is_open = True
        self.terminated: StreamErrorCondition | None = None
        self._close_on_terminate = close_on_terminate

    def deliver(self, el: Element) -> None:
        self.received.append(el)

    def deliver_raw(self, text: str) -> None:
        parser = XMLStreamParser()
        parser.feed(HEADER)
        self.received.extend(e for e in parser.feed(text.encode()) if isinstance(e, Element))

    def terminate(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        self.terminated = condition
        if self._close_on_terminate:
            self.is_open = False

    def hand_over(self) -> None:
        """Nothing is ever in flight here (XEP-0198 resumption)."""

    def take(self) -> list[Element]:
        """Everything received so far (and forget it)."""
        got, self.received = self.received, []
        return got

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(e.name, e.get("type")) for e in self.received]

    def messages(self) -> list[Element]:
        return [e for e in self.received if e.name == "message"]

    def errors(self) -> list[str]:
        """The defined conditions of the error stanzas received."""
        return [c.name for e in self.received if e.get("type") == "error"
                for err in e.elements() if err.name == "error" for c in err.elements()
                if c.name != "text"]
