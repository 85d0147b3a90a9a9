"""Node configuration (XEP-0060 §8.2, the pubsub#node_config FORM_TYPE of §16.4.4) and
publish-options preconditions (XEP-0060 §7.1.5, XEP-0223 §4).

Defaults follow XEP-0163 §5 (access model "presence", payloads delivered, the last item sent
on subscription and presence) with one item per node, as PEP payloads are singletons unless
the owner asks for more (``pubsub#max_items``; "max" means the server's cap).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stockade.core.errors import StanzaErrorCondition
from stockade.core.pubsub.errors import NS_PUBSUB, PubsubError, precondition_not_met
from stockade.core.pubsub.forms import FormBuilder, FormField, SubmittedForm
from stockade.core.xml import Element

NODE_CONFIG = NS_PUBSUB + "#node_config"
PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
MAX: Literal["max"] = "max"
MAX_TEXT_CHARS = 1023
MAX_ROSTER_GROUPS = 64
CONFIG_FORMAT = 1  # version of the stored JSON


class AccessModel(enum.Enum):
    """XEP-0060 §4.5 access models this service implements ("authorize" is not)."""

    OPEN = "open"
    PRESENCE = "presence"
    ROSTER = "roster"
    WHITELIST = "whitelist"


class SendLastItem(enum.Enum):
    """pubsub#send_last_published_item values (XEP-0060 §16.4.4)."""

    NEVER = "never"
    ON_SUB = "on_sub"
    ON_SUB_AND_PRESENCE = "on_sub_and_presence"


