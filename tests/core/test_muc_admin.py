"""Moderation, affiliations, configuration, invitations and destruction: XEP-0045 §5, §7.8,
§8, §9, §10 on the sans-I/O core."""

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

from stockade.core.errors import StanzaError
from stockade.core.jid import JID
from stockade.core.muc import Affiliation, DeleteRoom, MucLimits, Role, RoomConfig, SaveRoom
from stockade.core.muc._ns import NS_DATA, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER
from stockade.core.muc.config import apply_config_form
from stockade.core.muc.roles import check_affiliation_change, check_role_change, default_role
from stockade.core.xml import Element

OWN, A, M, N, X = (Affiliation.OWNER, Affiliation.ADMIN, Affiliation.MEMBER, Affiliation.NONE,
                 Affiliation.OUTCAST)
MOD, PART, VIS, NONE = Role.MODERATOR, Role.PARTICIPANT, Role.VISITOR, Role.NONE


@pytest.fixture
def muc() -> Muc:
    room = Muc()
    room.create()
    room.admin(OWNER, "<item affiliation='admin' jid='wicca@example.org'/>")
    for who, nick in ((ADMIN, "secondwitch"), (HAG, "thirdwitch"), (EVE, "eve")):
        room.join(who, nick)
    return room


def result(effects: list) -> Element:
    (iq,) = [e for e in sent(effects) if e.name == "iq"]
    assert iq.get("type") == "result", iq
    return iq


def listed(effects: list) -> list[dict[str, str]]:
    query = result(effects).find(NS_MUC_ADMIN, "query")
    assert query is not None
    return [i.attrs for i in query.find_all(NS_MUC_ADMIN, "item")]


# ---------------------------------------------------------------------- the tables §5


def test_default_roles_follow_section_5_1_2() -> None:
    table = {(OWN, False): MOD, (A, False): MOD, (M, False): PART, (N, False): PART,
             (OWN, True): MOD, (A, True): MOD, (M, True): PART, (N, True): VIS}
    for (affiliation, moderated), role in table.items():
        assert default_role(affiliation, moderated) is role


@pytest.mark.parametrize(("actor", "target", "target_role", "new", "condition"), [
    (N, N, PART, NONE, None),  # a moderator kicks a participant
    (M, A, MOD, NONE, "not-allowed"),  # §8.2: not someone of a higher affiliation
    (A, OWN, MOD, NONE, "not-allowed"),
    (OWN, A, MOD, NONE, None),  # an owner may kick an admin
    (N, N, PART, VIS, None),  # §8.4 revoke voice
    (OWN, A, MOD, VIS, "not-allowed"),  # "MUST NOT allow the voice ... of an admin ... removed"
    (N, N, PART, MOD, "forbidden"),  # §9.6: only admins grant moderator
    (A, N, PART, MOD, None),
    (A, M, MOD, PART, None),  # §9.7 revoke moderator from a member
    (A, A, MOD, PART, "not-allowed"),  # but never from an admin or owner
])
def test_role_change_rules(actor: Affiliation, target: Affiliation, target_role: Role,
                           new: Role, condition: str | None) -> None:
    def check() -> None:
        check_role_change(actor, MOD, target, target_role, new, is_self=False)
    if condition is None:
        check()
    else:
        with pytest.raises(StanzaError) as refused:
            check()
        assert refused.value.condition.value == condition


@pytest.mark.parametrize(("actor", "target", "new", "is_self", "condition"), [
    (A, N, X, False, None),  # §9.1 an admin bans
    (A, N, M, False, None),  # §9.3
    (A, OWN, X, False, "not-allowed"),  # §9.1: not an owner
    (A, N, A, False, "forbidden"),  # §10.6: only owners grant admin
    (OWN, A, N, False, None),
    (OWN, OWN, X, True, "conflict"),  # §9.1: nobody bans themselves
    (M, N, M, False, "forbidden"),
])
def test_affiliation_change_rules(actor: Affiliation, target: Affiliation, new: Affiliation,
                                  is_self: bool, condition: str | None) -> None:
    def check() -> None:
        check_affiliation_change(actor, target, new, is_self=is_self)
    if condition is None:
        check()
    else:
        with pytest.raises(StanzaError) as refused:
            check()
        assert refused.value.condition.value == condition


# ---------------------------------------------------------------------- roles §8


