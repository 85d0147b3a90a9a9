"""The Hashed Token SASL mechanisms (HT-*, draft-schmaus-kitten-sasl-ht-08, the revision
XEP-0484 cites) and the stored form of the FAST tokens they authenticate with (XEP-0484).

HT is one round trip. The initiator sends ``authcid NUL HMAC(token, "Initiator" || cb-data)``
(§3.1); if that matches, the responder's success data is ``HMAC(token, "Responder" ||
cb-data)`` (§3.3), which proves to the client that the server knows the token too. H is the
mechanism's hash; cb-data is the channel binding its suffix names (ENDP: tls-server-end-point,
NONE: empty).

SECURITY, how tokens are stored: never the token itself. For the channel-binding types offered
here, cb-data is the same on every connection to this server (ENDP: a hash of our
certificate; NONE: nothing), so a token's initiator proof is a fixed value. The server keeps
SHA-256 of that proof (the *verifier*: logging in needs its preimage, so a stolen database row
logs nobody in) and the responder proof (which authenticates the server, not a client). Types
whose data differs per connection (tls-exporter, tls-unique) could only be checked with the
token itself, so they are deliberately not offered; and an ENDP token stops working when the
server certificate changes (the client then falls back to its password, XEP-0484 §4.1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from stockade.core.errors import SASLFailure, SASLFailureCondition
from stockade.core.sasl.saslprep import prepare_username

__all__ = ["HT_MECHANISMS", "FastToken", "FastTokenUse", "choose_token", "fast_mechanisms",
           "initiator_message", "initiator_proof", "issue_token", "parse_initiator",
           "responder_proof", "verifier"]

#: Mechanism name -> (hashlib name, channel-binding type or None), strongest first.
HT_MECHANISMS: dict[str, tuple[str, str | None]] = {
    "HT-SHA-256-ENDP": ("sha256", "tls-server-end-point"),
    "HT-SHA-256-NONE": ("sha256", None),
}
#: draft §5: "at least 128 bit of entropy"; 256 bits, as 43 URL-safe base64 characters.
TOKEN_BYTES = 32
MAX_AUTHCID_BYTES = 1023  # the localpart limit (RFC 7622 §3.1); the draft asks for 255
SLOTS = ("current", "new")  # XEP-0484 §5.1: at most two live tokens per client

_C = SASLFailureCondition


@dataclass(frozen=True, slots=True)
class FastToken:
    """A FAST token as stored: what checks a login with it, never the token.

    Attributes:
        mechanism: the HT mechanism it was issued for (XEP-0484 §3.4: bound to it).
        verifier: SHA-256 of the expected initiator proof.
        responder: the responder proof, sent as success data.
        expires_at: unix time after which it is refused.
        slot: "new" until first used, then "current" (XEP-0484 §5.1).
        last_count: the highest 'count' a login with it used (replay protection, §3.4).
    """

    mechanism: str
    verifier: bytes
    responder: bytes
    expires_at: float
    slot: str = "new"
    last_count: int = 0

    def __post_init__(self) -> None:
        if self.mechanism not in HT_MECHANISMS:
            raise ValueError(f"unknown HT mechanism {self.mechanism!r}")
        if self.slot not in SLOTS:
            raise ValueError(f"slot must be one of {SLOTS}")
        if self.last_count < 0:
            raise ValueError("last_count must not be negative")


@dataclass(frozen=True, slots=True)
class FastTokenUse:
    """The outcome of a successful token check, for storage to apply atomically.

    ``token`` matched; ``count`` (if given) becomes its last_count; with ``invalidate`` every
    token of the client goes (XEP-0484 §3.6), otherwise tokens of the client that expire
    before this one go and this one becomes "current" (§3.5).
    """

    token: FastToken
    count: int | None
    invalidate: bool


def fast_mechanisms(channel_binding_type: str | None) -> tuple[str, ...]:
    """The HT mechanisms usable on a connection with this channel binding, binding first
    (XEP-0484 §3.1: at least one with channel binding and one without)."""
    return tuple(name for name, (_, cb) in HT_MECHANISMS.items()
                 if cb is None or cb == channel_binding_type)


def _hash(mechanism: str) -> str:
    try:
        return HT_MECHANISMS[mechanism][0]
    except KeyError:
        raise SASLFailure(_C.INVALID_MECHANISM) from None


def initiator_proof(mechanism: str, token: str, cb_data: bytes) -> bytes:
    """draft §3.1: HMAC(token, "Initiator" || cb-data), the token as UTF-8 octets."""
    return hmac.digest(token.encode("utf-8"), b"Initiator" + cb_data, _hash(mechanism))


def responder_proof(mechanism: str, token: str, cb_data: bytes) -> bytes:
    """draft §3.3: HMAC(token, "Responder" || cb-data)."""
    return hmac.digest(token.encode("utf-8"), b"Responder" + cb_data, _hash(mechanism))


def verifier(proof: bytes) -> bytes:
    """What is stored for an initiator proof: its SHA-256."""
    return hashlib.sha256(proof).digest()


def initiator_message(mechanism: str, authcid: str, token: str, cb_data: bytes) -> bytes:
    """The client's initial response (for clients and tests)."""
    return authcid.encode("utf-8") + b"\x00" + initiator_proof(mechanism, token, cb_data)


