"""Node configuration forms (XEP-0060 §8.2), publish-options preconditions (§7.1.5,
XEP-0223) and the stored form of a configuration."""

from __future__ import annotations

import dataclasses

import pytest

from stockade.core.pubsub.errors import PubsubError
from stockade.core.pubsub.forms import NS_DATA, SubmittedForm, parse_form
from stockade.core.pubsub.node_config import (
    DEFAULT_CONFIG,
    NODE_CONFIG,
    PUBLISH_OPTIONS,
    AccessModel,
    InvalidOption,
    NodeConfig,
    SendLastItem,
    apply_fields,
    config_form,
    configure,
    from_json,
    publish_options,
    to_json,
)
from stockade.core.xml import Element

CAP = 256


def submitted(fields: dict[str, tuple[str, ...]], form_type: str | None = PUBLISH_OPTIONS,
              type_: str = "submit") -> SubmittedForm:
    return SubmittedForm(type_, form_type, fields)


def test_pep_defaults() -> None:
    # XEP-0163 §5: presence access model, payloads delivered, last item on sub and presence.
    assert DEFAULT_CONFIG.access_model is AccessModel.PRESENCE
    assert DEFAULT_CONFIG.deliver_payloads and DEFAULT_CONFIG.deliver_notifications
    assert DEFAULT_CONFIG.send_last_published_item is SendLastItem.ON_SUB_AND_PRESENCE
    assert DEFAULT_CONFIG.item_limit(CAP) == 1


def test_item_limit() -> None:
    assert NodeConfig(max_items="max").item_limit(CAP) == CAP
    assert NodeConfig(max_items=10).item_limit(CAP) == 10
    assert NodeConfig(max_items=500).item_limit(CAP) == CAP  # the hard cap always holds
    assert NodeConfig(max_items="max", persist_items=False).item_limit(CAP) == 1


def test_apply_fields() -> None:
    config = apply_fields(DEFAULT_CONFIG, {
        "pubsub#access_model": ("whitelist",), "pubsub#max_items": ("max",),
        "pubsub#persist_items": ("true",), "pubsub#send_last_published_item": ("never",),
        "pubsub#notify_retract": ("0",), "pubsub#roster_groups_allowed": ("b", "a", "b"),
        "pubsub#title": ("Bookmarks",), "pubsub#publish_model": ("publishers",),
    }, cap=CAP)
    assert config == dataclasses.replace(
        DEFAULT_CONFIG, access_model=AccessModel.WHITELIST, max_items="max",
        send_last_published_item=SendLastItem.NEVER, notify_retract=False,
        roster_groups_allowed=("a", "b"), title="Bookmarks")


@pytest.mark.parametrize(("var", "values"), [
    ("pubsub#persist_items", ("yes",)),
    ("pubsub#persist_items", ("1", "0")),
    ("pubsub#max_items", ("0",)),
    ("pubsub#max_items", ("-1",)),
    ("pubsub#max_items", (str(CAP + 1),)),
    ("pubsub#max_items", ("ten",)),
    ("pubsub#access_model", ("authorize",)),
    ("pubsub#publish_model", ("open",)),
    ("pubsub#notification_type", ("chat",)),
    ("pubsub#title", ("x" * 2000,)),
    ("pubsub#item_expire", ("60",)),
])
def test_invalid_options(var: str, values: tuple[str, ...]) -> None:
    with pytest.raises(InvalidOption) as info:
        apply_fields(DEFAULT_CONFIG, {var: values}, cap=CAP)
    assert info.value.var == var


def test_configure_submit_cancel_and_errors() -> None:
    form = submitted({"pubsub#max_items": ("5",)}, NODE_CONFIG)
    assert configure(DEFAULT_CONFIG, form, cap=CAP).max_items == 5
    cancel = submitted({"pubsub#max_items": ("bogus",)}, None, "cancel")
    assert configure(DEFAULT_CONFIG, cancel, cap=CAP) is DEFAULT_CONFIG  # §8.2.4
    with pytest.raises(PubsubError) as info:
        configure(DEFAULT_CONFIG, submitted({"pubsub#access_model": ("authorize",)},
                                            NODE_CONFIG), cap=CAP)
    assert (info.value.condition.value, info.value.pubsub_condition) == (
        "not-acceptable", "unsupported-access-model")
    with pytest.raises(PubsubError) as info:
        configure(DEFAULT_CONFIG, submitted({"pubsub#bogus": ("1",)}, NODE_CONFIG), cap=CAP)
    assert info.value.condition.value == "not-acceptable"
    with pytest.raises(PubsubError) as info:
        configure(DEFAULT_CONFIG, submitted({}, "urn:other"), cap=CAP)
    assert info.value.condition.value == "bad-request"


