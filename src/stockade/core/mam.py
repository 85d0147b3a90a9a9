"""Message archives without I/O: XEP-0313 queries and results, XEP-0059 paging, XEP-0359
stanza ids, XEP-0441 preferences and the XEP-0334 storage hints.

Nothing here assumes whose archive it is: a user's archive (``user@domain``) and a room's
archive (XEP-0045 + MAM, ``room@service``) share the query object, the result builder, the
stamp format and the eligibility rule. Time arrives as integer microseconds since the epoch.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from stockade.core.errors import JIDError, StanzaError, StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.xml import Element, escape_attr, serialize

NS_MAM = "urn:xmpp:mam:2"
NS_MAM_EXTENDED = "urn:xmpp:mam:2#extended"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"
NS_XDATA_VALIDATE = "http://jabber.org/protocol/xdata-validate"
NS_SID = "urn:xmpp:sid:0"
NS_HINTS = "urn:xmpp:hints"

SEC = StanzaErrorCondition
#: XEP-0313 §4.1: the filter fields a query form may carry (all of them, with #extended).
QUERY_FIELDS = frozenset({"with", "start", "end", "before-id", "after-id", "ids"})
#: XEP-0441 §2.1.1: the archiving defaults.
PREF_DEFAULTS = ("always", "never", "roster")
MAX_PREF_JIDS = 1000  # JIDs per <always/> or <never/> list (keeps the stored document small)
_MAX_DIGITS = 9  # an RSM <max/> longer than this is not a page size anyone means

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)
# XEP-0082 §3.3 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, the time zone required.
_DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                       r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})")


# ---------------------------------------------------------------------------- time


def parse_datetime(text: str) -> int:
    """A XEP-0082 DateTime as microseconds since the epoch (finer fractions are cut).

    Raises:
        ValueError: not a XEP-0082 DateTime (a time zone is required).
    """
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError("not a XEP-0082 DateTime")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zone = match[7] or "", match[8]
    offset = datetime.timedelta(0)
    if zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("time zone offset out of range")
        offset = datetime.timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
    moment = datetime.datetime(year, month, day, hour, minute, second,
                               int((fraction + "000000")[:6]), datetime.timezone(offset))
    return (moment - _EPOCH) // _MICROSECOND


def format_stamp(stamp_us: int) -> str:
    """XEP-0082 DateTime in UTC with microseconds (e.g. ``2024-05-01T12:00:00.123456Z``)."""
    moment = _EPOCH + datetime.timedelta(microseconds=stamp_us)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z")


# ---------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class Page:
    """An XEP-0059 page request: at most ``max`` items, after the item ``after``, or (when
    ``backwards``) the last ``max`` items before ``before`` (None: before the end)."""

    max: int
    after: str | None = None
    before: str | None = None
    backwards: bool = False


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """A parsed XEP-0313 query against any archive (user or room).

    ``with_jid`` bare matches every resource, full matches exactly (§4.1.1); ``start`` and
    ``end`` are inclusive (§4.1.2); ``after_id``/``before_id`` bound the result set without
    changing the paging direction and ``ids`` selects items (§4.1.3, #extended); ``flip``
    sends a page newest first without changing which items it holds (§4.3.4).
    """

    query_id: str | None
    page: Page
    with_jid: JID | None = None
    start_us: int | None = None
    end_us: int | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] = ()
    flip: bool = False


def parse_query(query: Element, *, max_page_size: int) -> ArchiveQuery:
    """Parse ``<query xmlns='urn:xmpp:mam:2'>`` of an IQ set; pages are clamped to
    ``max_page_size`` (XEP-0313 §4.3.1 lets a server limit them).

    Raises:
        StanzaError: bad-request for malformed input, jid-malformed for a bad 'with',
            feature-not-implemented for an unknown field (§4.1.5) or a pubsub 'node'.
    """
    if query.get("node") is not None:
        raise StanzaError(SEC.FEATURE_NOT_IMPLEMENTED, "no pubsub archive here")
    forms = query.find_all(NS_DATA, "x")
    sets = query.find_all(NS_RSM, "set")
    if len(forms) > 1 or len(sets) > 1:
        raise StanzaError(SEC.BAD_REQUEST, "one data form and one RSM set at most")
    fields = _form_fields(forms[0]) if forms else {}
    unknown = set(fields) - QUERY_FIELDS
    if unknown:
        # SECURITY: the client's field name is not echoed back in the error text.
        raise StanzaError(SEC.FEATURE_NOT_IMPLEMENTED, "unknown filter field")
    ids = tuple(fields.get("ids", ()))
    if any(not archive_id for archive_id in ids) or len(ids) > max_page_size:
        raise StanzaError(SEC.BAD_REQUEST, f"'ids' takes 1 to {max_page_size} non-empty ids")
    return ArchiveQuery(
        query_id=query.get("queryid"),
        page=parse_rsm(sets[0] if sets else None, max_page_size=max_page_size),
        with_jid=_jid_field(_single(fields, "with")),
        start_us=_time_field(_single(fields, "start")),
        end_us=_time_field(_single(fields, "end")),
        after_id=_single(fields, "after-id"),
        before_id=_single(fields, "before-id"),
        ids=ids,
        flip=query.find(NS_MAM, "flip-page") is not None,
    )


def parse_rsm(rsm: Element | None, *, max_page_size: int) -> Page:
    """Parse an XEP-0059 ``<set/>`` request; no ``<max/>`` (or a larger one) means
    ``max_page_size``.

    Raises:
        StanzaError: bad-request for a malformed value, feature-not-implemented for
            ``<index/>`` (jumping to an offset, XEP-0059 §2.6, is not offered).
    """
    if rsm is None:
        return Page(max_page_size)
    if rsm.find(NS_RSM, "index") is not None:
        raise StanzaError(SEC.FEATURE_NOT_IMPLEMENTED, "paging by index is not supported")
    size = max_page_size
    max_el = rsm.find(NS_RSM, "max")
    if max_el is not None:
        text = max_el.text.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
            raise StanzaError(SEC.BAD_REQUEST, "<max/> must be a non-negative integer")
        size = min(int(text), max_page_size)
    after_el, before_el = rsm.find(NS_RSM, "after"), rsm.find(NS_RSM, "before")
    after = after_el.text if after_el is not None else None
    if after == "":
        raise StanzaError(SEC.BAD_REQUEST, "<after/> needs an item id")
    if before_el is None:
        return Page(size, after=after)
    # XEP-0059 §2.5: an empty <before/> asks for the last page.
    return Page(size, after=after, before=before_el.text or None, backwards=True)


def _form_fields(form: Element) -> dict[str, list[str]]:
    """The values of a submitted XEP-0004 form, FORM_TYPE checked and removed."""
    if form.get("type") != "submit":
        raise StanzaError(SEC.BAD_REQUEST, "the query form must be of type 'submit'")
    fields: dict[str, list[str]] = {}
    for field in form.find_all(NS_DATA, "field"):
        var = field.get("var")
        if not var or var in fields:
            raise StanzaError(SEC.BAD_REQUEST, "form fields need a unique 'var'")
        fields[var] = [value.text for value in field.find_all(NS_DATA, "value")]
    # XEP-0313 §4.1: "The hidden FORM_TYPE field MUST be set to this protocol's namespace".
    if fields.pop("FORM_TYPE", None) != [NS_MAM]:
        raise StanzaError(SEC.BAD_REQUEST, f"FORM_TYPE must be {NS_MAM}")
    return fields


def _single(fields: dict[str, list[str]], var: str) -> str | None:
    values = fields.get(var, [])
    if len(values) > 1:
        raise StanzaError(SEC.BAD_REQUEST, f"'{var}' takes one value")
    return values[0] if values and values[0] else None


def _jid_field(text: str | None) -> JID | None:
    if text is None:
        return None
    try:
        return JID.parse(text)
    except JIDError:
        raise StanzaError(SEC.JID_MALFORMED, "'with' is not a JID") from None


def _time_field(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        raise StanzaError(SEC.BAD_REQUEST, "'start' and 'end' are XEP-0082 DateTimes") from None


def query_form() -> Element:
    """XEP-0313 §4.1.5: the query's payload answering a form request (IQ get)."""
    query = Element(NS_MAM, "query")
    form = query.sub(NS_DATA, "x", {"type": "form"})
    form_type = form.sub(NS_DATA, "field", {"type": "hidden", "var": "FORM_TYPE"})
    form_type.sub(NS_DATA, "value", text=NS_MAM)
    for var, type_ in (("with", "jid-single"), ("start", "text-single"),
                       ("end", "text-single"), ("before-id", "text-single"),
                       ("after-id", "text-single")):
        form.sub(NS_DATA, "field", {"type": type_, "var": var})
    ids = form.sub(NS_DATA, "field", {"type": "list-multi", "var": "ids"})
    # "the server MUST include a XEP-0122 <validate/> element that signals the list is open"
    ids.sub(NS_XDATA_VALIDATE, "validate", {"datatype": "xs:string"}).sub(NS_XDATA_VALIDATE,
                                                                          "open")
    return query


# ---------------------------------------------------------------------------- results


def result_text(*, to: str, archive: str, message_id: str, query_id: str | None,
                archive_id: str, stamp_us: int, stanza_xml: str) -> str:
    """One XEP-0313 §4.2 result message, serialized for a jabber:client stream.

    ``stanza_xml`` is the archived ``<message/>`` serialized with its own
    ``xmlns='jabber:client'`` (see :func:`archived_xml`); ``archive`` is the archive's JID
    (the results' 'from', which the client checks, §8.2).
    """
    query_attr = f" queryid='{escape_attr(query_id)}'" if query_id is not None else ""
    return (f"<message to='{escape_attr(to)}' from='{escape_attr(archive)}' "
            f"id='{escape_attr(message_id)}'><result xmlns='{NS_MAM}'{query_attr} "
            f"id='{escape_attr(archive_id)}'><forwarded xmlns='{NS_FORWARD}'>"
            f"<delay xmlns='{NS_DELAY}' stamp='{format_stamp(stamp_us)}'/>{stanza_xml}"
            f"</forwarded></result></message>")


def result_element(*, to: str, archive: str, message_id: str, query_id: str | None,
                   archive_id: str, stamp_us: int, stanza: Element,
                   client_ns: str = "jabber:client") -> Element:
    """The same result message as :func:`result_text`, as an element tree."""
    message = Element(client_ns, "message", {"to": to, "from": archive, "id": message_id})
    attrs = {"id": archive_id} if query_id is None else {"queryid": query_id, "id": archive_id}
    forwarded = message.sub(NS_MAM, "result", attrs).sub(NS_FORWARD, "forwarded")
    forwarded.sub(NS_DELAY, "delay", {"stamp": format_stamp(stamp_us)})
    forwarded.append(stanza)
    return message


def archived_xml(stanza: Element) -> str:
    """How a message is kept in an archive: serialized with its own namespace declaration,
    so it can be embedded in a <forwarded/> element as it is."""
    return serialize(stanza)


def fin_element(first: str | None, last: str | None, count: int | None,
                *, complete: bool) -> Element:
    """XEP-0313 §4.3: the IQ result's ``<fin/>`` with the RSM ``<set/>`` of the page sent.

    ``complete`` says the page was not cut by the page size (no more items in the paging
    direction); an empty page has neither first nor last, only the count (XEP-0059).
    """
    fin = Element(NS_MAM, "fin", {"complete": "true" if complete else "false"})
    rsm = fin.sub(NS_RSM, "set")
    if first is not None and last is not None:
        rsm.sub(NS_RSM, "first", text=first)
        rsm.sub(NS_RSM, "last", text=last)
    if count is not None:
        rsm.sub(NS_RSM, "count", text=str(count))
    return fin


def metadata_element(first: tuple[str, int] | None, last: tuple[str, int] | None) -> Element:
    """XEP-0313 §5: ``<metadata/>`` naming the (id, stamp) of the first and last items;
    empty for an empty archive."""
    metadata = Element(NS_MAM, "metadata")
    for name, item in (("start", first), ("end", last)):
        if item is not None:
            metadata.sub(NS_MAM, name, {"id": item[0], "timestamp": format_stamp(item[1])})
    return metadata


# ---------------------------------------------------------------------------- what to keep


def hints(stanza: Element) -> frozenset[str]:
    """The XEP-0334 processing hints a stanza carries (element names)."""
    return frozenset(child.name for child in stanza.elements() if child.ns == NS_HINTS)


def is_archivable(stanza: Element, type_: str, *, groupchat: bool = False) -> bool:
    """Whether a message goes into an archive.

    XEP-0313 §6.1.1: messages of type 'normal' or 'chat' with a <body/>; groupchat only
    where the archive takes it (``groupchat``: a room's archive); never errors. XEP-0334:
    <no-store/> and <no-permanent-store/> keep it out, <store/> lets a body-less message in
    (§4.4) - the refusal wins when both are present.
    """
    if type_ == "error" or (type_ == "groupchat" and not groupchat):
        return False
    hinted = hints(stanza)
    if "no-store" in hinted or "no-permanent-store" in hinted:
        return False
    if "store" in hinted:
        return True
    return type_ != "headline" and stanza.find(stanza.ns, "body") is not None


# ---------------------------------------------------------------------------- stanza ids


def restamp(stanza: Element, owned_by: Collection[str],
            stanza_id: tuple[str, str] | None = None) -> Element:
    """``stanza`` with the XEP-0359 ids an archive must control: every <stanza-id/> whose
    'by' names one of ``owned_by`` (prepared JIDs) removed, malformed sid elements removed or
    cleaned, and ``stanza_id`` = (id, by) added. Returns ``stanza`` itself if nothing changes.

    SECURITY: XEP-0359 §4 rule 3 ("MUST ignore the existing value of 'id' and override it"):
    a sender must not plant an id under the recipient's or the server's name, or a client
    that trusts its server's ids would de-duplicate real messages against the forged one.
    'by' is compared after JID preparation, so ``Juliet@Capulet.LIT`` is caught too. Other
    entities' ids and the sender's <origin-id/> are kept (rule 1: routers do not strip them),
    reduced to the attributes the XEP defines (rule 1) and without children (rule 6).
    """
    children: list[Element | str] = []
    changed = False
    for child in stanza.children:
        kept = _sid_kept(child, owned_by) if isinstance(child, Element) else child
        changed = changed or kept is not child
        if kept is not None:
            children.append(kept)
    if stanza_id is not None:
        children.append(Element(NS_SID, "stanza-id", {"id": stanza_id[0], "by": stanza_id[1]}))
        changed = True
    return Element(stanza.ns, stanza.name, dict(stanza.attrs), children) if changed else stanza


def _sid_kept(child: Element, owned_by: Collection[str]) -> Element | None:
    if child.ns != NS_SID or child.name not in ("stanza-id", "origin-id"):
        return child
    allowed = ("id", "by") if child.name == "stanza-id" else ("id",)
    attrs = {key: child.attrs[key] for key in allowed if child.attrs.get(key)}
    if len(attrs) != len(allowed):
        return None  # rule 5: no id (or no 'by'): not a usable id at all
    if "by" in attrs:
        try:
            by = str(JID.parse(attrs["by"]))
        except JIDError:
            return None
        if by in owned_by:
            return None
    if attrs == child.attrs and not child.children:
        return child
    return Element(child.ns, child.name, attrs)


def stanza_ids(stanza: Element) -> dict[str, str]:
    """The XEP-0359 stanza-ids of a message, by 'by'."""
    return {child.attrs["by"]: child.attrs["id"] for child in stanza.find_all(NS_SID, "stanza-id")
            if "by" in child.attrs and "id" in child.attrs}


# ---------------------------------------------------------------------------- preferences


@dataclass(frozen=True, slots=True)
class ArchivePrefs:
    """XEP-0441 archiving preferences: the default for JIDs in neither list."""

    default: str
    always: tuple[JID, ...] = ()
    never: tuple[JID, ...] = ()

    def __post_init__(self) -> None:
        if self.default not in PREF_DEFAULTS:
            raise ValueError(f"archiving default must be one of {', '.join(PREF_DEFAULTS)}")

    def rule_for(self, peer: JID) -> str:
        """'always', 'never' or 'roster' (archive if ``peer``'s bare JID is in the roster)
        for a message to (outgoing) or from (incoming) ``peer``, XEP-0441 §2.3.

        A JID in both lists is not archived: the user asked for it once at least.
        """
        if _listed(peer, self.never):
            return "never"
        if _listed(peer, self.always):
            return "always"
        return self.default

    @classmethod
    def from_element(cls, prefs: Element) -> ArchivePrefs:
        """Parse a ``<prefs/>`` set request.

        Raises:
            StanzaError: bad-request (no valid default), jid-malformed, not-acceptable
                (more than MAX_PREF_JIDS JIDs in a list).
        """
        default = prefs.get("default")
        if default not in PREF_DEFAULTS:
            raise StanzaError(SEC.BAD_REQUEST, "'default' must be always, never or roster")
        lists = [_jid_list(prefs.find_all(NS_MAM, name)) for name in ("always", "never")]
        return cls(default, lists[0], lists[1])

    def to_element(self) -> Element:
        """The ``<prefs/>`` payload; both lists are present even when empty (§2.1)."""
        prefs = Element(NS_MAM, "prefs", {"default": self.default})
        for name, jids in (("always", self.always), ("never", self.never)):
            listing = prefs.sub(NS_MAM, name)
            for jid in jids:
                listing.sub(NS_MAM, "jid", text=str(jid))
        return prefs

    def to_json(self) -> str:
        """A compact document for the account-data store."""
        return json.dumps({"default": self.default, "always": [str(j) for j in self.always],
                           "never": [str(j) for j in self.never]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ArchivePrefs:
        """Read :meth:`to_json` output.

        Raises:
            ValueError: not such a document.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("archive preferences must be a JSON object")
        return cls(str(data.get("default")), _parsed(data.get("always", [])),
                   _parsed(data.get("never", [])))


def _listed(peer: JID, jids: Iterable[JID]) -> bool:
    # XEP-0441 §2.3.1: a listed full JID matches as-is, a listed bare JID any resource.
    bare = peer.bare
    return any(jid == (peer if jid.resource is not None else bare) for jid in jids)


def _jid_list(listings: list[Element]) -> tuple[JID, ...]:
    if len(listings) > 1:
        raise StanzaError(SEC.BAD_REQUEST, "each list appears at most once")
    items = listings[0].find_all(NS_MAM, "jid") if listings else []
    if len(items) > MAX_PREF_JIDS:
        raise StanzaError(SEC.NOT_ACCEPTABLE, f"at most {MAX_PREF_JIDS} JIDs per list")
    try:
        jids = [JID.parse(item.text.strip()) for item in items]
    except JIDError:
        raise StanzaError(SEC.JID_MALFORMED, "not a JID in the preferences") from None
    return tuple(dict.fromkeys(jids))


def _parsed(values: object) -> tuple[JID, ...]:
    if not isinstance(values, list):
        raise ValueError("a JID list must be a JSON array")
    try:
        return tuple(JID.parse(str(value)) for value in values)
    except JIDError as exc:
        raise ValueError(str(exc)) from None
