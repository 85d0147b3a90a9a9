"""The service around the rooms: disco (XEP-0045 §6), archive access (XEP-0313 on rooms),
IQs to occupants (§17.4, XEP-0410 self-ping) and restoring stored rooms."""

from __future__ import annotations

import pytest
from muc_fixtures import (
    EVE,
    HAG,
    OWNER,
    ROOM,
    SERVICE,
    Muc,
    error_reply,
    only,
    parse,
    sent,
)

from stockade.core.jid import JID
from stockade.core.muc import (
    Affiliation,
    AffiliationRecord,
    HistoryEntry,
    QueryArchive,
    RoomConfig,
    RoomSnapshot,
    Subject,
)
from stockade.core.muc._ns import NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MAM
from stockade.core.xml import Element


def iq(muc: Muc, who: str, to: str, payload: str, kind: str = "get") -> list:
    return muc.send(f"<iq from='{who}' to='{to}' type='{kind}' id='q'>{payload}</iq>")


def query_of(effects: list, ns: str) -> Element:
    reply = only(effects, name="iq")
    assert reply.get("type") == "result", reply
    found = reply.find(ns, "query")
    assert found is not None
    return found


DISCO_INFO = f"<query xmlns='{NS_DISCO_INFO}'/>"
DISCO_ITEMS = f"<query xmlns='{NS_DISCO_ITEMS}'/>"


# ---------------------------------------------------------------------- disco §6


def test_service_identity_and_features() -> None:
    muc = Muc()
    info = query_of(iq(muc, HAG, SERVICE, DISCO_INFO), NS_DISCO_INFO)
    identity = info.find(NS_DISCO_INFO, "identity")
    assert (identity.get("category"), identity.get("type")) == ("conference", "text")
    features = {f.get("var") for f in info.find_all(NS_DISCO_INFO, "feature")}
    assert "http://jabber.org/protocol/muc" in features


def test_service_lists_public_unlocked_rooms_only() -> None:
    muc = Muc()
    muc.create(room=f"open@{SERVICE}", publicroom="1", roomname="Open House")
    muc.create(room=f"secret@{SERVICE}")
    muc.join(OWNER, "me", room=f"locked@{SERVICE}")
    items = query_of(iq(muc, HAG, SERVICE, DISCO_ITEMS), NS_DISCO_ITEMS)
    assert [(i.get("jid"), i.get("name")) for i in items.find_all(NS_DISCO_ITEMS, "item")] \
        == [(f"open@{SERVICE}", "Open House")]  # §6.3: hidden rooms are not listed


def test_room_info_features_and_roominfo_form() -> None:
    muc = Muc()
    muc.create(membersonly="1", whois="anyone", persistentroom="1", moderatedroom="1",
               passwordprotectedroom="1", roomsecret="s", enablearchiving="1",
               roomname="Cave", roomdesc="For witches")
    info = query_of(iq(muc, OWNER, ROOM, DISCO_INFO), NS_DISCO_INFO)
    features = {f.get("var") for f in info.find_all(NS_DISCO_INFO, "feature")}
    assert {"muc_membersonly", "muc_nonanonymous", "muc_persistent", "muc_moderated",
            "muc_passwordprotected", "muc_hidden", NS_MAM,
            "http://jabber.org/protocol/muc#stable_id"} <= features
    assert not features & {"muc_open", "muc_semianonymous", "muc_temporary",
                           "muc_unmoderated", "muc_unsecured", "muc_public"}
    assert info.find(NS_DISCO_INFO, "identity").get("name") == "Cave"
    form = info.find(NS_DATA, "x")
    values = {f.get("var"): [v.text for v in f.find_all(NS_DATA, "value")]
              for f in form.find_all(NS_DATA, "field")}
    assert values["FORM_TYPE"] == ["http://jabber.org/protocol/muc#roominfo"]
    assert values["muc#roominfo_description"] == ["For witches"]
    assert values["muc#roominfo_occupants"] == ["1"]


def test_a_hidden_room_keeps_its_subject_from_outsiders() -> None:
    muc = Muc()
    muc.create()
    muc.send(f"<message from='{OWNER}' to='{ROOM}' type='groupchat'><subject>secret plans"
             "</subject></message>")
    outside = query_of(iq(muc, EVE, ROOM, DISCO_INFO), NS_DISCO_INFO)
    fields = {f.get("var") for f in outside.find(NS_DATA, "x").find_all(NS_DATA, "field")}
    assert "muc#roominfo_subject" not in fields  # §14.4
    inside = query_of(iq(muc, OWNER, ROOM, DISCO_INFO), NS_DISCO_INFO)
    fields = {f.get("var") for f in inside.find(NS_DATA, "x").find_all(NS_DATA, "field")}
    assert "muc#roominfo_subject" in fields


def test_room_info_of_missing_and_locked_rooms_is_item_not_found() -> None:
    muc = Muc()
    assert error_reply(iq(muc, HAG, ROOM, DISCO_INFO)) == "item-not-found"
    muc.join(OWNER, "me")
    assert error_reply(iq(muc, HAG, ROOM, DISCO_INFO)) == "item-not-found"
    query_of(iq(muc, OWNER, ROOM, DISCO_INFO), NS_DISCO_INFO)  # its owner sees it


def test_reserved_nick_discovery() -> None:
    muc = Muc()
    muc.create()
    muc.admin(OWNER, "<item affiliation='member' jid='hag@example.org' nick='thirdwitch'/>")
    node = f"<query xmlns='{NS_DISCO_INFO}' node='x-roomuser-item'/>"
    identity = query_of(iq(muc, HAG, ROOM, node), NS_DISCO_INFO).find(NS_DISCO_INFO,
                                                                      "identity")
    assert identity.get("name") == "thirdwitch"  # §7.12
    assert query_of(iq(muc, EVE, ROOM, node), NS_DISCO_INFO).children == []
    other = f"<query xmlns='{NS_DISCO_INFO}' node='elsewhere'/>"
    assert error_reply(iq(muc, HAG, ROOM, other)) == "item-not-found"


