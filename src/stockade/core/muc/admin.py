"""Moderator, admin and owner actions on a room: XEP-0045 §7.8 (invitations), §8 (roles),
§9 (affiliations), §10 (configuration, destruction). Same contract as ``room.py``: state
changes in place, effects returned.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.muc import _ns as ns
from stockade.core.muc.config import RoomConfig, apply_config_form, config_form
from stockade.core.muc.effects import Effect, SaveRoom, Send
from stockade.core.muc.forms import form_of, submitted_values
from stockade.core.muc.occupant import (
    AffiliationRecord,
    Occupant,
    PresenceOptions,
    check_nick,
    parse_jid,
    sender_of,
)
from stockade.core.muc.roles import (
    Affiliation,
    Role,
    check_affiliation_change,
    check_role_change,
    default_role,
    parse_affiliation,
    parse_role,
)
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element

if TYPE_CHECKING:
    from stockade.core.muc.room import Room

SEC = StanzaErrorCondition
MAX_REASON_CHARS = 1000
_PRIVACY_FIELDS = ("whois", "archiving")


def _reply(room: Room, iq: Stanza, child: Element | None = None) -> Effect:
    assert iq.from_ is not None
    return Send(iq.from_, result_reply(iq, str(room.jid), child))


def _reason(item: Element) -> str | None:
    reason = item.find(item.ns, "reason")
    return reason.text[:MAX_REASON_CHARS] if reason is not None and reason.text else None


def _actor_nick(room: Room, actor: JID) -> str | None:
    """The actor as named in a removal: their nick if they are in the room (§8.2), else
    nothing (their real JID would leak in a semi-anonymous room)."""
    occupant = room.occupant_of(actor)
    return occupant.nick if occupant is not None else None


# ---------------------------------------------------------------------- muc#admin


def handle_admin(room: Room, iq: Stanza, query: Element, now: float) -> list[Effect]:
    """§8.5, §9.2-§9.8, §10.5-§10.9: role and affiliation lists, and changes to them."""
    items = query.find_all(ns.NS_MUC_ADMIN, "item")
    if not items:
        raise StanzaError(SEC.BAD_REQUEST, "no item")
    if iq.type == "get":
        if len(items) != 1:
            raise StanzaError(SEC.BAD_REQUEST, "one item per list request")
        return [_reply(room, iq, _list(room, sender_of(iq), items[0]))]
    effects = _apply_items(room, sender_of(iq), items)
    return [*effects, _reply(room, iq)]


def _list(room: Room, sender: JID, item: Element) -> Element:
    if ("affiliation" in item.attrs) == ("role" in item.attrs):
        raise StanzaError(SEC.BAD_REQUEST, "ask for one affiliation or one role")
    result = Element(ns.NS_MUC_ADMIN, "query")
    if "role" in item.attrs:
        role = parse_role(item.get("role"))
        asker = room.occupant_of(sender)
        if role is Role.NONE:
            raise StanzaError(SEC.BAD_REQUEST, "no list of role none")
        if asker is None or asker.role is not Role.MODERATOR:
            raise StanzaError(SEC.FORBIDDEN, "only moderators list roles")
        for occupant in room.occupants:
            if occupant.role is role:  # §17.4 rule 5: nick, role, affiliation and jid
                result.sub(ns.NS_MUC_ADMIN, "item", {
                    "nick": occupant.nick, "role": role.value, "jid": str(occupant.current),
                    "affiliation": room.affiliation_of(occupant.bare).value})
        return result
    affiliation = parse_affiliation(item.get("affiliation"))
    if affiliation is Affiliation.NONE:
        raise StanzaError(SEC.BAD_REQUEST, "no list of affiliation none")
    _check_may_list(room, sender, affiliation)
    for jid, record in sorted(room.affiliations.items()):
        if record.affiliation is not affiliation:
            continue
        attrs = {"affiliation": affiliation.value, "jid": jid}
        if record.nick and affiliation is not Affiliation.OUTCAST:
            attrs["nick"] = record.nick  # §17.4 rule 6: never the role
        listed = result.sub(ns.NS_MUC_ADMIN, "item", attrs)
        if record.reason and affiliation is Affiliation.OUTCAST:
            listed.sub(ns.NS_MUC_ADMIN, "reason", text=record.reason)
    return result


def _check_may_list(room: Room, sender: JID, affiliation: Affiliation) -> None:
    """Who may read which list (§5.2.1, §9.5, §10.5, §10.8)."""
    asker = room.affiliation_of(sender)
    if asker is Affiliation.OWNER:
        return
    if asker is Affiliation.ADMIN and affiliation in (Affiliation.MEMBER, Affiliation.OUTCAST):
        return
    # §9.5: in a non-anonymous room members and occupants may read the member list; §10.5,
    # §10.8: the owner and admin lists too ("the service MAY process the request"). In a
    # semi-anonymous room they hold JIDs the room hides, so: forbidden.
    insider = asker.rank >= Affiliation.MEMBER.rank or room.occupant_of(sender) is not None
    if room.config.non_anonymous and insider and affiliation is not Affiliation.OUTCAST:
        return
    raise StanzaError(SEC.FORBIDDEN, "you may not read this list")


@dataclasses.dataclass(slots=True)
class _RoleChange:
    target: Occupant
    role: Role
    reason: str | None


@dataclasses.dataclass(slots=True)
class _AffiliationChange:
    jid: JID  # bare JID or domain
    affiliation: Affiliation
    nick: str | bool | None  # False: keep the reserved nick; None: clear it; str: set it
    reason: str | None


def _apply_items(room: Room, sender: JID, items: list[Element]) -> list[Effect]:
    """Check every item, then apply them all (or none: §9.2 "SHOULD NOT apply any")."""
    changes = [_read_item(room, sender, item) for item in items]
    _check_whole_list(room, [c for c in changes if isinstance(c, _AffiliationChange)])
    effects: list[Effect] = []
    actor = _actor_nick(room, sender)
    for change in changes:
        if isinstance(change, _RoleChange):
            if room.occupant_by_nick(change.target.nick) is change.target:  # still here
                effects.extend(set_role(room, change.target, change.role, actor,
                                        change.reason))
        else:
            effects.extend(set_affiliation(room, change.jid, change.affiliation, change.nick,
                                           change.reason, actor, sender))
    return effects


def _read_item(room: Room, sender: JID, item: Element) -> _RoleChange | _AffiliationChange:
    if ("affiliation" in item.attrs) == ("role" in item.attrs):
        # §17.4 rule 4: "if a moderator, admin, or owner attempts to modify both the
        # affiliation and role of the same item ... MUST return a <bad-request/> error".
        raise StanzaError(SEC.BAD_REQUEST, "change one affiliation or one role per item")
    actor_aff = room.affiliation_of(sender)
    if "role" in item.attrs:
        role = parse_role(item.get("role"))
        target_nick = item.get("nick")
        if not target_nick:
            raise StanzaError(SEC.BAD_REQUEST, "role changes name the occupant by nick")
        target = room.occupant_by_nick(target_nick)
        if target is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND, "no such occupant")
        actor = room.occupant_of(sender)
        check_role_change(actor_aff, actor.role if actor else Role.NONE,
                          room.affiliation_of(target.bare), target.role, role,
                          is_self=actor is target)
        return _RoleChange(target, role, _reason(item))
    affiliation = parse_affiliation(item.get("affiliation"))
    jid, nick = _affiliation_target(room, item)
    record = room.affiliations.get(str(jid))
    current = record.affiliation if record is not None else Affiliation.NONE
    check_affiliation_change(actor_aff, current, affiliation, is_self=jid == sender.bare)
    return _AffiliationChange(jid, affiliation, nick, _reason(item))


def _affiliation_target(room: Room, item: Element) -> tuple[JID, str | bool | None]:
    """The bare JID (§10.3: "a service SHOULD use the bare JID representation") and the
    reserved-nick change an affiliation item asks for."""
    nick_attr = item.get("nick")
    if item.get("jid") is None:
        if not nick_attr:
            raise StanzaError(SEC.BAD_REQUEST, "affiliation changes name a JID")
        occupant = room.occupant_by_nick(nick_attr)
        if occupant is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND, "no such occupant")
        return occupant.bare, False
    jid = parse_jid(item.get("jid")).bare
    if nick_attr is None:
        return jid, False
    if nick_attr == "":
        return jid, None  # §9.5: "To unset a reserved nickname ... set to an empty string"
    return jid, check_nick(nick_attr, room.limits)


def _check_whole_list(room: Room, changes: list[_AffiliationChange]) -> None:
    after = {jid: record.affiliation for jid, record in room.affiliations.items()}
    for change in changes:
        if change.affiliation is Affiliation.NONE:
            after.pop(str(change.jid), None)
        else:
            after[str(change.jid)] = change.affiliation
    if Affiliation.OWNER not in after.values():
        # §10.4: "A service MUST NOT allow an owner to revoke his or her own owner status if
        # there are no other owners ... MUST return a <conflict/> error".
        raise StanzaError(SEC.CONFLICT, "a room needs an owner")
    if len(after) > room.limits.max_affiliations:
        raise StanzaError(SEC.RESOURCE_CONSTRAINT, "too many affiliations in this room")
    for change in changes:
        if isinstance(change.nick, str):
            for jid, record in room.affiliations.items():
                if jid != str(change.jid) and record.nick is not None and \
                        record.nick.casefold() == change.nick.casefold():
                    raise StanzaError(SEC.CONFLICT, "that nickname is reserved")


def set_role(room: Room, target: Occupant, role: Role, actor: str | None,
             reason: str | None) -> list[Effect]:
    """§8.2 kick (role none, status 307), §8.3-§8.4 voice, §9.6-§9.7 moderator."""
    if role is Role.NONE:
        return room.remove_occupant(target, PresenceOptions(
            codes=(ns.KICKED,), actor=actor, reason=reason))
    saw_jids = room.shows_jid_to(target)
    target.role = role
    effects = room.broadcast_presence(target, PresenceOptions(reason=reason))
    if room.shows_jid_to(target) and not saw_jids:
        # A new moderator of a semi-anonymous room learns the JIDs it may now see.
        for session in target.sessions:
            effects.extend(room.others_to(session))
    return effects


def set_affiliation(room: Room, jid: JID, affiliation: Affiliation,
                    nick: str | bool | None, reason: str | None, actor: str | None,
                    actor_jid: JID) -> list[Effect]:
    """§9.1 ban (301), §9.3-§9.4 membership (321 in members-only rooms), §10.3-§10.7 admin
    and owner; occupants concerned get updated presence."""
    key = str(jid)
    before = {id(o): room.affiliation_of(o.bare) for o in room.occupants}
    old = room.affiliations.get(key)
    if affiliation is Affiliation.NONE:
        room.affiliations.pop(key, None)
    else:
        kept_nick = old.nick if old is not None else None
        reserved = kept_nick if nick is False else nick
        if affiliation is Affiliation.OUTCAST:
            reserved = None  # §9.1: "MUST remove the outcast's nickname"
        room.affiliations[key] = AffiliationRecord(
            affiliation, reserved if isinstance(reserved, str) else None,
            reason if affiliation is Affiliation.OUTCAST else None)
    effects: list[Effect] = []
    concerned = [o for o in room.occupants if room.affiliation_of(o.bare) is not before[id(o)]]
    for occupant in concerned:
        effects.extend(_after_affiliation_change(room, occupant, before[id(occupant)], actor,
                                                 reason))
    was = old.affiliation if old is not None else Affiliation.NONE
    if not concerned and jid.local is not None and was is not affiliation:
        effects.extend(_absent_user_notices(room, jid, affiliation, was, actor_jid))
    effects.append(SaveRoom(room.jid))
    return effects


def _after_affiliation_change(room: Room, occupant: Occupant, before: Affiliation,
                              actor: str | None, reason: str | None) -> list[Effect]:
    after = room.affiliation_of(occupant.bare)
    if after is Affiliation.OUTCAST:
        return room.remove_occupant(occupant, PresenceOptions(
            codes=(ns.BANNED,), actor=actor, reason=reason), affiliation=after)
    if room.config.members_only and after.rank < Affiliation.MEMBER.rank:
        # §9.4: only the removal presence, not a de-affiliation followed by it.
        return room.remove_occupant(occupant, PresenceOptions(
            codes=(ns.AFFILIATION_REMOVED,), actor=actor, reason=reason), affiliation=after)
    if after.is_admin or before.is_admin or (occupant.role is Role.VISITOR
                                             and after is Affiliation.MEMBER):
        # §5.1.3 note: the role gained with an affiliation is stable; one lost falls back
        # to the default for the new affiliation.
        return set_role(room, occupant, default_role(after, room.config.moderated), None,
                        reason)
    return room.broadcast_presence(occupant, PresenceOptions(reason=reason))


def _absent_user_notices(room: Room, jid: JID, affiliation: Affiliation,
                         was: Affiliation, actor: JID) -> list[Effect]:
    """For a user not in the room: §10.6 lets the room tell its occupants (only done in
    non-anonymous rooms, where JIDs are no secret; OMEMO clients track members by it), and
    §9.5 says to invite a user added to a members-only room."""
    effects: list[Effect] = []
    if room.config.non_anonymous:
        notice = Element(ns.NS_CLIENT, "message", {"from": str(room.jid), "id": room.new_id()})
        x = notice.sub(ns.NS_MUC_USER, "x")
        x.sub(ns.NS_MUC_USER, "item", {"affiliation": affiliation.value, "jid": str(jid),
                                       "role": "none"})
        effects.extend(room.to_everyone(notice))
    if room.config.members_only and affiliation is Affiliation.MEMBER \
            and was is Affiliation.NONE:
        effects.append(_invitation(room, jid, actor.bare, None, None, None))
    return effects


# ---------------------------------------------------------------------- invitations


def handle_invitations(room: Room, stanza: Stanza, x: Element) -> list[Effect]:
    """§7.8.2 mediated invitations and declines."""
    invites = x.find_all(ns.NS_MUC_USER, "invite")
    declines = x.find_all(ns.NS_MUC_USER, "decline")
    sender = sender_of(stanza)
    if declines:
        if invites or len(declines) > 1:
            raise StanzaError(SEC.BAD_REQUEST, "one decline, and nothing else")
        return [_decline(room, sender, declines[0], stanza.id)]
    occupant = room.occupant_of(sender)
    aff = room.affiliation_of(sender)
    if occupant is None and not aff.is_admin:
        raise StanzaError(SEC.NOT_ACCEPTABLE, "you are not in the room")
    if len(invites) > room.limits.max_invites_per_message:
        raise StanzaError(SEC.NOT_ACCEPTABLE, "too many invitations in one message")
    if room.config.members_only and not aff.is_admin and not room.config.allow_invites:
        # §9.5: "if invitation privileges are restricted to admins and a mere member
        # attempts to a send an invitation, the service MUST deny ... <forbidden/>".
        raise StanzaError(SEC.FORBIDDEN, "only admins may invite to this room")
    invitees = [parse_jid(invite.get("to")) for invite in invites]
    if room.config.members_only and any(
            room.affiliation_of(j) is Affiliation.OUTCAST for j in invitees):
        raise StanzaError(SEC.NOT_ALLOWED, "that user is banned from this room")
    effects: list[Effect] = []
    for invite, invitee in zip(invites, invitees, strict=True):
        if room.config.members_only and room.affiliation_of(invitee) is Affiliation.NONE:
            # §9.5: an invitation by a member allowed to invite "SHOULD automatically
            # trigger the addition of the invitee to the member list".
            room.affiliations[str(invitee.bare)] = AffiliationRecord(Affiliation.MEMBER)
            effects.append(SaveRoom(room.jid))
        effects.append(_invitation(room, invitee, sender.bare, _reason(invite),
                                   invite.find(ns.NS_MUC_USER, "continue"), stanza.id))
    return effects


def _invitation(room: Room, invitee: JID, inviter: JID, reason: str | None,
                continue_: Element | None, message_id: str | None) -> Effect:
    """§7.8.2: from the room, with the inviter's bare JID and the password if any."""
    message = Element(ns.NS_CLIENT, "message", {"from": str(room.jid), "to": str(invitee),
                                               "id": message_id or room.new_id()})
    x = message.sub(ns.NS_MUC_USER, "x")
    invite = x.sub(ns.NS_MUC_USER, "invite", {"from": str(inviter)})
    if reason:
        invite.sub(ns.NS_MUC_USER, "reason", text=reason)
    if continue_ is not None:
        thread = continue_.get("thread")
        invite.sub(ns.NS_MUC_USER, "continue", {"thread": thread} if thread else None)
    if room.config.password:
        x.sub(ns.NS_MUC_USER, "password", text=room.config.password)
    return Send(invitee, message)


