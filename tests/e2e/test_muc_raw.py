"""Malformed and refused MUC stanzas over a real socket, byte for byte: each gets the error
XEP-0045 names (with the room as 'by'), the room keeps working and the server keeps
serving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trustme
from rawxmpp import NS_STANZAS, parse_stanza, running_server

ROOM = "coven@rooms.localhost"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'/>"
ANY_STANZA = re.compile(rb"<(presence|message|iq)\b(?:[^>]*/>|.*?</\1>)", re.S)

#: (what is sent, kind of the answer, condition), in order, by carol in alice's room.
REFUSALS = [
    (f"<presence to='{ROOM}'>{MUC_X}</presence>", "presence", "jid-malformed"),  # §7.2.1
    (f"<presence to='{ROOM}/Alice'>{MUC_X}</presence>", "presence", "conflict"),  # §7.2.8
    (f"<presence to='{ROOM}/c'><x xmlns='http://jabber.org/protocol/muc'><history "
     "seconds='soon'/></x></presence>", "presence", "bad-request"),
    (f"<message to='{ROOM}' type='groupchat' id='g'><body>hi</body></message>",
     "message", "not-acceptable"),  # §7.4: not an occupant
    (f"<message to='{ROOM}/alice' type='chat' id='p'><body>hi</body></message>",
     "message", "not-acceptable"),  # §7.5
    (f"<iq to='{ROOM}' type='get' id='o'><query "
     "xmlns='http://jabber.org/protocol/muc#owner'/></iq>", "iq", "forbidden"),  # §10.2
    (f"<iq to='{ROOM}' type='set' id='a'><query xmlns='http://jabber.org/protocol/muc#admin'>"
     "<item nick='alice' role='none' affiliation='none'/></query></iq>", "iq", "bad-request"),
    (f"<iq to='{ROOM}' type='set' id='r'><query xmlns='jabber:iq:register'/></iq>", "iq",
     "service-unavailable"),
    ("<message to='nowhere@rooms.localhost' type='groupchat' id='n'><body>?</body></message>",
     "message", "item-not-found"),
]


def condition_of(stanza: object) -> tuple[str | None, str | None]:
    error = stanza.find("{jabber:client}error")  # type: ignore[attr-defined]
    assert error is not None, stanza
    names = [c.tag.split("}")[1] for c in error if c.tag.startswith(f"{{{NS_STANZAS}}}")
             and not c.tag.endswith("}text")]
    return (names[0] if names else None), error.get("by")


@pytest.mark.timeout(30)
async def test_refused_room_stanzas_get_their_errors(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice")
        await alice.send(f"<presence to='{ROOM}/alice'>{MUC_X}</presence>")
        await alice.read_until(b"<status code='201'/>")
        await alice.send(f"<iq to='{ROOM}' type='set' id='instant'><query xmlns="
                         "'http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                         "type='submit'/></query></iq>")
        await alice.read_until(b"id='instant'")
        carol = await h.login("carol")
        for sent, kind, expected in REFUSALS:
            await carol.send(sent)
            data = await carol.read_until(ANY_STANZA)
            answer = parse_stanza(ANY_STANZA.search(data).group(0))
            assert answer.tag == f"{{jabber:client}}{kind}", (sent, data)
            assert answer.get("type") == "error", (sent, data)
            condition, by = condition_of(answer)
            assert condition == expected, (sent, data)
            assert by == sent.split("to='")[1].split("'")[0].split("/")[0], data
            assert b"<body>" not in data  # the sender's payload is not echoed back
        # The room still works for its owner, and the server for everyone.
        await alice.send(f"<message to='{ROOM}' type='groupchat' id='ok'><body>still here"
                         "</body></message>")
        await alice.read_until(b"still here")
        await h.assert_still_serving(sender="bob", receiver="carol")
