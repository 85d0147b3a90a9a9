"""A malformed 'to' address gets a jid-malformed stanza error (RFC 6120 §8.3.3.8) and the
stream stays open: it is the stanza that is refused, not the session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trustme
from rawxmpp import NS_STANZAS, parse_stanza, running_server

BAD_JIDS = ["a@b@c", "@localhost", "localhost/", "a b@localhost",
            "x" * 1100 + "@localhost"]  # RFC 7622 §3.3.1: a localpart is at most 1023 bytes
KINDS = {
    "message": "<message to='{to}' id='bad-1' type='chat'><body>x</body></message>",
    "iq": "<iq to='{to}' id='bad-1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    "presence": "<presence to='{to}' id='bad-1' type='subscribe'/>",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("jid", BAD_JIDS, ids=lambda j: j[:12])
async def test_bad_to_jid_gets_jid_malformed(tmp_path: Path, ca: trustme.CA, jid: str,
                                             kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice")
        await alice.send(KINDS[kind].format(to=jid))
        data = await alice.read_until(re.compile(
            rb"<" + kind.encode() + rb"\b[^>]*\bid='bad-1'.*?</" + kind.encode() + rb">",
            re.S))
        reply = parse_stanza(data[data.rindex(b"<" + kind.encode()):])
        assert reply.get("type") == "error" and reply.get("id") == "bad-1", data
        error = reply.find("{jabber:client}error")
        assert error is not None and error.get("type") == "modify", data
        conditions = [child.tag for child in error if child.tag != f"{{{NS_STANZAS}}}text"]
        assert conditions == [f"{{{NS_STANZAS}}}jid-malformed"], data
        await alice.ping()  # the stream is still open and working
        await h.assert_still_serving()