def _decline(room: Room, sender: JID, decline: Element, message_id: str | None) -> Effect:
    """§7.8.2: the room passes a decline on to the inviter. SECURITY: only to someone the
    room knows (an occupant or an affiliated user), so it cannot be used to message anyone
    on the network in the room's name."""
    to = parse_jid(decline.get("to"))
    if to.bare == room.jid and to.resource is not None:
        occupant = room.occupant_by_nick(to.resource)
        if occupant is None:
            raise StanzaError(SEC.ITEM_NOT_FOUND, "no such occupant")
        to = occupant.current
    known = room.occupants_of(to.bare) or room.affiliation_of(to).rank >= \
        Affiliation.MEMBER.rank
    if not known:
        raise StanzaError(SEC.ITEM_NOT_FOUND, "the room does not know that user")
    message = Element(ns.NS_CLIENT, "message", {"from": str(room.jid), "to": str(to),
                                               "id": message_id or room.new_id()})
    x = message.sub(ns.NS_MUC_USER, "x")
    out = x.sub(ns.NS_MUC_USER, "decline", {"from": str(sender.bare)})
    reason = _reason(decline)
    if reason:
        out.sub(ns.NS_MUC_USER, "reason", text=reason)
    return Send(to, message)


# ---------------------------------------------------------------------- muc#owner


