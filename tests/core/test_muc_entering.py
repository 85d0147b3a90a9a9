"""Creating and entering rooms, presence, nick changes and leaving: XEP-0045 §7.1-§7.7,
§7.14, §10.1 on the sans-I/O core."""

from __future__ import annotations

import pytest
from muc_fixtures import (
    ADMIN,
    EVE,
    HAG,
    OWNER,
    ROOM,
    SERVICE,
    Muc,
    codes,
    error_reply,
    item,
    only,
    sent,
)

from stockade.core.jid import JID
from stockade.core.muc import DeleteRoom, MucLimits, SaveRoom
from stockade.core.muc._ns import NS_DELAY, NS_MUC, NS_MUC_USER


@pytest.fixture
def muc() -> Muc:
    return Muc()


# ---------------------------------------------------------------------- creation §10.1


def test_entering_a_new_room_creates_it_locked_with_the_creator_as_owner(muc: Muc) -> None:
    effects = muc.join(OWNER, "firstwitch")
    own = only(effects, OWNER, "presence")
    assert codes(own) == {"110", "201"}  # §10.1.1
    assert item(own) == {"affiliation": "owner", "role": "moderator", "jid": OWNER}
    assert own.get("id") == "j-firstwitch"  # §7.2.2: the join's id reflected
    subject = only(effects, OWNER, "message")  # §7.2.15: an empty subject closes the join
    assert subject.find(subject.ns, "subject") is not None
    # §7.2.10: while locked the room does not exist for anyone else.
    assert error_reply(muc.join(HAG, "thirdwitch")) == "item-not-found"


def test_instant_room_unlocks_with_an_empty_submitted_form(muc: Muc) -> None:
    muc.join(OWNER, "firstwitch")
    effects = muc.configure(OWNER, {})
    assert SaveRoom(JID.parse(ROOM)) in effects
    assert only(effects, OWNER, "iq").get("type") == "result"
    joined = muc.join(HAG, "thirdwitch")
    assert codes(sent(joined, HAG, "presence")[-1]) == {"110"}


