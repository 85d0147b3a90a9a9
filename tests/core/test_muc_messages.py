"""Messages in rooms: groupchat (§7.4), private messages (§7.5), subject (§8.1), history
(§7.2.13-§7.2.14), stanza-ids (XEP-0359), archiving effects, on the sans-I/O core."""

from __future__ import annotations

import pytest
from muc_fixtures import (
    EVE,
    HAG,
    OWNER,
    ROOM,
    Muc,
    error_reply,
    only,
    parse,
    sent,
)

from stockade.core.jid import JID
from stockade.core.muc import ArchiveMessage, MucLimits, SaveRoom
from stockade.core.muc._ns import NS_CLIENT, NS_DELAY, NS_MUC_USER, NS_SID
from stockade.core.muc.history import (
    History,
    HistoryEntry,
    HistoryRequest,
    parse_xep0082,
    xep0082_stamp,
)
from stockade.core.xml import Element


@pytest.fixture
def muc() -> Muc:
    room = Muc()
    room.create()
    room.join(HAG, "thirdwitch")
    return room


def body(element: Element) -> str:
    found = element.find(element.ns, "body")
    assert found is not None
    return found.text


# ---------------------------------------------------------------------- groupchat §7.4


def test_groupchat_is_reflected_to_everyone_from_the_occupant_jid(muc: Muc) -> None:
    effects = muc.say(HAG, "Harpier cries")
    to_owner, to_self = only(effects, OWNER), only(effects, HAG)
    for message in (to_owner, to_self):
        assert message.get("from") == f"{ROOM}/thirdwitch"
        assert message.get("id") == "m1"  # §7.4: the sender's id is kept
        assert body(message) == "Harpier cries"
    sid = to_owner.find(NS_SID, "stanza-id")
    assert sid is not None and sid.get("by") == ROOM
    assert to_self.find(NS_SID, "stanza-id").get("id") == sid.get("id")


def test_spoofed_room_stanza_ids_status_and_delays_are_removed(muc: Muc) -> None:
    effects = muc.send(
        f"<message from='{HAG}' to='{ROOM}' type='groupchat' id='x'><body>hi</body>"
        f"<stanza-id xmlns='{NS_SID}' id='forged' by='{ROOM}'/>"
        f"<stanza-id xmlns='{NS_SID}' id='theirs' by='hag@example.org'/>"
        f"<x xmlns='{NS_MUC_USER}'><status code='110'/></x>"
        f"<delay xmlns='{NS_DELAY}' from='{ROOM}' stamp='2001-01-01T00:00:00Z'/></message>")
    message = only(effects, OWNER)
    ids = {(s.get("by"), s.get("id")) for s in message.find_all(NS_SID, "stanza-id")}
    assert ("hag@example.org", "theirs") in ids
    assert all(i != "forged" for _, i in ids)
    assert message.find(NS_MUC_USER, "x") is None
    assert message.find(NS_DELAY, "delay") is None


def test_non_occupants_and_visitors_cannot_speak() -> None:
    muc = Muc()
    muc.create(moderatedroom="1")
    assert error_reply(muc.say(EVE, "let me in")) == "not-acceptable"  # §7.4
    muc.join(HAG, "thirdwitch")  # no affiliation in a moderated room: a visitor
    assert error_reply(muc.say(HAG, "may I?")) == "forbidden"
    muc.admin(OWNER, "<item nick='thirdwitch' role='participant'/>")  # §8.3 voice
    assert body(only(muc.say(HAG, "thank you"), OWNER)) == "thank you"


def test_messages_of_other_types_to_the_room_are_bad_requests(muc: Muc) -> None:
    effects = muc.send(f"<message from='{HAG}' to='{ROOM}' type='chat'><body>x</body>"
                       "</message>")
    assert error_reply(effects) == "bad-request"  # §17.2 rule 1


def test_errors_are_never_answered(muc: Muc) -> None:
    assert muc.send(f"<message from='{EVE}' to='{ROOM}' type='error'/>") == []
    assert muc.send(f"<message from='{EVE}' to='nowhere@rooms.example.org' type='error'/>") \
        == []


