"""XEP-0115 Entity Capabilities: the verification string (§5.1, §5.3) and the checks a
receiver makes before trusting a disco#info answer for a 'ver' (§5.4).

A 'ver' is only a claim until the disco#info it names hashes to it: an unverified claim is
never cached or applied to anyone else (§8.3 caps poisoning).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from stockade.core.xml import XML_LANG, Element

NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
NOTIFY_SUFFIX = "+notify"
# IANA "Hash Function Textual Names" this service verifies (§5.1 step 7: sha-1 is the MUST).
HASHES = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384",
          "sha-512": "sha512"}
MAX_VER_CHARS = 128
MAX_NODE_CHARS = 1023
MAX_FEATURES = 1000
MAX_IDENTITIES = 64


class CapsMismatch(ValueError):
    """A disco#info answer that does not verify against the claimed 'ver'."""


@dataclass(frozen=True, slots=True)
class CapsClaim:
    """The ``<c/>`` of a presence (§4): which hash over which disco#info."""

    hash: str
    node: str
    ver: str

    @property
    def key(self) -> tuple[str, str]:
        """What a verified answer is cached under."""
        return (self.hash, self.ver)


def parse_caps(presence: Element) -> CapsClaim | None:
    """The presence's caps claim, or None: no ``<c/>``, the legacy form without 'hash'
    (§8.4: nothing to verify, so ignored), an unsupported hash, or oversized values."""
    c = presence.find(NS_CAPS, "c")
    if c is None:
        return None
    hash_name, node, ver = c.get("hash"), c.get("node"), c.get("ver")
    if hash_name is None or hash_name not in HASHES or not node or not ver:
        return None
    if len(node) > MAX_NODE_CHARS or len(ver) > MAX_VER_CHARS:
        return None
    return CapsClaim(hash_name, node, ver)


def disco_query(claim: CapsClaim) -> Element:
    """§6.2: the disco#info get for ``node#ver`` (addressing is the sender's job)."""
    iq = Element("jabber:client", "iq", {"type": "get"})
    iq.sub(NS_DISCO_INFO, "query", {"node": f"{claim.node}#{claim.ver}"})
    return iq


def _identities(query: Element) -> list[str]:
    found = []
    for el in query.find_all(NS_DISCO_INFO, "identity"):
        a = el.attrs
        found.append("/".join((a.get("category", ""), a.get("type", ""),
                               a.get(XML_LANG, ""), a.get("name", ""))))
    if len(found) != len(set(found)):
        # §5.4 step 3.3: the same category/type/lang/name twice: the answer is ill-formed.
        raise CapsMismatch("duplicate identity")
    return found


def _features(query: Element) -> list[str]:
    found = [el.attrs.get("var", "") for el in query.find_all(NS_DISCO_INFO, "feature")]
    if len(found) != len(set(found)):
        raise CapsMismatch("duplicate feature")  # §5.4 step 3.4
    return found


def _form_part(form: Element) -> tuple[str, str] | None:
    """(FORM_TYPE, its part of S) for one XEP-0128 form, or None for a form to ignore."""
    fields = form.find_all(NS_DATA, "field")
    form_type = [f for f in fields if f.get("var") == "FORM_TYPE"]
    if len(form_type) > 1:
        raise CapsMismatch("FORM_TYPE twice in one form")
    if not form_type or form_type[0].get("type") != "hidden":
        return None  # §5.4 step 3.6: no hidden FORM_TYPE: ignore the form
    type_values = {v.text for v in form_type[0].find_all(NS_DATA, "value")}
    if len(type_values) != 1:
        raise CapsMismatch("FORM_TYPE with several values")  # §5.4 step 3.5
    (type_value,) = type_values
    parts = [type_value + "<"]
    others = sorted((f for f in fields if f.get("var") != "FORM_TYPE"),
                    key=lambda f: f.attrs.get("var", ""))
    for f in others:
        parts.append(f.attrs.get("var", "") + "<")
        values = sorted(v.text for v in f.find_all(NS_DATA, "value"))
        parts.extend(v + "<" for v in values)
    return type_value, "".join(parts)


def verification_input(query: Element) -> str:
    """The string S of §5.1 for a ``<query xmlns='...disco#info'/>``.

    Raises:
        CapsMismatch: the answer is ill-formed in a way §5.4 rejects.
    """
    identities = _identities(query)
    features = _features(query)
    if len(identities) > MAX_IDENTITIES or len(features) > MAX_FEATURES:
        raise CapsMismatch("too large to verify")
    # Python compares str by code point, which orders like i;octet over UTF-8.
    parts = [i + "<" for i in sorted(identities)]
    parts.extend(f + "<" for f in sorted(features))
    forms: dict[str, str] = {}
    for form in query.find_all(NS_DATA, "x"):
        part = _form_part(form)
        if part is None:
            continue
        if part[0] in forms:
            raise CapsMismatch("two forms with one FORM_TYPE")  # §5.4 step 3.5
        forms[part[0]] = part[1]
    parts.extend(forms[t] for t in sorted(forms))
    return "".join(parts)


def compute_ver(query: Element, hash_name: str = "sha-1") -> str:
    """The 'ver' of a disco#info query under ``hash_name`` (§5.1 steps 7-8).

    Raises:
        CapsMismatch: ill-formed answer, or a hash this module does not support.
    """
    algorithm = HASHES.get(hash_name)
    if algorithm is None:
        raise CapsMismatch(f"unsupported hash {hash_name!r}")
    digest = hashlib.new(algorithm, verification_input(query).encode()).digest()
    return base64.b64encode(digest).decode("ascii")


def verified_features(answer: Element, claim: CapsClaim) -> frozenset[str]:
    """The features of a disco#info IQ answer, if it verifies against ``claim``.

    Raises:
        CapsMismatch: an error answer, no query, or a hash that differs (§5.4 step 3.8).
    """
    if answer.get("type") != "result":
        raise CapsMismatch("the client did not answer the disco#info query")
    query = answer.find(NS_DISCO_INFO, "query")
    if query is None:
        raise CapsMismatch("no disco#info in the answer")
    if compute_ver(query, claim.hash) != claim.ver:
        raise CapsMismatch("the answer does not hash to the claimed ver")
    return frozenset(_features(query))


def notify_nodes(features: Iterable[str]) -> frozenset[str]:
    """XEP-0163 §4.2 / XEP-0060 §9.2: the nodes a client asks notifications for."""
    return frozenset(f[: -len(NOTIFY_SUFFIX)] for f in features
                     if f.endswith(NOTIFY_SUFFIX) and len(f) > len(NOTIFY_SUFFIX))