def test_room_items_are_private() -> None:
    muc = Muc()
    muc.create()
    assert query_of(iq(muc, HAG, ROOM, DISCO_ITEMS), NS_DISCO_ITEMS).children == []  # §6.5


@pytest.mark.parametrize(("to", "payload", "kind", "condition"), [
    (SERVICE, "<query xmlns='jabber:iq:register'/>", "get", "service-unavailable"),
    (ROOM, "<query xmlns='jabber:iq:register'/>", "get", "service-unavailable"),  # §7.10
    (ROOM, "<query xmlns='urn:x-unknown'/>", "set", "service-unavailable"),
    (ROOM, "", "get", "bad-request"),
])
def test_unknown_iqs_get_errors(to: str, payload: str, kind: str, condition: str) -> None:
    muc = Muc()
    muc.create()
    assert error_reply(iq(muc, HAG, to, payload, kind)) == condition


def test_messages_to_the_service_itself_are_refused() -> None:
    muc = Muc()
    effects = muc.send(f"<message from='{HAG}' to='{SERVICE}'><body>hi</body></message>")
    assert error_reply(effects) == "service-unavailable"


# ---------------------------------------------------------------------- archive access


def mam(muc: Muc, who: str) -> list:
    return iq(muc, who, ROOM, f"<query xmlns='{NS_MAM}' queryid='f'/>", kind="set")


def test_archive_queries_need_archiving() -> None:
    muc = Muc()
    muc.create()
    assert error_reply(mam(muc, OWNER)) == "service-unavailable"


def test_members_of_a_members_only_room_may_query_its_archive() -> None:
    muc = Muc()
    muc.create(membersonly="1", enablearchiving="1")
    muc.admin(OWNER, "<item affiliation='member' jid='hag@example.org'/>")
    (query,) = mam(muc, HAG)  # a member, not even in the room
    assert isinstance(query, QueryArchive) and query.room == JID.parse(ROOM)
    assert error_reply(mam(muc, EVE)) == "forbidden"


def test_occupants_of_an_open_room_may_query_its_archive() -> None:
    muc = Muc()
    muc.create(enablearchiving="1")
    assert error_reply(mam(muc, EVE)) == "forbidden"
    muc.join(EVE, "eve")
    assert isinstance(mam(muc, EVE)[0], QueryArchive)
    muc.admin(OWNER, "<item affiliation='outcast' jid='eve@example.org'/>")
    assert error_reply(mam(muc, EVE)) == "forbidden"


# ---------------------------------------------------------------------- IQs to occupants


def test_self_ping() -> None:
    muc = Muc()
    muc.create()
    muc.join(HAG, "thirdwitch")
    ping = "<ping xmlns='urn:xmpp:ping'/>"
    reply = only(iq(muc, HAG, f"{ROOM}/thirdwitch", ping), HAG)
    assert reply.get("type") == "result"  # XEP-0410: still joined
    assert error_reply(iq(muc, EVE, f"{ROOM}/thirdwitch", ping)) == "not-acceptable"


def test_iqs_between_occupants_hide_both_real_jids() -> None:
    muc = Muc()
    muc.create()
    muc.join(HAG, "thirdwitch")
    asked = only(iq(muc, OWNER, f"{ROOM}/thirdwitch", "<vCard xmlns='vcard-temp'/>"), HAG)
    assert asked.get("from") == f"{ROOM}/firstwitch"
    assert asked.get("id") != "q"
    answer = muc.send(f"<iq from='{HAG}' to='{ROOM}/firstwitch' type='result' "
                      f"id='{asked.get('id')}'><vCard xmlns='vcard-temp'/></iq>")
    back = only(answer, OWNER)
    assert (back.get("from"), back.get("id"), back.get("type")) == (
        f"{ROOM}/thirdwitch", "q", "result")
    # The same answer again, or one from someone else, goes nowhere.
    assert muc.send(f"<iq from='{HAG}' to='{ROOM}/firstwitch' type='result' "
                    f"id='{asked.get('id')}'/>") == []


def test_iqs_to_occupants_from_outsiders_are_bad_requests() -> None:
    muc = Muc()
    muc.create()
    assert error_reply(iq(muc, EVE, f"{ROOM}/firstwitch", DISCO_INFO)) == "bad-request"


# ---------------------------------------------------------------------- restore


def test_a_restored_room_has_its_configuration_affiliations_subject_and_history() -> None:
    muc = Muc()
    snapshot = RoomSnapshot(
        JID.parse(ROOM), RoomConfig(persistent=True, members_only=True),
        {"hag@example.org": AffiliationRecord(Affiliation.OWNER)},
        Subject("Spells", "thirdwitch", 5.0), 1.0)
    message = parse(f"<message from='{ROOM}/thirdwitch' type='groupchat'><body>old</body>"
                    "</message>")
    muc.service.restore(snapshot, [HistoryEntry("s1", 4.0, "thirdwitch", message)])
    effects = muc.join(HAG, "thirdwitch")
    got = sent(effects, HAG, "message")
    assert [m.find(m.ns, "body").text for m in got[:-1]] == ["old"]
    assert got[-1].find(got[-1].ns, "subject").text == "Spells"
    assert error_reply(muc.join(EVE, "eve")) == "registration-required"
    assert muc.service.rooms[JID.parse(ROOM)].snapshot() == snapshot
