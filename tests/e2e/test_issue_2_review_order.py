"""Replies the stream core writes itself (legacy session iq, stanza errors) stay in order
behind a stanza still waiting for storage (RFC 6120 §10.1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trustme
from rawxmpp import Gate, running_server


@pytest.mark.timeout(30)
async def test_core_replies_do_not_overtake_a_pending_stanza(tmp_path: Path,
                                                             ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice", "desk")
        gate = Gate(h.server.storage, "get_roster")  # the roster get waits on storage
        await alice.send(
            "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>"
            "<iq type='set' id='2'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
            "<message to='bad@@jid' id='3'><body>x</body></message>")
        await gate.entered.wait()
        assert await alice.collect(0.3) == b""  # nothing may jump the held roster get
        gate.release.set()
        data = await alice.read_until(re.compile(rb"id='3'[^>]*>.*?</message>", re.S))
        assert re.findall(rb"<(?:iq|message)\b[^>]*\bid='(\d)'", data) == [b"1", b"2", b"3"]