def test_kick_removes_with_307_actor_and_reason(muc: Muc) -> None:
    effects = muc.admin(ADMIN, "<item nick='eve' role='none'><reason>out</reason></item>")
    to_eve = only(effects, EVE)
    assert to_eve.get("type") == "unavailable" and codes(to_eve) == {"110", "307"}
    x = to_eve.find(NS_MUC_USER, "x").find(NS_MUC_USER, "item")
    assert x.find(NS_MUC_USER, "actor").get("nick") == "secondwitch"
    assert x.find(NS_MUC_USER, "reason").text == "out"
    assert codes(only(effects, HAG)) == {"307"}
    result(effects)
    assert error_reply(muc.say(EVE, "still here?")) == "not-acceptable"


def test_participants_cannot_kick_and_nobody_kicks_the_owner(muc: Muc) -> None:
    assert error_reply(muc.admin(HAG, "<item nick='eve' role='none'/>")) == "forbidden"
    assert error_reply(muc.admin(ADMIN, "<item nick='firstwitch' role='none'/>")) \
        == "not-allowed"
    assert error_reply(muc.admin(ADMIN, "<item nick='nobody' role='none'/>")) \
        == "item-not-found"


@pytest.mark.parametrize("items", [
    "<item nick='eve' role='none' affiliation='none'/>",  # §17.4 rule 4: one or the other
    "<item role='none'/>",
    "<item nick='eve' role='king'/>",
    "",
])
def test_malformed_admin_items_are_bad_requests(muc: Muc, items: str) -> None:
    assert error_reply(muc.admin(OWNER, items)) == "bad-request"


def test_a_refused_item_applies_nothing(muc: Muc) -> None:
    effects = muc.admin(ADMIN, "<item nick='eve' role='none'/>"
                               "<item nick='firstwitch' role='none'/>")
    assert error_reply(effects) == "not-allowed"
    assert muc.service.rooms[JID.parse(ROOM)].occupant_by_nick("eve") is not None


def test_granting_moderator_in_a_semi_anonymous_room_reveals_jids(muc: Muc) -> None:
    effects = muc.admin(OWNER, "<item nick='thirdwitch' role='moderator'/>")
    to_hag = sent(effects, HAG, "presence")
    assert item(to_hag[0])["role"] == "moderator"
    seen = {p.get("from"): item(p).get("jid") for p in to_hag[1:]}
    assert seen[f"{ROOM}/eve"] == EVE


def test_role_lists_are_for_moderators(muc: Muc) -> None:
    items = listed(muc.admin(OWNER, "<item role='participant'/>", kind="get"))
    assert [(i["nick"], i["jid"]) for i in items] == [("thirdwitch", HAG), ("eve", EVE)]
    assert error_reply(muc.admin(HAG, "<item role='moderator'/>", kind="get")) == "forbidden"


# ---------------------------------------------------------------------- affiliations §9-§10


def test_ban_removes_with_301_and_keeps_them_out(muc: Muc) -> None:
    effects = muc.admin(ADMIN, "<item affiliation='outcast' jid='eve@example.org'>"
                               "<reason>spam</reason></item>")
    to_eve = only(effects, EVE)
    assert codes(to_eve) == {"110", "301"} and item(to_eve)["affiliation"] == "outcast"
    assert SaveRoom(JID.parse(ROOM)) in effects
    assert error_reply(muc.join(EVE, "eve")) == "forbidden"
    bans = listed(muc.admin(ADMIN, "<item affiliation='outcast'/>", kind="get"))
    assert [i["jid"] for i in bans] == ["eve@example.org"]


def test_a_domain_ban_keeps_the_whole_domain_out(muc: Muc) -> None:
    muc.admin(OWNER, "<item affiliation='outcast' jid='evil.example'/>")
    assert error_reply(muc.join("mallory@evil.example/x", "m")) == "forbidden"  # §9.2


def test_self_ban_and_last_owner_demotion_are_conflicts(muc: Muc) -> None:
    assert error_reply(muc.admin(OWNER, "<item affiliation='outcast' "
                                        "jid='crone@example.org'/>")) == "conflict"
    assert error_reply(muc.admin(OWNER, "<item affiliation='admin' "
                                        "jid='crone@example.org'/>")) == "conflict"
    muc.admin(OWNER, "<item affiliation='owner' jid='hag@example.org'/>")
    effects = muc.admin(OWNER, "<item affiliation='member' jid='crone@example.org'/>")
    result(effects)  # §10.4: allowed once there is another owner


