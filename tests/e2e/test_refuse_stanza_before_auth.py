"""Stanzas before authentication and binding end the stream with not-authorized
(RFC 6120 §4.9.3.12, §7.1), and are never routed."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from rawxmpp import RawClient, running_server

PHASES = ["before-tls", "after-tls-before-sasl", "direct-tls-before-sasl",
          "after-sasl-before-bind"]
STANZAS = {
    "message": "<message to='{to}' type='chat'><body>hi</body></message>",
    "presence": "<presence to='{to}'/>",
    "iq": "<iq type='get' id='q1' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>",
}


async def _reach(client: RawClient, phase: str) -> None:
    if phase == "before-tls":
        await client.open_stream()
    elif phase == "after-tls-before-sasl":
        await client.to_sasl()
    elif phase == "direct-tls-before-sasl":
        assert b"<mechanisms" in await client.open_stream()
    else:
        await client.authenticate("alice")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(STANZAS))
@pytest.mark.parametrize("phase", PHASES)
async def test_stanza_before_authentication(tmp_path: Path, ca: trustme.CA, phase: str,
                                            kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        attacker = await h.connect(direct_tls=phase.startswith("direct-tls"))
        await _reach(attacker, phase)
        assert bob.jid is not None
        await attacker.send(STANZAS[kind].format(to=bob.jid))
        await attacker.expect_stream_error("not-authorized")
        await h.assert_still_serving(observer=bob)
