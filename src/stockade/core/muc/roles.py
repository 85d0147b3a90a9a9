"""Affiliations, roles and who may change them: the tables of XEP-0045 §5.

Each check raises :class:`StanzaError` with the condition the XEP names for the refusal
(``forbidden``: the actor lacks the privilege; ``not-allowed``: the target outranks the
actor; ``conflict``: acting on oneself where the XEP forbids it).
"""

from __future__ import annotations

import enum

from stockade.core.errors import StanzaError, StanzaErrorCondition

SEC = StanzaErrorCondition


class Affiliation(enum.Enum):
    """XEP-0045 §5.2: long-lived, kept per bare JID."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    NONE = "none"
    OUTCAST = "outcast"

    @property
    def rank(self) -> int:
        """Position in the §5.2.1 hierarchy (outcast lowest)."""
        return _AFFILIATION_RANK[self]

    @property
    def is_admin(self) -> bool:
        """Admin or owner: the affiliations that carry admin privileges (§5.2.1)."""
        return self in (Affiliation.ADMIN, Affiliation.OWNER)


class Role(enum.Enum):
    """XEP-0045 §5.1: temporary, per visit."""

    MODERATOR = "moderator"
    PARTICIPANT = "participant"
    VISITOR = "visitor"
    NONE = "none"

    @property
    def rank(self) -> int:
        """Position in the §5.1.1 hierarchy (none lowest)."""
        return _ROLE_RANK[self]


_AFFILIATION_RANK = {Affiliation.OUTCAST: 0, Affiliation.NONE: 1, Affiliation.MEMBER: 2,
                     Affiliation.ADMIN: 3, Affiliation.OWNER: 4}
_ROLE_RANK = {Role.NONE: 0, Role.VISITOR: 1, Role.PARTICIPANT: 2, Role.MODERATOR: 3}


def parse_affiliation(value: str | None) -> Affiliation:
    """The affiliation named by an attribute value.

    Raises:
        StanzaError: ``bad-request`` for anything else.
    """
    try:
        return Affiliation(value)
    except ValueError:
        raise StanzaError(SEC.BAD_REQUEST, "unknown affiliation") from None


def parse_role(value: str | None) -> Role:
    """The role named by an attribute value.

    Raises:
        StanzaError: ``bad-request`` for anything else.
    """
    try:
        return Role(value)
    except ValueError:
        raise StanzaError(SEC.BAD_REQUEST, "unknown role") from None


def default_role(affiliation: Affiliation, moderated: bool) -> Role:
    """§5.1.2 "Initial Role Based on Affiliation"."""
    if affiliation.is_admin:
        return Role.MODERATOR
    if affiliation is Affiliation.NONE and moderated:
        return Role.VISITOR
    if affiliation is Affiliation.OUTCAST:
        return Role.NONE
    return Role.PARTICIPANT


def check_role_change(actor_aff: Affiliation, actor_role: Role, target_aff: Affiliation,
                      target_role: Role, new_role: Role, *, is_self: bool) -> None:
    """§5.1.3, §8.2-§8.5, §9.6-§9.7: may this moderator give the occupant ``new_role``?

    Raises:
        StanzaError: forbidden / not-allowed / conflict as the XEP names them.
    """
    if actor_role is not Role.MODERATOR:
        raise StanzaError(SEC.FORBIDDEN, "only moderators change roles")
    if new_role is target_role:
        return
    if is_self and new_role is Role.NONE:
        # §8.2: "the service MAY deny the request and return a <conflict/> error".
        raise StanzaError(SEC.CONFLICT, "a moderator cannot kick themselves")
    if new_role is not Role.MODERATOR:
        if target_aff.rank > actor_aff.rank:
            # §8.2: "A user cannot be kicked by a moderator with a lower affiliation ...
            # MUST deny the request and return a <not-allowed/> error"; §8.4 alike.
            raise StanzaError(SEC.NOT_ALLOWED, "the occupant has a higher affiliation")
        if target_aff.is_admin and new_role is not Role.NONE:
            # §8.4: "a service MUST NOT allow the voice privileges of an admin or owner to
            # be removed by anyone"; §9.7: nor their moderator status.
            raise StanzaError(SEC.NOT_ALLOWED, "the occupant is an admin or owner")
    if (new_role is Role.MODERATOR or target_role is Role.MODERATOR) and not actor_aff.is_admin:
        # §5.2.1: "Assign and Remove Moderator Role" is an admin/owner privilege.
        raise StanzaError(SEC.FORBIDDEN, "only admins and owners manage moderators")


def check_affiliation_change(actor_aff: Affiliation, target_aff: Affiliation,
                             new_aff: Affiliation, *, is_self: bool) -> None:
    """§5.2.2 "Affiliation State Chart", §9.1, §10.3-§10.9: may the actor make the user
    ``new_aff``? (The last-owner rule needs the whole list: see the room.)

    Raises:
        StanzaError: forbidden / not-allowed / conflict as the XEP names them.
    """
    if not actor_aff.is_admin:
        raise StanzaError(SEC.FORBIDDEN, "only admins and owners change affiliations")
    if new_aff is target_aff:
        return
    if is_self and new_aff is Affiliation.OUTCAST:
        # §9.1: "If an admin or owner attempts to ban himself, the service MUST deny the
        # request and return a <conflict/> error".
        raise StanzaError(SEC.CONFLICT, "you cannot ban yourself")
    if actor_aff is Affiliation.OWNER:
        return
    if target_aff.is_admin:
        # §9.1: an admin attempting to ban (or otherwise demote) an owner: not-allowed.
        raise StanzaError(SEC.NOT_ALLOWED, "only owners change admins and owners")
    if new_aff.is_admin:
        # §10.6, §10.8: "If the <user@host> of the 'from' address does not match the bare
        # JID of a room owner, the service MUST return a <forbidden/> error".
        raise StanzaError(SEC.FORBIDDEN, "only owners grant admin or owner")