def test_admins_cannot_touch_owners_or_make_admins(muc: Muc) -> None:
    assert error_reply(muc.admin(ADMIN, "<item affiliation='outcast' "
                                        "jid='crone@example.org'/>")) == "not-allowed"
    assert error_reply(muc.admin(ADMIN, "<item affiliation='admin' "
                                        "jid='hag@example.org'/>")) == "forbidden"


def test_becoming_admin_makes_a_moderator_and_losing_it_a_participant(muc: Muc) -> None:
    effects = muc.admin(OWNER, "<item affiliation='admin' jid='hag@example.org'/>")
    assert item(only(effects, EVE, "presence")) == {"affiliation": "admin",
                                                    "role": "moderator"}
    effects = muc.admin(OWNER, "<item affiliation='none' jid='hag@example.org'/>")
    assert item(only(effects, EVE, "presence"))["role"] == "participant"


def test_members_only_room_removes_a_revoked_member_with_321() -> None:
    muc = Muc()
    muc.create(membersonly="1")
    muc.admin(OWNER, "<item affiliation='member' jid='hag@example.org'/>")
    muc.join(HAG, "thirdwitch")
    effects = muc.admin(OWNER, "<item affiliation='none' jid='hag@example.org'/>")
    to_hag = only(effects, HAG)
    assert to_hag.get("type") == "unavailable" and codes(to_hag) == {"110", "321"}


def test_adding_an_absent_member_invites_them_and_notifies_a_non_anonymous_room() -> None:
    muc = Muc()
    muc.create(membersonly="1", whois="anyone")
    effects = muc.admin(OWNER, "<item affiliation='member' jid='hag@example.org' "
                               "nick='thirdwitch'/>")
    notice = only(effects, OWNER, "message")  # §10.6 MAY; kept to non-anonymous rooms
    assert notice.find(NS_MUC_USER, "x").find(NS_MUC_USER, "item").get("jid") \
        == "hag@example.org"
    invite = only(effects, "hag@example.org", "message")  # §9.5 SHOULD invite
    assert invite.find(NS_MUC_USER, "x").find(NS_MUC_USER, "invite").get("from") \
        == "crone@example.org"
    members = listed(muc.admin(OWNER, "<item affiliation='member'/>", kind="get"))
    assert members == [{"affiliation": "member", "jid": "hag@example.org",
                        "nick": "thirdwitch"}]
    # §7.12: the reserved nick is discoverable and kept for its owner.
    assert error_reply(muc.join(EVE, "thirdwitch")) == "registration-required"
    muc.admin(OWNER, "<item affiliation='member' jid='eve@example.org'/>")
    assert error_reply(muc.join(EVE, "thirdwitch")) == "conflict"


def test_who_may_read_the_member_list() -> None:
    semi = Muc()
    semi.create(membersonly="1")
    semi.admin(OWNER, "<item affiliation='member' jid='hag@example.org'/>")
    semi.join(HAG, "h")
    # §5.2.1 note ***: not in a semi-anonymous room ...
    assert error_reply(semi.admin(HAG, "<item affiliation='member'/>", kind="get")) \
        == "forbidden"
    non_anonymous = Muc()
    non_anonymous.create(membersonly="1", whois="anyone")
    non_anonymous.admin(OWNER, "<item affiliation='member' jid='hag@example.org'/>")
    # ... but in a non-anonymous one, even before entering (§9.5).
    members = listed(non_anonymous.admin(HAG, "<item affiliation='member'/>", kind="get"))
    assert [m["jid"] for m in members] == ["hag@example.org"]
    assert error_reply(non_anonymous.admin(HAG, "<item affiliation='outcast'/>",
                                           kind="get")) == "forbidden"
    assert error_reply(non_anonymous.admin(EVE, "<item affiliation='member'/>",
                                           kind="get")) == "forbidden"


def test_affiliations_are_bounded() -> None:
    muc = Muc(MucLimits(max_affiliations=2))
    muc.create()
    result(muc.admin(OWNER, "<item affiliation='member' jid='a@example.org'/>"))
    assert error_reply(muc.admin(OWNER, "<item affiliation='member' jid='b@example.org'/>")) \
        == "resource-constraint"


# ---------------------------------------------------------------------- owner §10


