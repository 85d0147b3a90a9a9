"""The part of XEP-0004 Data Forms pubsub needs: read a submitted form, write a form.

A submitted form becomes ``{var: (value, ...)}``; its FORM_TYPE (XEP-0068) is kept apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stockade.core.errors import StanzaErrorCondition
from stockade.core.pubsub.errors import PubsubError
from stockade.core.xml import Element

NS_DATA = "jabber:x:data"
FORM_TYPES = frozenset({"form", "submit", "cancel", "result"})
MAX_FIELDS = 64
MAX_VALUES = 256  # per field (e.g. roster groups)


@dataclass(frozen=True, slots=True)
class SubmittedForm:
    """A ``<x xmlns='jabber:x:data'/>`` as received."""

    type: str
    form_type: str | None
    fields: dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class FormField:
    """One field of a form we send."""

    var: str
    type: str | None = None
    label: str | None = None
    values: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def find_form(parent: Element) -> Element | None:
    """The data form child of ``parent``, if any."""
    return parent.find(NS_DATA, "x")


def parse_form(x: Element) -> SubmittedForm:
    """Read a data form.

    Raises:
        PubsubError: bad-request for a form XEP-0004 does not allow (no or unknown type,
            a field without var, a var twice) or one over our bounds.
    """
    type_ = x.get("type")
    if type_ not in FORM_TYPES:
        raise PubsubError(StanzaErrorCondition.BAD_REQUEST, text="invalid data form type")
    fields: dict[str, tuple[str, ...]] = {}
    form_type: str | None = None
    elements = x.find_all(NS_DATA, "field")
    if len(elements) > MAX_FIELDS:
        raise PubsubError(StanzaErrorCondition.POLICY_VIOLATION, text="too many form fields")
    for el in elements:
        var = el.get("var")
        if not var or var in fields or (var == "FORM_TYPE" and form_type is not None):
            raise PubsubError(StanzaErrorCondition.BAD_REQUEST, text="invalid form field")
        values = tuple(v.text for v in el.find_all(NS_DATA, "value"))
        if len(values) > MAX_VALUES:
            raise PubsubError(StanzaErrorCondition.POLICY_VIOLATION, text="too many values")
        if var == "FORM_TYPE":
            form_type = values[0] if values else ""
        else:
            fields[var] = values
    return SubmittedForm(type_, form_type, fields)


@dataclass(slots=True)
class FormBuilder:
    """Builds a form to send: ``FormBuilder("form", NS).add(FormField(...)).element()``."""

    type: str
    form_type: str
    fields: list[FormField] = field(default_factory=list)

    def add(self, form_field: FormField) -> FormBuilder:
        """Append a field."""
        self.fields.append(form_field)
        return self

    def element(self) -> Element:
        """The ``<x/>`` element."""
        x = Element(NS_DATA, "x", {"type": self.type})
        hidden = x.sub(NS_DATA, "field", {"var": "FORM_TYPE", "type": "hidden"})
        hidden.sub(NS_DATA, "value", text=self.form_type)
        for f in self.fields:
            attrs = {"var": f.var}
            if f.type:
                attrs["type"] = f.type
            if f.label:
                attrs["label"] = f.label
            el = x.sub(NS_DATA, "field", attrs)
            for option in f.options:
                el.sub(NS_DATA, "option").sub(NS_DATA, "value", text=option)
            for value in f.values:
                # An empty text-single value is written as an empty <value/>.
                el.append(Element(NS_DATA, "value", None, [value] if value else None))
        return x