def test_message_to_a_room_that_does_not_exist(muc: Muc) -> None:
    effects = muc.say(HAG, "anyone?", room="nowhere@rooms.example.org")
    assert error_reply(effects) == "item-not-found"  # §17.2 rule 3


def test_only_messages_with_content_are_archived() -> None:
    muc = Muc()
    muc.create(enablearchiving="1")
    effects = muc.say(OWNER, "keep me")
    (archived,) = [e for e in effects if isinstance(e, ArchiveMessage)]
    assert effects.index(archived) == 0  # stored before anyone gets it
    assert body(archived.entry.element) == "keep me"
    assert archived.entry.element.get("to") is None
    chat_state = muc.send(f"<message from='{OWNER}' to='{ROOM}' type='groupchat'><active "
                          "xmlns='http://jabber.org/protocol/chatstates'/></message>")
    assert not any(isinstance(e, ArchiveMessage) for e in chat_state)
    assert len(sent(chat_state)) == 1  # still delivered


def test_nothing_is_archived_without_archiving(muc: Muc) -> None:
    assert not any(isinstance(e, ArchiveMessage) for e in muc.say(OWNER, "ephemeral"))


# ---------------------------------------------------------------------- private §7.5


def test_private_message_goes_to_the_occupant_with_muc_user_x(muc: Muc) -> None:
    effects = muc.send(f"<message from='{OWNER}' to='{ROOM}/thirdwitch' type='chat' "
                       "id='pm'><body>psst</body></message>")
    message = only(effects, HAG)
    assert message.get("from") == f"{ROOM}/firstwitch"
    assert message.get("type") == "chat" and message.get("id") == "pm"
    assert message.find(NS_MUC_USER, "x") is not None
    assert sent(effects, OWNER) == []


@pytest.mark.parametrize(("sender", "to", "kind", "condition"), [
    (OWNER, f"{ROOM}/thirdwitch", "groupchat", "bad-request"),
    (OWNER, f"{ROOM}/nobody", "chat", "item-not-found"),
    (EVE, f"{ROOM}/thirdwitch", "chat", "not-acceptable"),
])
def test_private_message_refusals(muc: Muc, sender: str, to: str, kind: str,
                                  condition: str) -> None:
    effects = muc.send(f"<message from='{sender}' to='{to}' type='{kind}'><body>x</body>"
                       "</message>")
    assert error_reply(effects) == condition


def test_allowpm_limits_who_may_send_private_messages(muc: Muc) -> None:
    muc.configure(OWNER, {"muc#roomconfig_allowpm": "moderators"})
    effects = muc.send(f"<message from='{HAG}' to='{ROOM}/firstwitch' type='chat'>"
                       "<body>x</body></message>")
    assert error_reply(effects) == "forbidden"
    effects = muc.send(f"<message from='{OWNER}' to='{ROOM}/thirdwitch' type='chat'>"
                       "<body>x</body></message>")
    assert len(sent(effects, HAG)) == 1


# ---------------------------------------------------------------------- subject §8.1


def test_only_moderators_change_the_subject_by_default(muc: Muc) -> None:
    effects = muc.send(f"<message from='{HAG}' to='{ROOM}' type='groupchat'><subject>mine"
                       "</subject></message>")
    assert error_reply(effects) == "forbidden"
    effects = muc.send(f"<message from='{OWNER}' to='{ROOM}' type='groupchat' id='s'>"
                       "<subject>Spells</subject></message>")
    to_hag = only(effects, HAG)
    assert to_hag.find(to_hag.ns, "subject").text == "Spells"
    assert to_hag.get("from") == f"{ROOM}/firstwitch"
    assert not any(isinstance(e, SaveRoom) for e in effects)  # a temporary room


def test_changesubject_lets_participants_change_it(muc: Muc) -> None:
    muc.configure(OWNER, {"muc#roomconfig_changesubject": "1"})
    effects = muc.send(f"<message from='{HAG}' to='{ROOM}' type='groupchat'><subject>ours"
                       "</subject></message>")
    assert only(effects, OWNER).find(NS_CLIENT, "subject").text == "ours"


