"""Application-specific error conditions (RFC 6120 §8.3.2) travel with a StanzaError."""

from __future__ import annotations

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.stanza import error_reply
from stockade.core.xml import Element, serialize


def test_app_condition_follows_the_defined_condition_and_text() -> None:
    iq = Element("jabber:client", "iq", {"type": "set", "id": "p1", "from": "a@x/r"})
    error = StanzaError(StanzaErrorCondition.CONFLICT, "options differ",
                        app=Element("http://jabber.org/protocol/pubsub#errors",
                                    "precondition-not-met"))
    xml = serialize(error_reply(iq, error), "jabber:client")
    assert xml.index("<conflict") < xml.index("<text") < xml.index("<precondition-not-met")
    assert "<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>" in xml


def test_no_app_condition_by_default() -> None:
    iq = Element("jabber:client", "iq", {"type": "get", "id": "p2"})
    xml = serialize(error_reply(iq, StanzaError(StanzaErrorCondition.FORBIDDEN)),
                    "jabber:client")
    assert xml.count("xmlns=") == 1 and "<forbidden" in xml
