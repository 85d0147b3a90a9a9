"""RFC 7395 framing in the c2s core: <open/>/<close/>, one element per message, standalone
namespaces on everything sent, and the same refusals as on TCP."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from stockade.core.jid import JID
from stockade.core.sasl import derive_credential
from stockade.core.stream import events as ev
from stockade.core.stream.c2s import C2SPolicy, C2SServerStream, Phase

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = f"<open xmlns='{FRAMING}' to='example.com' version='1.0'/>".encode()
CLOSE = f'<close xmlns="{FRAMING}" />'  # the spelling Strophe.js needs (COMPAT)
CRED = derive_credential("pencil-sharp", "SHA-256", 4096)
POLICY = C2SPolicy(domains=frozenset({"example.com"}))
CB = ("tls-server-end-point", b"\x01" * 32)


class Framed:
    def __init__(self, cb: tuple[str, bytes] | None = CB) -> None:
        self.stream = C2SServerStream(POLICY, tls_active=True, framed=True,
                                      stream_id=lambda: "sid")
        if cb is not None:
            self.stream.tls_established(cb)
        self.events: list[ev.Event] = []

    def send(self, message: bytes) -> list[str]:
        self.events.extend(self.stream.receive_data(message))
        frames = self.stream.take_frames()
        for frame in frames:
            ET.fromstring(frame)  # every frame is a well-formed document of its own
        return frames

    def login(self) -> None:
        self.send(OPEN)
        self.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                  + base64.b64encode(b"\x00juliet\x00pencil-sharp") + b"</auth>")
        self.events.extend(self.stream.provide_credential(CRED))
        assert any("<success" in f for f in self.stream.take_frames())
        frames = self.send(OPEN)
        assert frames[0].startswith(f"<open xmlns='{FRAMING}'")
        self.send(b"<iq type='set' id='b' xmlns='jabber:client'><bind "
                  b"xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        self.events.extend(self.stream.provide_bind(JID.parse("juliet@example.com/ws")))
        assert any("<jid>juliet@example.com/ws</jid>" in f for f in self.stream.take_frames())


def test_open_gets_open_and_features_as_separate_messages() -> None:
    f = Framed()
    frames = f.send(OPEN)
    assert len(frames) == 2
    opened = ET.fromstring(frames[0])
    assert opened.tag == f"{{{FRAMING}}}open"
    assert opened.get("from") == "example.com" and opened.get("version") == "1.0"
    features = ET.fromstring(frames[1])
    assert features.tag == "{http://etherx.jabber.org/streams}features"
    mechs = [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
    assert "SCRAM-SHA-256-PLUS" in mechs and "PLAIN" in mechs
    assert b"starttls" not in "".join(frames).encode()  # RFC 7395: TLS is the WebSocket's


def test_plain_loopback_transport_offers_no_plus() -> None:
    f = Framed(cb=None)
    features = f.send(OPEN)[1]
    assert "SCRAM-SHA-256</mechanism>" in features and "-PLUS" not in features


def test_login_bind_and_stanzas_carry_their_namespace() -> None:
    f = Framed()
    f.login()
    assert f.stream.phase is Phase.ESTABLISHED
    f.send(b"<message xmlns='jabber:client' to='romeo@example.com'><body>hi</body></message>")
    received = [e for e in f.events if isinstance(e, ev.StanzaReceived)]
    assert str(received[-1].stanza.to) == "romeo@example.com"
    f.stream.send_raw("<message from='romeo@example.com/x' to='juliet@example.com/ws'>"
                      "<body>stored</body></message>")
    (frame,) = f.stream.take_frames()
    assert ET.fromstring(frame).tag == "{jabber:client}message"


def test_close_is_answered_with_close() -> None:
    f = Framed()
    f.send(OPEN)
    frames = f.send(f"<close xmlns='{FRAMING}'/>".encode())
    assert frames == [CLOSE]
    assert any(isinstance(e, ev.StreamClosed) for e in f.events)
    assert f.stream.phase is Phase.CLOSED


@pytest.mark.parametrize("message", [
    b"<message xmlns='jabber:client'><body>half",  # not complete
    b"<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>",  # two elements
])
def test_a_message_must_hold_one_complete_element(message: bytes) -> None:
    f = Framed()
    f.login()
    frames = f.send(message)
    assert "<not-well-formed" in frames[0] and frames[-1] == CLOSE
    assert f.stream.phase is Phase.CLOSED


def test_stream_errors_are_standalone_then_close() -> None:
    f = Framed()
    f.send(OPEN)
    frames = f.send(b"<message xmlns='jabber:client' to='romeo@example.com'/>")
    error = ET.fromstring(frames[0])
    assert error.tag == "{http://etherx.jabber.org/streams}error"
    assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}not-authorized") is not None
    assert frames[-1] == CLOSE


def test_doctype_is_restricted_xml() -> None:
    f = Framed()
    f.send(OPEN)
    frames = f.send(b"<!DOCTYPE x [<!ENTITY a 'b'>]><message xmlns='jabber:client'/>")
    assert "<restricted-xml" in frames[0]
    assert f.stream.phase is Phase.CLOSED


def test_unknown_domain_in_open() -> None:
    f = Framed()
    frames = f.send(f"<open xmlns='{FRAMING}' to='elsewhere.org' version='1.0'/>".encode())
    assert ET.fromstring(frames[0]).tag == f"{{{FRAMING}}}open"
    assert "<host-unknown" in frames[1]
