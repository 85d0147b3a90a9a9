"""JIDs: parsing and PRECIS preparation, RFC 7622."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import precis_i18n

from stockade.core.errors import JIDError
from stockade.core.spec import Spec

_MAX_PART_BYTES = 1023  # RFC 7622 §3.2-3.4: each part 1 to 1023 octets after preparation
_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_RESOURCE = precis_i18n.get_profile("OpaqueString")
# RFC 7622 §3.3.1: localpart must not contain these even though PRECIS allows them.
_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@")


def _check_length(part: str, what: str) -> None:
    size = len(part.encode("utf-8"))
    if size == 0:
        raise JIDError(f"empty {what}")
    if size > _MAX_PART_BYTES:
        raise JIDError(f"{what} longer than {_MAX_PART_BYTES} bytes")


def prepare_localpart(local: str) -> str:
    """Apply the UsernameCaseMapped profile (RFC 7622 §3.3)."""
    try:
        prepared: str = _USERNAME.enforce(local)
    except UnicodeError as exc:
        raise JIDError(f"invalid localpart: {exc}") from None
    if _LOCAL_FORBIDDEN.intersection(prepared):
        raise JIDError("localpart contains a forbidden character")
    _check_length(prepared, "localpart")
    return prepared


def prepare_domainpart(domain: str) -> str:
    """Prepare a domainpart (RFC 7622 §3.2): lower case, NFC, IDNA U-labels, no trailing dot."""
    if domain.endswith("."):
        domain = domain[:-1]
    if domain.startswith("[") and domain.endswith("]"):
        _check_length(domain, "domainpart")
        return domain.lower()  # IPv6 literal
    try:
        labels = [_prepare_label(label) for label in domain.split(".")]
    except UnicodeError as exc:
        raise JIDError(f"invalid domainpart: {exc}") from None
    prepared = ".".join(labels)
    _check_length(prepared, "domainpart")
    return prepared


def _prepare_label(label: str) -> str:
    if not label:
        raise JIDError("empty label in domainpart")
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--"):
            label = label.encode("ascii").decode("idna")
    else:
        label = label.encode("idna").decode("ascii").encode("ascii").decode("idna")
    if any(ch.isspace() or ch in "@/<>&'\"" or ord(ch) < 0x21 for ch in label):
        raise JIDError("domainpart contains a forbidden character")
    if len(label.encode("idna")) > 63:
        raise JIDError("domain label longer than 63 octets")
    return label


def prepare_resourcepart(resource: str) -> str:
    """Apply the OpaqueString profile (RFC 7622 §3.4)."""
    try:
        prepared: str = _RESOURCE.enforce(resource)
    except UnicodeError as exc:
        raise JIDError(f"invalid resourcepart: {exc}") from None
    _check_length(prepared, "resourcepart")
    return prepared


@dataclass(frozen=True, slots=True)
class JID:
    """A prepared JID. Construct with :meth:`parse` or :meth:`make`; instances are valid."""

    local: str | None
    domain: str
    resource: str | None

    @staticmethod
    def parse(text: str) -> JID:
        """Parse and prepare a JID string (RFC 7622 §3.1).

        Raises:
            JIDError: the string is not a valid JID.
        """
        return _parse_cached(text)

    @staticmethod
    def make(local: str | None, domain: str, resource: str | None = None) -> JID:
        """Build a JID from parts, preparing each one."""
        return JID(
            prepare_localpart(local) if local is not None else None,
            prepare_domainpart(domain),
            prepare_resourcepart(resource) if resource is not None else None,
        )

    @property
    def bare(self) -> JID:
        """The JID without its resource."""
        return self if self.resource is None else JID(self.local, self.domain, None)

    @property
    def is_bare(self) -> bool:
        """Whether the JID has no resource."""
        return self.resource is None

    @property
    def is_domain(self) -> bool:
        """Whether the JID is a bare domain."""
        return self.local is None and self.resource is None

    def with_resource(self, resource: str) -> JID:
        """The full JID with ``resource`` (prepared)."""
        return JID(self.local, self.domain, prepare_resourcepart(resource))

    def __str__(self) -> str:
        text = self.domain if self.local is None else f"{self.local}@{self.domain}"
        return text if self.resource is None else f"{text}/{self.resource}"


@functools.lru_cache(maxsize=16384)
def _parse_cached(text: str) -> JID:
    # Parsing and PRECIS are costly and the same JIDs recur on every stanza.
    if len(text) > 3 * 1024 + 2:
        raise JIDError("JID too long")
    local_domain, sep, resource = text.partition("/")
    before, at, after = local_domain.partition("@")
    if at and not before:
        raise JIDError("empty localpart")
    if sep and not resource:
        raise JIDError("empty resourcepart")
    local, domain = (before, after) if at else (None, local_domain)
    return JID.make(local, domain, resource if sep else None)


SPECS = (Spec("RFC 7622", "XMPP address format", "RFC 7622"),)