MaxItems = int | Literal["max"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A node's configuration; construct with defaults and change with ``apply_fields``."""

    access_model: AccessModel = AccessModel.PRESENCE
    roster_groups_allowed: tuple[str, ...] = ()
    max_items: MaxItems = 1
    persist_items: bool = True
    send_last_published_item: SendLastItem = SendLastItem.ON_SUB_AND_PRESENCE
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    notify_retract: bool = True
    notify_delete: bool = True
    notification_type: str = "headline"
    title: str = ""
    description: str = ""
    payload_type: str = ""  # pubsub#type: the payload namespace, if the owner fixed one

    def item_limit(self, cap: int) -> int:
        """How many items the node keeps: ``max_items`` ("max" is ``cap``), never more than
        ``cap``; one (the last published) when items are not persisted."""
        if not self.persist_items:
            return 1
        return cap if self.max_items == MAX else min(int(self.max_items), cap)


DEFAULT_CONFIG = NodeConfig()


class InvalidOption(ValueError):
    """A configuration field we do not support, or a value it cannot take."""

    def __init__(self, var: str, reason: str) -> None:
        super().__init__(f"{var}: {reason}")
        self.var = var
        self.reason = reason


# --------------------------------------------------------------------- field table
Parser = Callable[[str, tuple[str, ...], int], Any]


def _single(var: str, values: tuple[str, ...]) -> str:
    if len(values) != 1:
        raise InvalidOption(var, "needs exactly one value")
    return values[0]


def _boolean(var: str, values: tuple[str, ...], _cap: int) -> bool:
    value = _single(var, values).strip()
    if value in ("1", "true"):  # XEP-0004 §3.3: boolean is 0, 1, false or true
        return True
    if value in ("0", "false"):
        return False
    raise InvalidOption(var, "not a boolean")


def _text(var: str, values: tuple[str, ...], _cap: int) -> str:
    value = _single(var, values) if values else ""
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidOption(var, "too long")
    return value


def _choice(enum_type: type[enum.Enum]) -> Parser:
    def parse(var: str, values: tuple[str, ...], _cap: int) -> enum.Enum:
        value = _single(var, values).strip()
        try:
            return enum_type(value)
        except ValueError:
            raise InvalidOption(var, f"unsupported value {value!r}") from None
    return parse


def _one_of(*allowed: str) -> Parser:
    def parse(var: str, values: tuple[str, ...], _cap: int) -> str:
        value = _single(var, values).strip()
        if value not in allowed:
            raise InvalidOption(var, f"unsupported value {value!r}")
        return value
    return parse


def _max_items(var: str, values: tuple[str, ...], cap: int) -> MaxItems:
    value = _single(var, values).strip()
    if value == MAX:
        return MAX
    if not value.isdigit() or not 1 <= int(value) <= cap:
        raise InvalidOption(var, f"must be \"max\" or a number from 1 to {cap}")
    return int(value)


def _groups(var: str, values: tuple[str, ...], _cap: int) -> tuple[str, ...]:
    if len(values) > MAX_ROSTER_GROUPS or any(len(v) > MAX_TEXT_CHARS for v in values):
        raise InvalidOption(var, "too many or too long roster groups")
    return tuple(sorted(set(values)))


@dataclass(frozen=True, slots=True)
class _Field:
    var: str
    attr: str | None  # NodeConfig attribute; None: a fixed value we only accept
    kind: str  # XEP-0004 field type
    label: str
    parse: Parser
    options: tuple[str, ...] = ()


_FIELDS: tuple[_Field, ...] = (
    _Field("pubsub#title", "title", "text-single", "A friendly name for the node", _text),
    _Field("pubsub#description", "description", "text-single", "A description of the node",
           _text),
    _Field("pubsub#type", "payload_type", "text-single",
           "The payload namespace (empty: any)", _text),
    _Field("pubsub#access_model", "access_model", "list-single", "Who may retrieve items",
           _choice(AccessModel), tuple(m.value for m in AccessModel)),
    _Field("pubsub#roster_groups_allowed", "roster_groups_allowed", "list-multi",
           "Roster groups allowed (roster access model)", _groups),
    _Field("pubsub#max_items", "max_items", "text-single",
           "Max # of items to persist (\"max\": the server's limit)", _max_items),
    _Field("pubsub#persist_items", "persist_items", "boolean", "Persist items to storage",
           _boolean),
    _Field("pubsub#deliver_notifications", "deliver_notifications", "boolean",
           "Whether to deliver event notifications", _boolean),
    _Field("pubsub#deliver_payloads", "deliver_payloads", "boolean",
           "Whether to deliver payloads with event notifications", _boolean),
    _Field("pubsub#notify_retract", "notify_retract", "boolean",
           "Notify subscribers when items are removed from the node", _boolean),
    _Field("pubsub#notify_delete", "notify_delete", "boolean",
           "Notify subscribers when the node is deleted", _boolean),
    _Field("pubsub#send_last_published_item", "send_last_published_item", "list-single",
           "When to send the last published item", _choice(SendLastItem),
           tuple(m.value for m in SendLastItem)),
    _Field("pubsub#notification_type", "notification_type", "list-single",
           "Message type of event notifications", _one_of("headline", "normal"),
           ("headline", "normal")),
    # XEP-0163 §2.2: one publisher per node, the account owner.
    _Field("pubsub#publish_model", None, "list-single", "Who may publish",
           _one_of("publishers"), ("publishers",)),
)
_BY_VAR = {f.var: f for f in _FIELDS}


def _parse_fields(fields: Mapping[str, tuple[str, ...]], cap: int) -> dict[str, Any]:
    """``{attr: value}`` for the submitted fields (fixed-value fields checked, dropped)."""
    changes: dict[str, Any] = {}
    for var, values in fields.items():
        spec = _BY_VAR.get(var)
        if spec is None:
            raise InvalidOption(var, "unsupported option")
        value = spec.parse(var, values, cap)
        if spec.attr is not None:
            changes[spec.attr] = value
    return changes


def apply_fields(base: NodeConfig, fields: Mapping[str, tuple[str, ...]], *,
                 cap: int) -> NodeConfig:
    """``base`` with the submitted fields applied.

    Raises:
        InvalidOption: an unsupported field or an invalid value.
    """
    return dataclasses.replace(base, **_parse_fields(fields, cap))


def _form_type_is(form: SubmittedForm, expected: str) -> None:
    # XEP-0068: a form's FORM_TYPE says what it is; one for something else is refused.
    if form.form_type not in (None, expected):
        raise PubsubError(StanzaErrorCondition.BAD_REQUEST, text="wrong FORM_TYPE")


def configure(base: NodeConfig, form: SubmittedForm, *, cap: int) -> NodeConfig:
    """XEP-0060 §8.2.4/§8.2.5: the configuration after the owner submits (or cancels) a form.

    Raises:
        PubsubError: not-acceptable (with unsupported-access-model where that is the
            reason) when the form cannot be processed; bad-request for a malformed form.
    """
    _form_type_is(form, NODE_CONFIG)
    if form.type == "cancel":
        return base  # §8.2.4: "the existing configuration MUST be applied"
    if form.type != "submit":
        raise PubsubError(StanzaErrorCondition.BAD_REQUEST, text="submit the form")
    try:
        return apply_fields(base, form.fields, cap=cap)
    except InvalidOption as exc:
        app = "unsupported-access-model" if exc.var == "pubsub#access_model" else None
        raise PubsubError(StanzaErrorCondition.NOT_ACCEPTABLE, app, text=str(exc)) from None


def _normalised(attr: str, value: Any, cap: int) -> Any:
    if attr == "max_items":
        return cap if value == MAX else value
    if attr == "roster_groups_allowed":
        return frozenset(value)
    return value


def publish_options(existing: NodeConfig | None, form: SubmittedForm, *,
                    cap: int) -> NodeConfig:
    """XEP-0060 §7.1.5 / XEP-0223: treat each publish option as a precondition.

    Returns the configuration to publish under: ``existing`` when every precondition
    holds, or, for a node that does not exist yet, the defaults with the options applied.

    Raises:
        PubsubError: conflict + precondition-not-met when the node exists and differs, or
            when an option is unsupported or invalid (it can never be met).
    """
    _form_type_is(form, PUBLISH_OPTIONS)
    if form.type != "submit":
        raise PubsubError(StanzaErrorCondition.BAD_REQUEST, text="submit the options")
    try:
        wanted = _parse_fields(form.fields, cap)
    except InvalidOption as exc:
        raise precondition_not_met(str(exc)) from None
    if existing is None:
        return dataclasses.replace(DEFAULT_CONFIG, **wanted)
    for attr, value in wanted.items():
        have = getattr(existing, attr)
        if _normalised(attr, have, cap) != _normalised(attr, value, cap):
            # XEP-0223 §4: the node is never reconfigured behind the owner's back.
            raise precondition_not_met(f"the node's {attr} differs")
    return existing


# --------------------------------------------------------------------- rendering
def _values(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("1" if value else "0",)
    if isinstance(value, enum.Enum):
        return (str(value.value),)
    if isinstance(value, tuple):
        return tuple(value)
    return (str(value),) if value != "" else ()


def config_form(config: NodeConfig, type_: str = "form") -> Element:
    """The node_config form (§8.2.2 result, §8.3 defaults) showing ``config``."""
    builder = FormBuilder(type_, NODE_CONFIG)
    for spec in _FIELDS:
        value = getattr(config, spec.attr) if spec.attr else spec.options[0]
        builder.add(FormField(spec.var, spec.kind, spec.label, _values(value), spec.options))
    return builder.element()


# --------------------------------------------------------------------- storage form
def to_json(config: NodeConfig) -> str:
    """The configuration as stored (a versioned JSON document)."""
    doc: dict[str, Any] = {"v": CONFIG_FORMAT}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        doc[f.name] = value.value if isinstance(value, enum.Enum) else (
            list(value) if isinstance(value, tuple) else value)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> NodeConfig:
    """Read a stored configuration; keys it lacks take their defaults.

    Raises:
        ValueError: not a configuration document of a format we know.
    """
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("v") != CONFIG_FORMAT:
        raise ValueError("not a stored node configuration")
    known = {f.name for f in dataclasses.fields(NodeConfig)}
    values: dict[str, Any] = {k: v for k, v in doc.items() if k in known}
    if "access_model" in values:
        values["access_model"] = AccessModel(values["access_model"])
    if "send_last_published_item" in values:
        values["send_last_published_item"] = SendLastItem(values["send_last_published_item"])
    if "roster_groups_allowed" in values:
        values["roster_groups_allowed"] = tuple(values["roster_groups_allowed"])
    return NodeConfig(**values)