def test_publish_options_create_a_new_node_with_them() -> None:
    options = submitted({"pubsub#access_model": ("open",), "pubsub#max_items": ("max",)})
    config = publish_options(None, options, cap=CAP)
    assert (config.access_model, config.max_items) == (AccessModel.OPEN, "max")


def test_publish_options_met_by_an_existing_node() -> None:
    existing = NodeConfig(access_model=AccessModel.WHITELIST, max_items=CAP,
                          roster_groups_allowed=("a", "b"))
    options = submitted({"pubsub#access_model": ("whitelist",),
                         "pubsub#persist_items": ("1",),
                         "pubsub#max_items": ("max",),  # "max" is the cap: met
                         "pubsub#roster_groups_allowed": ("b", "a")})
    assert publish_options(existing, options, cap=CAP) is existing


@pytest.mark.parametrize("fields", [
    {"pubsub#access_model": ("open",)},
    {"pubsub#max_items": ("max",)},
    {"pubsub#persist_items": ("false",)},
    {"pubsub#item_expire": ("60",)},  # unsupported: can never be met
    {"pubsub#max_items": ("zero",)},
])
def test_publish_options_not_met(fields: dict[str, tuple[str, ...]]) -> None:
    existing = NodeConfig(access_model=AccessModel.WHITELIST, max_items=1)
    with pytest.raises(PubsubError) as info:
        publish_options(existing, submitted(fields), cap=CAP)
    # XEP-0060 §7.1.5: conflict with a pubsub-specific precondition-not-met.
    assert (info.value.condition.value, info.value.pubsub_condition) == (
        "conflict", "precondition-not-met")


def test_publish_options_form_type_and_type() -> None:
    assert publish_options(None, submitted({}, None), cap=CAP) == DEFAULT_CONFIG
    for form in (submitted({}, NODE_CONFIG), submitted({}, PUBLISH_OPTIONS, "form")):
        with pytest.raises(PubsubError) as info:
            publish_options(None, form, cap=CAP)
        assert info.value.condition.value == "bad-request"


def test_config_form_round_trips_through_a_submission() -> None:
    config = NodeConfig(access_model=AccessModel.ROSTER, roster_groups_allowed=("friends",),
                        max_items="max", notify_delete=False, title="Tunes",
                        payload_type="http://jabber.org/protocol/tune")
    form = config_form(config)
    assert form.get("type") == "form"
    parsed = parse_form(form)
    assert parsed.form_type == NODE_CONFIG
    access = next(f for f in form.find_all(NS_DATA, "field")
                  if f.get("var") == "pubsub#access_model")
    assert access.get("type") == "list-single"
    assert [o.find(NS_DATA, "value").text for o in access.find_all(NS_DATA, "option")] == [  # type: ignore[union-attr]
        "open", "presence", "roster", "whitelist"]
    resubmitted = SubmittedForm("submit", parsed.form_type, parsed.fields)
    assert configure(DEFAULT_CONFIG, resubmitted, cap=CAP) == config


def test_stored_form_round_trips() -> None:
    config = NodeConfig(access_model=AccessModel.OPEN, roster_groups_allowed=("a",),
                        max_items="max", send_last_published_item=SendLastItem.ON_SUB)
    assert from_json(to_json(config)) == config
    assert from_json('{"v":1}') == DEFAULT_CONFIG  # keys it lacks take defaults
    assert from_json('{"v":1,"future_option":true}') == DEFAULT_CONFIG
    with pytest.raises(ValueError):
        from_json('{"v":99}')


def test_parse_form_rejects_malformed() -> None:
    def form(*fields: tuple[str | None, list[str]], type_: str | None = "submit") -> Element:
        x = Element(NS_DATA, "x", {"type": type_} if type_ else {})
        for var, values in fields:
            f = x.sub(NS_DATA, "field", {"var": var} if var else {})
            for v in values:
                f.sub(NS_DATA, "value", text=v)
        return x

    ok = parse_form(form(("FORM_TYPE", ["urn:t"]), ("a", ["1", "2"]), ("b", [])))
    assert (ok.form_type, ok.fields) == ("urn:t", {"a": ("1", "2"), "b": ()})
    for bad in (form(type_=None), form(type_="weird"), form((None, ["1"])),
                form(("a", []), ("a", []))):
        with pytest.raises(PubsubError) as info:
            parse_form(bad)
        assert info.value.condition.value == "bad-request"
    with pytest.raises(PubsubError) as info:
        parse_form(form(*[(f"f{i}", []) for i in range(100)]))
    assert info.value.condition.value == "policy-violation"
