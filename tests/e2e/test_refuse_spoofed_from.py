"""Spoofed 'from' addresses (RFC 6120 §8.1.2.1, §4.9.3.9 invalid-from): a client may only
send as its own full or bare JID, and the server stamps the full JID on what it routes."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from rawxmpp import body_of, running_server

SPOOFS = {
    "other-account": "someoneelse@localhost/x",
    "own-account-other-resource": "alice@localhost/not-this-one",
    "the-recipient": "bob@localhost",
    "the-server": "localhost",
    "remote-domain": "alice@example.net/r",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["message", "presence", "iq"])
@pytest.mark.parametrize("spoof", list(SPOOFS))
async def test_spoofed_from_is_invalid_from(tmp_path: Path, ca: trustme.CA, spoof: str,
                                            kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        alice = await h.login("alice", "me")
        stanza = {
            "message": "<message from='{f}' to='{t}' type='chat'><body>spoof</body></message>",
            "presence": "<presence from='{f}' to='{t}'/>",
            "iq": "<iq from='{f}' to='{t}' type='get' id='s1'><ping xmlns='urn:xmpp:ping'/></iq>",
        }[kind]
        await alice.send(stanza.format(f=SPOOFS[spoof], t=bob.jid))
        await alice.expect_stream_error("invalid-from")
        await h.assert_still_serving(observer=bob)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("claimed", ["bare", "full", "none"])
async def test_own_jid_as_from_is_accepted_and_stamped(tmp_path: Path, ca: trustme.CA,
                                                       claimed: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        alice = await h.login("alice", "me")
        assert alice.jid == "alice@localhost/me"
        attr = {"bare": " from='alice@localhost'", "full": " from='alice@localhost/me'",
                "none": ""}[claimed]
        await alice.send(f"<message{attr} to='{bob.jid}' type='chat' id='own'>"
                         "<body>honest</body></message>")
        message = await bob.read_message()
        assert body_of(message) == "honest"
        assert message.get("from") == "alice@localhost/me"
        assert message.get("to") == bob.jid
        await alice.ping()  # the sender's stream is still open