def owner_get(muc: Muc, who: str = OWNER) -> list:
    return muc.send(f"<iq from='{who}' to='{ROOM}' type='get' id='o'>"
                    f"<query xmlns='{NS_MUC_OWNER}'/></iq>")


def test_configuration_form_has_the_standard_fields(muc: Muc) -> None:
    form = result(owner_get(muc)).find(NS_MUC_OWNER, "query").find(NS_DATA, "x")
    fields = {f.get("var") for f in form.find_all(NS_DATA, "field")}
    for name in ("roomname", "roomdesc", "persistentroom", "publicroom", "membersonly",
                 "whois", "moderatedroom", "passwordprotectedroom", "roomsecret", "maxusers",
                 "changesubject", "allowinvites", "enablelogging", "enablearchiving",
                 "allowpm"):
        assert f"muc#roomconfig_{name}" in fields
    assert {"FORM_TYPE", "muc#maxhistoryfetch"} <= fields
    assert error_reply(owner_get(muc, ADMIN)) == "forbidden"  # §10.2


@pytest.mark.parametrize(("fields", "condition"), [
    ({"muc#roomconfig_passwordprotectedroom": "1"}, "not-acceptable"),  # §10.1.3 example
    ({"muc#roomconfig_maxusers": "100000"}, "not-acceptable"),
    ({"muc#roomconfig_whois": "none"}, "not-acceptable"),
    ({"muc#roomconfig_membersonly": "maybe"}, "not-acceptable"),
    ({"muc#roomconfig_roomname": ["a", "b"]}, "not-acceptable"),
])
def test_unacceptable_configurations(muc: Muc, fields: dict, condition: str) -> None:
    assert error_reply(muc.configure(OWNER, fields)) == condition


def test_configuration_form_parsing_keeps_what_is_not_submitted() -> None:
    limits = MucLimits()
    config = apply_config_form(RoomConfig(name="Cave", password="s3"), {
        "muc#roomconfig_moderatedroom": ["true"], "x-unknown": ["ignored"]}, limits)
    assert (config.name, config.password, config.moderated) == ("Cave", "s3", True)
    cleared = apply_config_form(config, {"muc#roomconfig_passwordprotectedroom": ["0"]},
                                limits)
    assert cleared.password == ""
    with pytest.raises(StanzaError, match="bad-request"):
        apply_config_form(config, {"FORM_TYPE": ["urn:other"]}, limits)


def test_stored_configuration_round_trip() -> None:
    config = RoomConfig(name="Cave", persistent=True, whois="anyone", max_users=30)
    assert RoomConfig.from_dict(config.to_dict()) == config
    assert RoomConfig.from_dict({"name": "x", "from_the_future": 1}).name == "x"
    with pytest.raises(ValueError, match="wrong type"):
        RoomConfig.from_dict({"persistent": "yes"})


def test_privacy_changes_are_announced_with_their_codes(muc: Muc) -> None:
    effects = muc.configure(OWNER, {"muc#roomconfig_whois": "anyone",
                                    "muc#roomconfig_enablearchiving": "1"})
    notice = [m for m in sent(effects, HAG, "message")]
    assert [codes(m) for m in notice] == [{"170", "172"}]  # §10.2.1
    # Now non-anonymous: everyone gets presence with real JIDs.
    assert any(item(p).get("jid") == EVE for p in sent(effects, HAG, "presence"))
    effects = muc.configure(OWNER, {"muc#roomconfig_roomname": "Cave"})
    assert [codes(m) for m in sent(effects, HAG, "message")] == [{"104"}]


def test_becoming_members_only_removes_non_members_with_322(muc: Muc) -> None:
    effects = muc.configure(OWNER, {"muc#roomconfig_membersonly": "1"})
    own = [p for p in sent(effects, EVE, "presence") if p.get("from") == f"{ROOM}/eve"]
    assert [codes(p) for p in own] == [{"110", "322"}]  # §10.2
    removed = {p.get("from"): codes(p) for p in sent(effects, ADMIN, "presence")}
    assert removed == {f"{ROOM}/thirdwitch": {"322"}, f"{ROOM}/eve": {"322"}}
    room = muc.service.rooms[JID.parse(ROOM)]
    assert {o.nick for o in room.occupants} == {"firstwitch", "secondwitch"}


