"""Room configuration: the muc#roomconfig form (XEP-0045 §10.2, §16.5.3) and service limits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.muc._ns import NS_ROOMCONFIG
from stockade.core.muc.forms import add_field, new_form, parse_bool
from stockade.core.xml import Element

SEC = StanzaErrorCondition
WHOIS = ("moderators", "anyone")
ALLOW_PM = ("anyone", "participants", "moderators", "none")
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_PASSWORD_CHARS = 200
MAX_LANG_CHARS = 35  # the longest BCP 47 tags in practical use


@dataclass(frozen=True, slots=True)
class MucLimits:
    """Service-wide bounds (from the [muc] configuration section)."""

    max_rooms: int = 1000
    max_rooms_per_user: int = 20  # rooms a user may own
    max_occupants: int = 200  # per room; also the highest muc#roomconfig_maxusers
    max_nick_chars: int = 64
    max_subject_chars: int = 1000
    history_max_stanzas: int = 50  # kept per room; the highest muc#maxhistoryfetch
    max_affiliations: int = 1000  # per room
    max_invites_per_message: int = 10
    max_sessions_per_occupant: int = 10  # resources of one user sharing a nick
    admin_extra_occupants: int = 10  # §7.2.9: admins/owners may enter a full room


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """One room's settings. The defaults are those of an instant room.

    SECURITY: new rooms are hidden (not listed in disco#items) until an owner makes them
    public; XEP-0045 leaves the default to the service and listing is the leak.
    """

    name: str = ""
    description: str = ""
    lang: str = ""
    persistent: bool = False
    public: bool = False
    members_only: bool = False
    moderated: bool = False
    whois: str = "moderators"  # "anyone": non-anonymous
    password: str = ""  # empty: not password-protected
    max_users: int = 0  # 0: the service's max_occupants
    change_subject: bool = False  # occupants (participants) may change the subject
    allow_invites: bool = False  # members of a members-only room may invite
    allow_pm: str = "anyone"
    archiving: bool = False  # messages archived for MAM (XEP-0313) and kept across restarts
    max_history: int = -1  # muc#maxhistoryfetch; -1: the service's history_max_stanzas

    @property
    def non_anonymous(self) -> bool:
        """Real JIDs are shown to every occupant (§4.2 Non-Anonymous Room)."""
        return self.whois == "anyone"

    def history_limit(self, limits: MucLimits) -> int:
        """Messages kept and offered on join."""
        if self.max_history < 0:
            return limits.history_max_stanzas
        return min(self.max_history, limits.history_max_stanzas)

    def occupant_limit(self, limits: MucLimits) -> int:
        """Occupants allowed in before only admins and owners may enter."""
        return self.max_users or limits.max_occupants

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy for storage."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomConfig:
        """Read a stored copy, ignoring keys this version does not know and keeping the
        defaults for keys it lacks (so stored rooms survive upgrades both ways).

        Raises:
            ValueError: a stored value has the wrong type.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            default = known[key].default
            if type(value) is not type(default):
                raise ValueError(f"stored room option {key} has the wrong type")
            values[key] = value
        return cls(**values)


# -------------------------------------------------------------------- the form


def _bool(value: bool) -> list[str]:
    return ["1" if value else "0"]


def config_form(config: RoomConfig, limits: MucLimits, room: str) -> Element:
    """The muc#roomconfig form with the current values (§10.1.3, §10.2)."""
    form = new_form("form", NS_ROOMCONFIG, f"Configuration for {room}")
    fields: list[tuple[str, str, list[str], str]] = [
        ("muc#roomconfig_roomname", "text-single", [config.name], "Room name"),
        ("muc#roomconfig_roomdesc", "text-single", [config.description], "Description"),
        ("muc#roomconfig_lang", "text-single", [config.lang], "Language of discussion"),
        ("muc#roomconfig_persistentroom", "boolean", _bool(config.persistent),
         "Make room persistent"),
        ("muc#roomconfig_publicroom", "boolean", _bool(config.public),
         "List room in the directory"),
        ("muc#roomconfig_membersonly", "boolean", _bool(config.members_only),
         "Only members may enter"),
        ("muc#roomconfig_moderatedroom", "boolean", _bool(config.moderated),
         "Only participants with voice may speak"),
        ("muc#roomconfig_passwordprotectedroom", "boolean", _bool(bool(config.password)),
         "Password required to enter"),
        ("muc#roomconfig_roomsecret", "text-private", [config.password], "Password"),
        ("muc#roomconfig_changesubject", "boolean", _bool(config.change_subject),
         "Occupants may change the subject"),
        ("muc#roomconfig_allowinvites", "boolean", _bool(config.allow_invites),
         "Members may invite others"),
        ("muc#roomconfig_enablearchiving", "boolean", _bool(config.archiving),
         "Archive messages (message archive management)"),
        ("muc#roomconfig_enablelogging", "boolean", _bool(config.archiving),
         "Log messages (same as archiving here)"),
        ("muc#maxhistoryfetch", "text-single", [str(config.history_limit(limits))],
         "Maximum number of history messages returned by room"),
    ]
    for var, type_, values, label in fields:
        add_field(form, var, type_, values, label)
    add_field(form, "muc#roomconfig_whois", "list-single", [config.whois],
              "Who may discover real JIDs",
              [("Moderators only", "moderators"), ("Anyone", "anyone")])
    add_field(form, "muc#roomconfig_allowpm", "list-single", [config.allow_pm],
              "Who may send private messages",
              [("Anyone", "anyone"), ("Anyone with voice", "participants"),
               ("Moderators only", "moderators"), ("Nobody", "none")])
    maxusers = [str(n) for n in (10, 20, 30, 50, 100) if n < limits.max_occupants]
    add_field(form, "muc#roomconfig_maxusers", "list-single",
              [str(config.max_users) if config.max_users else "none"],
              "Maximum number of occupants",
              [(n, n) for n in maxusers] + [("None", "none")])
    return form


def _single(values: list[str]) -> str:
    if len(values) > 1:
        raise StanzaError(SEC.NOT_ACCEPTABLE, "one value expected")
    return values[0] if values else ""


def _text(values: list[str], limit: int) -> str:
    text = _single(values)
    if len(text) > limit:
        raise StanzaError(SEC.NOT_ACCEPTABLE, "value too long")
    return text


def _choice(values: list[str], allowed: tuple[str, ...]) -> str:
    value = _single(values)
    if value not in allowed:
        raise StanzaError(SEC.NOT_ACCEPTABLE, "value not among the options")
    return value


def _number(values: list[str], low: int, high: int) -> int:
    value = _single(values)
    if not value.isdigit() or not low <= int(value) <= high:
        raise StanzaError(SEC.NOT_ACCEPTABLE, f"expected a number from {low} to {high}")
    return int(value)


def _maxusers(values: list[str], limits: MucLimits) -> int:
    if _single(values) in ("none", ""):
        return 0
    return _number(values, 1, limits.max_occupants)


def apply_config_form(config: RoomConfig, values: dict[str, list[str]],
                      limits: MucLimits) -> RoomConfig:
    """The configuration after an owner's submitted form (§10.1.3, §10.2). Fields left out
    keep their value; unknown fields are ignored (XEP-0004 §3.4 lets a service ignore them).

    Raises:
        StanzaError: ``not-acceptable`` for a value the service cannot accept (§10.1.3),
            e.g. a password-protected room without a password; ``bad-request`` for a form
            of another FORM_TYPE.
    """
    form_type = values.get("FORM_TYPE")
    if form_type is not None and form_type != [NS_ROOMCONFIG]:
        raise StanzaError(SEC.BAD_REQUEST, "not a muc#roomconfig form")
    changes: dict[str, Any] = {}
    readers: dict[str, tuple[str, Any]] = {
        "muc#roomconfig_roomname": ("name", lambda v: _text(v, MAX_NAME_CHARS)),
        "muc#roomconfig_roomdesc": ("description", lambda v: _text(v, MAX_DESCRIPTION_CHARS)),
        "muc#roomconfig_lang": ("lang", lambda v: _text(v, MAX_LANG_CHARS)),
        "muc#roomconfig_persistentroom": ("persistent", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_publicroom": ("public", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_membersonly": ("members_only", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_moderatedroom": ("moderated", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_changesubject": ("change_subject", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_allowinvites": ("allow_invites", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_whois": ("whois", lambda v: _choice(v, WHOIS)),
        "muc#roomconfig_allowpm": ("allow_pm", lambda v: _choice(v, ALLOW_PM)),
        "muc#roomconfig_maxusers": ("max_users", lambda v: _maxusers(v, limits)),
        "muc#maxhistoryfetch": ("max_history",
                                lambda v: _number(v, 0, limits.history_max_stanzas)),
        # Public logging and MAM archiving are one switch here (there is no web log);
        # enablearchiving, the MAM field, wins when both are given.
        "muc#roomconfig_enablelogging": ("archiving", lambda v: parse_bool(_single(v))),
        "muc#roomconfig_enablearchiving": ("archiving", lambda v: parse_bool(_single(v))),
    }
    for var, (attr, read) in readers.items():
        if var in values:
            changes[attr] = read(values[var])
    protected = config.password != ""
    if "muc#roomconfig_passwordprotectedroom" in values:
        protected = parse_bool(_single(values["muc#roomconfig_passwordprotectedroom"]))
    password = config.password
    if "muc#roomconfig_roomsecret" in values:
        password = _text(values["muc#roomconfig_roomsecret"], MAX_PASSWORD_CHARS)
    if protected and not password:
        # §10.1.3: e.g. "because the password for a password-protected room is blank".
        raise StanzaError(SEC.NOT_ACCEPTABLE, "a password-protected room needs a password")
    changes["password"] = password if protected else ""
    return dataclasses.replace(config, **changes)
