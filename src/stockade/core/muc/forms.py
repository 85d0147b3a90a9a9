"""The little of XEP-0004 Data Forms that MUC needs: read a submitted form, write fields."""

from __future__ import annotations

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.muc._ns import NS_DATA
from stockade.core.xml import Element

SEC = StanzaErrorCondition
MAX_FIELDS = 64  # more fields than any form we read has: refuse the rest as malformed
MAX_VALUES = 64  # values per field


def form_of(parent: Element) -> Element | None:
    """The ``<x xmlns='jabber:x:data'/>`` child of ``parent``, if any."""
    return parent.find(NS_DATA, "x")


def submitted_values(form: Element) -> dict[str, list[str]]:
    """The fields of a submitted form: var -> values (XEP-0004 §3.3).

    Raises:
        StanzaError: ``bad-request`` for a field without 'var', a repeated var, or more
            fields or values than any MUC form has.
    """
    values: dict[str, list[str]] = {}
    fields = form.find_all(NS_DATA, "field")
    if len(fields) > MAX_FIELDS:
        raise StanzaError(SEC.BAD_REQUEST, "too many form fields")
    for field in fields:
        var = field.get("var")
        if not var or var in values:
            raise StanzaError(SEC.BAD_REQUEST, "form field without a unique 'var'")
        found = [v.text for v in field.find_all(NS_DATA, "value")]
        if len(found) > MAX_VALUES:
            raise StanzaError(SEC.BAD_REQUEST, "too many values in a form field")
        values[var] = found
    return values


def parse_bool(value: str) -> bool:
    """XEP-0004 §3.3 boolean: "1"/"true" or "0"/"false".

    Raises:
        StanzaError: ``not-acceptable`` for anything else (XEP-0045 §10.1.3).
    """
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise StanzaError(SEC.NOT_ACCEPTABLE, "not a boolean")


def new_form(type_: str, form_type: str, title: str | None = None) -> Element:
    """A data form of ``type_`` ("form", "result") with its hidden FORM_TYPE field."""
    form = Element(NS_DATA, "x", {"type": type_})
    if title:
        form.sub(NS_DATA, "title", text=title)
    add_field(form, "FORM_TYPE", "hidden", [form_type])
    return form


def add_field(form: Element, var: str, type_: str, values: list[str], label: str | None = None,
              options: list[tuple[str, str]] | None = None) -> None:
    """Append a field with ``values`` and, for list fields, ``(label, value)`` options."""
    attrs = {"var": var, "type": type_}
    if label:
        attrs["label"] = label
    field = form.sub(NS_DATA, "field", attrs)
    for value in values:
        field.sub(NS_DATA, "value", text=value)
    for option_label, value in options or ():
        option = field.sub(NS_DATA, "option", {"label": option_label})
        option.sub(NS_DATA, "value", text=value)