def test_destroy_sends_one_unavailable_each_and_forgets_the_room(muc: Muc) -> None:
    effects = muc.send(f"<iq from='{OWNER}' to='{ROOM}' type='set' id='d'><query xmlns="
                       f"'{NS_MUC_OWNER}'><destroy jid='heath@{SERVICE}'><reason>Macbeth doth "
                       "come.</reason></destroy></query></iq>")
    to_eve = only(effects, EVE)
    destroy = to_eve.find(NS_MUC_USER, "x").find(NS_MUC_USER, "destroy")
    assert destroy.get("jid") == f"heath@{SERVICE}"
    assert destroy.find(NS_MUC_USER, "reason").text == "Macbeth doth come."
    assert DeleteRoom(JID.parse(ROOM)) in effects
    assert JID.parse(ROOM) not in muc.service.rooms
    assert error_reply(muc.say(EVE, "hello?")) == "item-not-found"


def test_only_owners_destroy(muc: Muc) -> None:
    effects = muc.send(f"<iq from='{ADMIN}' to='{ROOM}' type='set' id='d'><query xmlns="
                       f"'{NS_MUC_OWNER}'><destroy/></query></iq>")
    assert error_reply(effects) == "forbidden"


# ---------------------------------------------------------------------- invitations §7.8


def invite(muc: Muc, who: str, to: str = "newbie@example.org", extra: str = "") -> list:
    return muc.send(f"<message from='{who}' to='{ROOM}' id='inv'><x xmlns='{NS_MUC_USER}'>"
                    f"<invite to='{to}'><reason>join us</reason></invite>{extra}</x>"
                    "</message>")


def test_mediated_invitation_carries_inviter_reason_and_password() -> None:
    muc = Muc()
    muc.create(passwordprotectedroom="1", roomsecret="cauldron")
    effects = invite(muc, OWNER)
    message = only(effects, "newbie@example.org")
    assert message.get("from") == ROOM
    x = message.find(NS_MUC_USER, "x")
    assert x.find(NS_MUC_USER, "invite").get("from") == "crone@example.org"
    assert x.find(NS_MUC_USER, "invite").find(NS_MUC_USER, "reason").text == "join us"
    assert x.find(NS_MUC_USER, "password").text == "cauldron"


def test_invitations_in_members_only_rooms() -> None:
    muc = Muc()
    muc.create(membersonly="1")
    muc.admin(OWNER, "<item affiliation='member' jid='hag@example.org'/>")
    muc.join(HAG, "h")
    assert error_reply(invite(muc, HAG)) == "forbidden"  # §9.5: members may not by default
    muc.configure(OWNER, {"muc#roomconfig_allowinvites": "1"})
    effects = invite(muc, HAG)
    assert SaveRoom(JID.parse(ROOM)) in effects
    room = muc.service.rooms[JID.parse(ROOM)]
    assert room.affiliation_of(JID.parse("newbie@example.org")) is Affiliation.MEMBER


def test_invitations_in_open_rooms_add_no_members(muc: Muc) -> None:
    invite(muc, EVE)
    room = muc.service.rooms[JID.parse(ROOM)]
    assert room.affiliation_of(JID.parse("newbie@example.org")) is Affiliation.NONE
    assert error_reply(invite(muc, "stranger@example.org/x")) == "not-acceptable"
    assert error_reply(invite(muc, EVE, to="not a jid@@")) == "jid-malformed"


def test_invitations_per_message_are_bounded(muc: Muc) -> None:
    many = "".join(f"<invite to='u{n}@example.org'/>" for n in range(11))
    effects = muc.send(f"<message from='{EVE}' to='{ROOM}'><x xmlns='{NS_MUC_USER}'>{many}"
                       "</x></message>")
    assert error_reply(effects) == "not-acceptable"


def test_a_decline_reaches_only_someone_the_room_knows(muc: Muc) -> None:
    decline = (f"<message from='newbie@example.org/x' to='{ROOM}'><x xmlns='{NS_MUC_USER}'>"
               "<decline to='{to}'><reason>busy</reason></decline></x></message>")
    effects = muc.send(decline.replace("{to}", "crone@example.org"))
    message = only(effects, "crone@example.org")
    assert message.find(NS_MUC_USER, "x").find(NS_MUC_USER, "decline").get("from") \
        == "newbie@example.org"
    # SECURITY: not a way to have the room message arbitrary addresses.
    assert error_reply(muc.send(decline.replace("{to}", "victim@example.net"))) \
        == "item-not-found"