def parse_initiator(mechanism: str, payload: bytes) -> tuple[str, bytes]:
    """Split ``authcid NUL initiator-hashed-token`` (draft §3.1).

    Returns:
        (the PRECIS-prepared authcid, the proof).

    Raises:
        SASLFailure: MALFORMED_REQUEST (no NUL, empty or overlong authcid, a proof that is
            not one digest long), INCORRECT_ENCODING (authcid not UTF-8). The proof may hold
            NUL octets, so only the first NUL separates.
    """
    authcid_raw, sep, proof = payload.partition(b"\x00")
    if not sep or not authcid_raw or len(authcid_raw) > MAX_AUTHCID_BYTES:
        raise SASLFailure(_C.MALFORMED_REQUEST, "expected authcid NUL hashed-token")
    if len(proof) != hashlib.new(_hash(mechanism)).digest_size:
        raise SASLFailure(_C.MALFORMED_REQUEST, "hashed token has the wrong length")
    try:
        authcid = authcid_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLFailure(_C.INCORRECT_ENCODING) from None
    try:
        return prepare_username(authcid), proof
    except ValueError:
        raise SASLFailure(_C.MALFORMED_REQUEST, "invalid username") from None


def issue_token(mechanism: str, cb_data: bytes, *, now: float,
                lifetime_s: float) -> tuple[str, FastToken]:
    """A fresh random token for ``mechanism`` and its stored form (slot "new").

    ``cb_data`` is this connection's data for the mechanism's channel-binding type (empty
    for NONE); it is the same on the connections the token will be used on (module doc).
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    record = FastToken(mechanism, verifier(initiator_proof(mechanism, token, cb_data)),
                       responder_proof(mechanism, token, cb_data), now + lifetime_s)
    return token, record


def choose_token(tokens: Sequence[FastToken], *, mechanism: str, proof: bytes,
                 count: int | None, invalidate: bool, now: float) -> FastTokenUse | None:
    """The stored token a login proves, or None. Checks what XEP-0484 §5.1 lists: the hash,
    the expiry, the mechanism and the replay counter.

    SECURITY: every stored verifier is compared, in constant time, whatever matched first,
    so timing shows neither which slot matched nor how many tokens the client has.
    """
    candidate = verifier(proof)
    found: FastToken | None = None
    for token in tokens:
        if (hmac.compare_digest(token.verifier, candidate) and token.mechanism == mechanism
                and token.expires_at > now
                # §3.4: a count "less than or equal to a count that has already been
                # processed for this token" is a replay.
                and (count is None or count > token.last_count)):
            found = token
    return None if found is None else FastTokenUse(found, count, invalidate)