def test_cancelling_the_initial_configuration_destroys_the_room(muc: Muc) -> None:
    muc.join(OWNER, "firstwitch")
    effects = muc.send(f"<iq from='{OWNER}' to='{ROOM}' type='set' id='c'><query xmlns="
                       "'http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                       "type='cancel'/></query></iq>")
    gone = only(effects, OWNER, "presence")
    assert gone.get("type") == "unavailable"
    assert gone.find(NS_MUC_USER, "x").find(NS_MUC_USER, "destroy") is not None  # §10.9
    assert DeleteRoom(JID.parse(ROOM)) in effects
    assert JID.parse(ROOM) not in muc.service.rooms


def test_owner_leaving_a_locked_room_destroys_it(muc: Muc) -> None:
    muc.join(OWNER, "firstwitch")
    effects = muc.leave(OWNER, "firstwitch")
    assert DeleteRoom(JID.parse(ROOM)) in effects  # §10.1.3
    assert not muc.service.rooms


def test_room_creation_is_limited_per_user_and_per_service() -> None:
    muc = Muc(MucLimits(max_rooms=3, max_rooms_per_user=2))
    for name in ("a", "b"):
        muc.create(room=f"{name}@{SERVICE}")
    # §10.1.1 "not-allowed"; §14.6: "limiting the number of rooms that any given
    # non-administrative user can own".
    assert error_reply(muc.join(OWNER, "me", room=f"c@{SERVICE}")) == "not-allowed"
    muc.create(owner=HAG, room=f"c@{SERVICE}")
    assert error_reply(muc.join(EVE, "eve", room=f"d@{SERVICE}")) == "not-allowed"
    assert len(muc.service.rooms) == 3


def test_a_refused_creation_leaves_no_room_behind(muc: Muc) -> None:
    effects = muc.send(f"<presence from='{OWNER}' to='{ROOM}/x'><x xmlns='{NS_MUC}'>"
                       "<history maxstanzas='lots'/></x></presence>")
    assert error_reply(effects) == "bad-request"
    assert not muc.service.rooms


# ---------------------------------------------------------------------- entering §7.2


def test_join_order_others_then_self_then_history_then_subject(muc: Muc) -> None:
    muc.create()
    muc.join(HAG, "thirdwitch")
    muc.say(HAG, "hello")
    effects = muc.join(EVE, "eve")
    mine = sent(effects, EVE)
    names = [(e.name, e.get("from")) for e in mine]
    assert names == [("presence", f"{ROOM}/firstwitch"), ("presence", f"{ROOM}/thirdwitch"),
                     ("presence", f"{ROOM}/eve"), ("message", f"{ROOM}/thirdwitch"),
                     ("message", ROOM)]
    assert codes(mine[2]) == {"110"}
    assert mine[3].find(NS_DELAY, "delay").get("from") == ROOM  # §7.2.13
    # The others hear of eve, each once.
    assert [e.get("from") for e in sent(effects, OWNER)] == [f"{ROOM}/eve"]
    assert [e.get("from") for e in sent(effects, HAG)] == [f"{ROOM}/eve"]


def test_semi_anonymous_room_shows_real_jids_to_moderators_only(muc: Muc) -> None:
    muc.create()
    effects = muc.join(HAG, "thirdwitch")
    assert item(only(effects, OWNER))["jid"] == HAG  # the owner moderates
    effects = muc.join(EVE, "eve")
    assert "jid" not in item(only(effects, HAG))  # a participant does not see eve's JID
    seen_by_eve = {e.get("from"): item(e) for e in sent(effects, EVE, "presence")}
    assert "jid" not in seen_by_eve[f"{ROOM}/firstwitch"]
    assert "100" not in codes(sent(effects, EVE, "presence")[-1])


def test_non_anonymous_room_shows_real_jids_to_all_and_warns(muc: Muc) -> None:
    muc.create(whois="anyone")
    muc.join(HAG, "thirdwitch")
    effects = muc.join(EVE, "eve")
    assert item(only(effects, HAG))["jid"] == EVE
    own = sent(effects, EVE, "presence")[-1]
    assert codes(own) == {"100", "110"}  # §7.2.3


def test_entry_refusals_carry_the_muc_x_and_the_room_as_by(muc: Muc) -> None:
    muc.create(membersonly="1")
    (error,) = sent(muc.join(HAG, "thirdwitch"))
    assert error.get("type") == "error"
    assert error.find(NS_MUC, "x") is not None  # §7.2.6 example
    err = error.find(error.ns, "error")
    assert err.get("by") == ROOM
    assert err.get("type") == "auth"


@pytest.mark.parametrize(("config", "condition"), [
    ({"membersonly": "1"}, "registration-required"),  # §7.2.6
    ({"passwordprotectedroom": "1", "roomsecret": "cauldron"}, "not-authorized"),  # §7.2.5
])
def test_members_only_and_password_protected_rooms(config: dict[str, str],
                                                   condition: str) -> None:
    muc = Muc()
    muc.create(**config)
    assert error_reply(muc.join(HAG, "thirdwitch")) == condition


def test_the_right_password_lets_one_in(muc: Muc) -> None:
    muc.create(passwordprotectedroom="1", roomsecret="cauldron")
    assert error_reply(muc.join(HAG, "h", muc_x="<password>wrong</password>")) \
        == "not-authorized"
    joined = muc.join(HAG, "h", muc_x="<password>cauldron</password>")
    assert codes(sent(joined, HAG, "presence")[-1]) == {"110"}


@pytest.mark.parametrize("nick", ["", "   ", "\u3000", "\u0301", "x" * 65])
def test_unusable_nicknames_are_jid_malformed(muc: Muc, nick: str) -> None:
    muc.create()
    to = f"{ROOM}/{nick}" if nick else ROOM
    effects = muc.send(f"<presence from='{HAG}' to='{to}'><x xmlns='{NS_MUC}'/></presence>")
    assert error_reply(effects) == "jid-malformed"  # §7.2.1, §17.1


def test_nick_conflict_is_case_and_width_insensitive(muc: Muc) -> None:
    muc.create(nick="Witch")
    assert error_reply(muc.join(HAG, "witch")) == "conflict"  # §7.2.8
    assert error_reply(muc.join(HAG, "\uff37itch")) == "conflict"  # fullwidth W


def test_a_second_session_of_the_same_user_shares_the_nick(muc: Muc) -> None:
    muc.create()
    muc.join(HAG, "thirdwitch")
    phone = "hag@example.org/phone"
    effects = muc.join(phone, "thirdwitch")
    assert codes(sent(effects, phone, "presence")[-1]) == {"110"}  # §7.2.8 multi-session
    muc.say(OWNER, "to both")
    message_to = {str(e.to) for e in muc.say(OWNER, "again", msg_id="m2")
                  if e.element.name == "message"}
    assert {HAG, phone} <= message_to
    # One session leaving keeps the occupant: the others see an update, not a departure.
    effects = muc.leave(phone, "thirdwitch")
    assert only(effects, phone).get("type") == "unavailable"
    assert only(effects, OWNER).get("type") is None


def test_a_full_room_refuses_newcomers_but_admits_admins() -> None:
    muc = Muc(MucLimits(admin_extra_occupants=1))
    muc.create(maxusers="10")
    for n in range(9):
        muc.join(f"u{n}@example.org/r", f"u{n}")
    (error,) = sent(muc.join(HAG, "late"))
    assert error.find(error.ns, "error").get("type") == "wait"  # §7.2.9
    muc.admin(OWNER, "<item affiliation='admin' jid='wicca@example.org'/>")
    assert codes(sent(muc.join(ADMIN, "admin"), ADMIN, "presence")[-1]) == {"110"}


def test_presence_without_muc_x_from_a_non_occupant_gets_a_kick(muc: Muc) -> None:
    muc.create()
    effects = muc.send(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'/>")
    kick = only(effects, HAG)
    assert kick.get("type") == "unavailable"
    assert codes(kick) == {"110", "307", "333"}  # §7.2.18


def test_a_join_from_an_occupant_resends_the_room(muc: Muc) -> None:
    muc.create()
    muc.join(HAG, "thirdwitch")
    effects = muc.join(HAG, "thirdwitch")  # §7.2.1: the client lost track
    names = [e.name for e in sent(effects, HAG)]
    assert names == ["presence", "presence", "message"]
    assert codes(sent(effects, HAG)[1]) == {"110"}


# ---------------------------------------------------------------------- presence §7.6-§7.7


def test_presence_update_is_broadcast_without_muc_payloads_from_the_client(muc: Muc) -> None:
    muc.create()
    muc.join(HAG, "thirdwitch")
    effects = muc.send(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'><show>away</show>"
                       f"<x xmlns='{NS_MUC_USER}'><status code='201'/></x></presence>")
    seen = only(effects, OWNER)
    assert seen.find(seen.ns, "show").text == "away"
    # §17.3 rule 6: the client's own muc#user payload is not reflected.
    assert len(seen.find_all(NS_MUC_USER, "x")) == 1
    assert codes(seen) == set()


def test_nick_change_sends_303_then_the_new_presence(muc: Muc) -> None:
    muc.create()
    muc.join(HAG, "thirdwitch")
    effects = muc.send(f"<presence from='{HAG}' to='{ROOM}/oldhag'/>")
    old, new = sent(effects, OWNER)
    assert old.get("from") == f"{ROOM}/thirdwitch" and old.get("type") == "unavailable"
    assert codes(old) == {"303"} and item(old)["nick"] == "oldhag"  # §7.6
    assert new.get("from") == f"{ROOM}/oldhag" and new.get("type") is None
    assert [codes(e) for e in sent(effects, HAG)] == [{"110", "303"}, {"110"}]
    assert error_reply(muc.send(f"<presence from='{HAG}' to='{ROOM}/firstwitch'/>")) \
        == "conflict"


# ---------------------------------------------------------------------- leaving §7.14


def test_leaving_tells_everyone_with_role_none_and_the_exit_message(muc: Muc) -> None:
    muc.create(persistentroom="1")
    muc.join(HAG, "thirdwitch")
    effects = muc.send(f"<presence from='{HAG}' to='{ROOM}/thirdwitch' type='unavailable'>"
                       "<status>gone</status></presence>")
    to_owner, to_self = only(effects, OWNER), only(effects, HAG)
    assert item(to_owner)["role"] == "none"
    assert to_owner.find(to_owner.ns, "status").text == "gone"
    assert codes(to_self) == {"110"}


def test_unavailable_from_a_non_occupant_is_ignored(muc: Muc) -> None:
    muc.create()
    assert muc.leave(HAG, "thirdwitch") == []  # §17.3 rule 5


def test_a_temporary_room_goes_with_its_last_occupant(muc: Muc) -> None:
    muc.create()
    effects = muc.leave(OWNER, "firstwitch")
    assert DeleteRoom(JID.parse(ROOM)) in effects  # §7.14
    assert not muc.service.rooms


def test_a_persistent_room_stays_empty(muc: Muc) -> None:
    muc.create(persistentroom="1")
    effects = muc.leave(OWNER, "firstwitch")
    assert not any(isinstance(e, DeleteRoom) for e in effects)
    assert JID.parse(ROOM) in muc.service.rooms


def test_a_session_that_ends_leaves_every_room(muc: Muc) -> None:
    muc.create()
    muc.create(room=f"heath@{SERVICE}")
    muc.join(HAG, "h")
    muc.join(HAG, "h", room=f"heath@{SERVICE}")
    rooms = muc.service.rooms_of(JID.parse(HAG))
    assert [str(r) for r in rooms] == [ROOM, f"heath@{SERVICE}"]
    effects = [e for r in rooms for e in muc.service.leave(JID.parse(HAG), r)]
    assert {e.get("from") for e in sent(effects, OWNER)} == {f"{ROOM}/h", f"heath@{SERVICE}/h"}
    assert muc.service.rooms_of(JID.parse(HAG)) == []


def test_shutdown_tells_each_occupant_332(muc: Muc) -> None:
    muc.create()
    muc.join(HAG, "h")
    effects = muc.service.shutdown()
    assert {str(e.to) for e in effects} == {OWNER, HAG}
    assert all(codes(e) == {"110", "332"} for e in sent(effects))