def test_a_subject_with_a_body_is_a_message_not_a_subject_change(muc: Muc) -> None:
    effects = muc.send(f"<message from='{HAG}' to='{ROOM}' type='groupchat'><subject>t"
                       "</subject><body>b</body></message>")
    assert body(only(effects, OWNER)) == "b"  # §8.1 note
    assert muc.service.rooms[JID.parse(ROOM)].subject is None


def test_subject_length_is_bounded() -> None:
    muc = Muc(MucLimits(max_subject_chars=5))
    muc.create()
    effects = muc.send(f"<message from='{OWNER}' to='{ROOM}' type='groupchat'><subject>"
                       "toolong</subject></message>")
    assert error_reply(effects) == "not-acceptable"


def test_subject_on_join_is_stamped_and_from_its_setter() -> None:
    muc = Muc()
    muc.create(persistentroom="1")
    effects = muc.send(f"<message from='{OWNER}' to='{ROOM}' type='groupchat'><subject>Spells"
                       "</subject></message>")
    assert SaveRoom(JID.parse(ROOM)) in effects  # a persistent room keeps its subject
    subject = sent(muc.join(HAG, "thirdwitch"), HAG, "message")[-1]
    assert subject.get("from") == f"{ROOM}/firstwitch"
    assert subject.find(NS_DELAY, "delay").get("stamp") == xep0082_stamp(muc.now)


# ---------------------------------------------------------------------- history §7.2.14


def test_history_is_bounded_by_the_service(muc: Muc) -> None:
    small = Muc(MucLimits(history_max_stanzas=2))
    small.create()
    for n in range(4):
        small.say(OWNER, f"m{n}", msg_id=f"i{n}")
    got = sent(small.join(HAG, "h"), HAG, "message")[:-1]
    assert [body(m) for m in got] == ["m2", "m3"]


@pytest.mark.parametrize(("attrs", "expected"), [
    ("", ["old", "mid", "new"]),
    ("maxstanzas='2'", ["mid", "new"]),
    ("maxchars='0'", []),
    ("seconds='150'", ["mid", "new"]),
    ("since='1970-01-12T13:48:21Z'", ["new"]),  # 1_000_101 s after the epoch
    ("maxstanzas='2' seconds='50'", ["new"]),  # the smallest that meets all criteria
])
def test_history_request_attributes(attrs: str, expected: list[str]) -> None:
    muc = Muc()
    muc.create()
    for text, at in (("old", 1_000_000.0), ("mid", 1_000_100.0), ("new", 1_000_200.0)):
        muc.now = at
        muc.say(OWNER, text, msg_id=text)
    muc.now = 1_000_200.0
    got = sent(muc.join(HAG, "h", muc_x=f"<history {attrs}/>"), HAG, "message")[:-1]
    assert [body(m) for m in got] == expected


@pytest.mark.parametrize("attrs", ["maxstanzas='-1'", "seconds='soon'",
                                   "since='yesterday'", "since='2024-01-01T00:00:00'"])
def test_malformed_history_requests_are_bad_requests(muc: Muc, attrs: str) -> None:
    assert error_reply(muc.join(EVE, "e", muc_x=f"<history {attrs}/>")) == "bad-request"


def test_maxchars_counts_whole_stanzas() -> None:
    entries = [HistoryEntry(str(n), float(n), "n", parse(f"<message><body>{'x' * 10}</body>"
                                                         "</message>")) for n in range(3)]
    history = History(10, entries)
    one = entries[0].chars
    got = history.select(HistoryRequest(maxchars=2 * one + 1), 10, now=10.0)
    assert [e.stanza_id for e in got] == ["1", "2"]


def test_history_resizes_to_the_newest() -> None:
    history = History(5, [HistoryEntry(str(n), float(n), "n", parse("<message/>"))
                          for n in range(5)])
    history.resize(2)
    assert [e.stanza_id for e in history] == ["3", "4"]


def test_xep0082_round_trip() -> None:
    assert parse_xep0082(xep0082_stamp(1_700_000_000.25)) == 1_700_000_000.25
    with pytest.raises(ValueError, match="time zone"):
        parse_xep0082("2024-01-01T00:00:00")
