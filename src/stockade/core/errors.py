"""Error conditions (RFC 6120 §4.9.3, §6.5, §8.3) and Stockade's exception hierarchy.

Enum values are the exact element names on the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stockade.core.xml import Element

import enum

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class ErrorType(enum.Enum):
    """RFC 6120 §8.3.2: the type attribute of a stanza error."""

    AUTH = "auth"
    CANCEL = "cancel"
    CONTINUE = "continue"
    MODIFY = "modify"
    WAIT = "wait"


class StreamErrorCondition(enum.Enum):
    """RFC 6120 §4.9.3; value = element name in urn:ietf:params:xml:ns:xmpp-streams."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"


class SASLFailureCondition(enum.Enum):
    """RFC 6120 §6.5; value = element name in urn:ietf:params:xml:ns:xmpp-sasl."""

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"


class StanzaErrorCondition(enum.Enum):
    """RFC 6120 §8.3.3; value = element name in urn:ietf:params:xml:ns:xmpp-stanzas."""

    BAD_REQUEST = "bad-request"
    CONFLICT = "conflict"
    FEATURE_NOT_IMPLEMENTED = "feature-not-implemented"
    FORBIDDEN = "forbidden"
    GONE = "gone"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    ITEM_NOT_FOUND = "item-not-found"
    JID_MALFORMED = "jid-malformed"
    NOT_ACCEPTABLE = "not-acceptable"
    NOT_ALLOWED = "not-allowed"
    NOT_AUTHORIZED = "not-authorized"
    POLICY_VIOLATION = "policy-violation"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    REDIRECT = "redirect"
    REGISTRATION_REQUIRED = "registration-required"
    REMOTE_SERVER_NOT_FOUND = "remote-server-not-found"
    REMOTE_SERVER_TIMEOUT = "remote-server-timeout"
    RESOURCE_CONSTRAINT = "resource-constraint"
    SERVICE_UNAVAILABLE = "service-unavailable"
    SUBSCRIPTION_REQUIRED = "subscription-required"
    UNDEFINED_CONDITION = "undefined-condition"
    UNEXPECTED_REQUEST = "unexpected-request"

    @property
    def default_type(self) -> ErrorType:
        """The error type RFC 6120 §8.3.3 gives each condition."""
        return _DEFAULT_TYPES[self]


_C = StanzaErrorCondition
_DEFAULT_TYPES: dict[StanzaErrorCondition, ErrorType] = {
    _C.BAD_REQUEST: ErrorType.MODIFY,
    _C.CONFLICT: ErrorType.CANCEL,
    _C.FEATURE_NOT_IMPLEMENTED: ErrorType.CANCEL,
    _C.FORBIDDEN: ErrorType.AUTH,
    _C.GONE: ErrorType.CANCEL,
    _C.INTERNAL_SERVER_ERROR: ErrorType.CANCEL,
    _C.ITEM_NOT_FOUND: ErrorType.CANCEL,
    _C.JID_MALFORMED: ErrorType.MODIFY,
    _C.NOT_ACCEPTABLE: ErrorType.MODIFY,
    _C.NOT_ALLOWED: ErrorType.CANCEL,
    _C.NOT_AUTHORIZED: ErrorType.AUTH,
    _C.POLICY_VIOLATION: ErrorType.MODIFY,
    _C.RECIPIENT_UNAVAILABLE: ErrorType.WAIT,
    _C.REDIRECT: ErrorType.MODIFY,
    _C.REGISTRATION_REQUIRED: ErrorType.AUTH,
    _C.REMOTE_SERVER_NOT_FOUND: ErrorType.CANCEL,
    _C.REMOTE_SERVER_TIMEOUT: ErrorType.WAIT,
    _C.RESOURCE_CONSTRAINT: ErrorType.WAIT,
    _C.SERVICE_UNAVAILABLE: ErrorType.CANCEL,
    _C.SUBSCRIPTION_REQUIRED: ErrorType.AUTH,
    _C.UNDEFINED_CONDITION: ErrorType.CANCEL,
    _C.UNEXPECTED_REQUEST: ErrorType.WAIT,
}


class StockadeError(Exception):
    """Base of every exception Stockade raises on purpose."""


class ProtocolError(StockadeError):
    """A protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """The caller misused an API (our bug, not the peer's)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the stream ends with ``condition``."""

    def __init__(self, condition: StreamErrorCondition, text: str | None = None) -> None:
        super().__init__(f"{condition.value}: {text}" if text else condition.value)
        self.condition = condition
        self.text = text


class JIDError(StockadeError, ValueError):
    """A string is not a valid JID (RFC 7622); maps to ``jid-malformed``."""


class StanzaError(StockadeError):
    """Raised by handlers; the router turns it into an error reply (RFC 6120 §8.3)."""

    def __init__(
        self,
        condition: StanzaErrorCondition,
        text: str | None = None,
        type_: ErrorType | None = None,
        app: Element | None = None,
    ) -> None:
        """``app``: an application-specific condition element that follows the defined one
        (RFC 6120 §8.3.2), e.g. XEP-0060's precondition-not-met."""
        super().__init__(f"{condition.value}: {text}" if text else condition.value)
        self.condition = condition
        self.text = text
        self.type = type_ or condition.default_type
        self.app = app


class SASLFailure(StockadeError):
    """A SASL exchange failed; the stream answers ``<failure/>`` with ``condition``."""

    def __init__(self, condition: SASLFailureCondition, text: str | None = None) -> None:
        super().__init__(f"{condition.value}: {text}" if text else condition.value)
        self.condition = condition
        self.text = text


class ConfigError(StockadeError):
    """The configuration is invalid; the message names the key and the problem."""