def handle_owner(room: Room, iq: Stanza, query: Element, now: float) -> list[Effect]:
    """§10.1-§10.2 configuration (instant and reserved rooms), §10.9 destruction."""
    sender = sender_of(iq)
    if room.affiliation_of(sender) is not Affiliation.OWNER:
        # §10.2: "If the <user@host> of the 'from' address does not match the bare JID of a
        # room owner, the service MUST return a <forbidden/> error".
        raise StanzaError(SEC.FORBIDDEN, "only owners configure the room")
    if iq.type == "get":
        result = Element(ns.NS_MUC_OWNER, "query")
        result.append(config_form(room.config, room.limits, str(room.jid)))
        return [_reply(room, iq, result)]
    destroy = query.find(ns.NS_MUC_OWNER, "destroy")
    if destroy is not None:
        return [*destroy_room(room, destroy), _reply(room, iq)]
    form = form_of(query)
    if form is None:
        raise StanzaError(SEC.BAD_REQUEST, "expected a data form or <destroy/>")
    if form.get("type") == "cancel":
        # §10.1.3: cancelling the initial configuration destroys the room; a later one
        # leaves it as it was.
        effects = destroy_room(room, None) if room.locked else []
        return [*effects, _reply(room, iq)]
    if form.get("type") != "submit":
        raise StanzaError(SEC.BAD_REQUEST, "the form must be submitted or cancelled")
    config = apply_config_form(room.config, submitted_values(form), room.limits)
    return [*reconfigure(room, config), _reply(room, iq)]


