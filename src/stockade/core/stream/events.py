"""Events a stream state machine hands to its I/O shell: what happened, never what to do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stockade.core.errors import StreamErrorCondition
from stockade.core.stanza import Stanza
from stockade.core.xml import Element

if TYPE_CHECKING:
    from stockade.core.sasl.ht import FastToken, FastTokenUse
    from stockade.core.stream.sm import SMState


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened (or restarted) the stream, addressed to ``to``."""

    to: str


@dataclass(frozen=True, slots=True)
class StartTLSRequested:
    """``<proceed/>`` is queued: flush it, then start the TLS handshake.

    Any bytes received after ``<starttls/>`` have already been discarded.
    """


@dataclass(frozen=True, slots=True)
class CredentialsRequested:
    """The SASL mechanism needs the stored credential of ``username`` for ``hash_name``."""

    username: str
    hash_name: str


@dataclass(frozen=True, slots=True)
class ExternalAuthRequested:
    """SASL EXTERNAL: decide which account the TLS client certificate logs into."""

    authzid: str | None


@dataclass(frozen=True, slots=True)
class AuthSucceeded:
    """SASL success was sent for ``username``."""

    username: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """A SASL attempt failed (``username`` is None when it was never learnt).

    ``credentials_tested`` is True when a password or proof was actually checked (the
    failures that login throttling counts), False for malformed or unsupported requests.
    """

    username: str | None
    mechanism: str
    credentials_tested: bool = True


@dataclass(frozen=True, slots=True)
class BindRequested:
    """Resource binding (RFC 6120 §7): ``resource`` is the client's wish, or None.

    From XEP-0386 (Bind 2) ``client_id`` is the SASL2 user-agent id, if the client sent one:
    the session is tagged with it, and earlier sessions of the same client end (§3.2).
    """

    resource: str | None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Bind2FeaturesRequested:
    """XEP-0386: enable these module session features (policy.bind2_features) for the session
    just bound; answer with ``provide_bind2_features`` and what goes into ``<bound/>``."""

    elements: tuple[Element, ...]


@dataclass(frozen=True, slots=True)
class FastAuthRequested:
    """XEP-0484: a login with a FAST token of (``username``, ``client_id``). Run ``choose``
    over the client's stored tokens (atomically with applying its answer, see
    ``FastTokenStorage.use_fast_token``), then call ``provide_fast_auth``."""

    username: str
    client_id: str
    choose: Callable[[Sequence[FastToken]], FastTokenUse | None]


@dataclass(frozen=True, slots=True)
class FastTokenIssued:
    """XEP-0484: store this new token (its hashed form) for (``username``, ``client_id``),
    then call ``provide_fast_stored``; the client gets it once it is stored."""

    username: str
    client_id: str
    token: FastToken


@dataclass(frozen=True, slots=True)
class StanzaReceived:
    """A stanza from a bound client, its ``from`` already stamped or validated."""

    stanza: Stanza


@dataclass(frozen=True, slots=True)
class ReplyReady:
    """The core answered a stanza itself (e.g. a stanza error): send it, in order."""

    element: Element


@dataclass(frozen=True, slots=True)
class NonzaReceived:
    """A top-level element a module handles (policy.nonzas), from a bound client."""

    element: Element


@dataclass(frozen=True, slots=True)
class PreauthIQReceived:
    """An IQ allowed over TLS before authentication (policy.preauth_iqs, XEP-0077)."""

    element: Element


@dataclass(frozen=True, slots=True)
class SMEnabled:
    """XEP-0198 is on for this session; ``state`` outlives the connection if resumable."""

    state: SMState


@dataclass(frozen=True, slots=True)
class ResumeRequested:
    """XEP-0198 §5: the client wants session ``previd`` back; answer with provide_resume."""

    previd: str
    h: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The peer closed its stream; our closing tag is queued."""


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """A stream error is queued (followed by the closing tag): flush and close."""

    condition: StreamErrorCondition
    text: str | None


Event = (StreamOpened | StartTLSRequested | CredentialsRequested | ExternalAuthRequested
         | AuthSucceeded | AuthFailed | BindRequested | Bind2FeaturesRequested
         | FastAuthRequested | FastTokenIssued | StanzaReceived | ReplyReady
         | NonzaReceived | PreauthIQReceived | SMEnabled | ResumeRequested | StreamClosed
         | StreamFailed)