def reconfigure(room: Room, config: RoomConfig) -> list[Effect]:
    """Apply a new configuration (§10.2): unlock a new room, notify (§10.2.1), remove
    non-members if the room became members-only (322)."""
    old, room.config = room.config, config
    first = room.locked
    room.locked = False
    room.history.resize(config.history_limit(room.limits))
    effects: list[Effect] = []
    codes = _change_codes(old, config)
    if codes and not first:
        effects.extend(room.status_message(*codes))
    if config.members_only and not old.members_only:
        for occupant in room.occupants:
            if room.affiliation_of(occupant.bare).rank < Affiliation.MEMBER.rank:
                effects.extend(room.remove_occupant(occupant, PresenceOptions(
                    codes=(ns.MEMBERS_ONLY_REMOVED,))))
    if config.non_anonymous and not old.non_anonymous:
        # Everyone may now see real JIDs: resend presence so clients (OMEMO) learn them.
        for occupant in room.occupants:
            effects.extend(room.broadcast_presence(occupant, PresenceOptions()))
    effects.append(SaveRoom(room.jid))
    if room.occupant_count() == 0 and not config.persistent:
        effects.extend(room.close())
    return effects


def _change_codes(old: RoomConfig, new: RoomConfig) -> list[str]:
    """§10.2.1: 170-173 for privacy-related changes, 104 for any other."""
    codes: list[str] = []
    if new.non_anonymous != old.non_anonymous:
        codes.append(ns.NOW_NON_ANONYMOUS if new.non_anonymous else ns.NOW_SEMI_ANONYMOUS)
    if new.archiving != old.archiving:
        codes.append(ns.LOGGING_ON if new.archiving else ns.LOGGING_OFF)
    rest_old = dataclasses.replace(old, whois=new.whois, archiving=new.archiving)
    if rest_old != new:
        codes.append(ns.CONFIG_CHANGED)
    return codes


def destroy_room(room: Room, destroy: Element | None) -> list[Effect]:
    """§10.9: one unavailable presence to each occupant with <destroy/> (and the
    alternate venue and reason given), then the room is gone."""
    notice = Element(ns.NS_MUC_USER, "destroy")
    if destroy is not None:
        alternate = destroy.get("jid")
        if alternate is not None:
            notice.attrs["jid"] = str(parse_jid(alternate).bare)
        for name in ("reason", "password"):
            child = destroy.find(ns.NS_MUC_OWNER, name)
            if child is not None and child.text:
                notice.sub(ns.NS_MUC_USER, name, text=child.text[:MAX_REASON_CHARS])
    effects: list[Effect] = []
    for occupant in room.occupants:
        presence = room.presence_of(occupant, occupant, PresenceOptions(
            unavailable=True, destroy=notice), affiliation=Affiliation.NONE)
        effects.extend(room.to_sessions(occupant, presence))
    return effects + room.close()
