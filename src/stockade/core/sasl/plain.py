"""SASL PLAIN, RFC 4616, verified against stored SCRAM keys (no password is ever stored).

RFC 6120 §13.8.3 allows PLAIN only over TLS; offering it at all is the stream layer's
policy. Here: strict parsing of the message and a constant-time check of the password.
"""

from __future__ import annotations

import hmac

from stockade.core.errors import SASLFailure, SASLFailureCondition
from stockade.core.sasl.credentials import ScramCredential
from stockade.core.sasl.saslprep import prepare_username
from stockade.core.sasl.scram import derive_credential

__all__ = ["MAX_PLAIN_FIELD_BYTES", "parse_plain", "verify_plain"]

#: Per-field bound. RFC 4616 §2 asks servers to accept at least 255 octets per field; 1023
#: matches the JID localpart limit (RFC 7622 §3.1).
MAX_PLAIN_FIELD_BYTES = 1023

_C = SASLFailureCondition


def parse_plain(payload: bytes) -> tuple[str, str, str]:
    """Split a PLAIN message ``[authzid] NUL authcid NUL passwd`` (RFC 4616 §2).

    Args:
        payload: the decoded ``<auth/>`` initial response.

    Returns:
        (authzid, authcid, password): authzid is "" when absent; authcid is
        PRECIS-prepared (UsernameCaseMapped), as ``ScramServer.start()`` returns it;
        password is as sent, and ``verify_plain`` prepares it.

    Raises:
        SASLFailure: MALFORMED_REQUEST (not exactly two NULs, empty authcid or password, a
            field over 1023 bytes, an authcid PRECIS rejects) or INCORRECT_ENCODING (not
            UTF-8). The message never contains any part of the payload.
    """
    fields = payload.split(b"\x00")
    if len(fields) != 3:
        raise SASLFailure(_C.MALFORMED_REQUEST, "expected authzid NUL authcid NUL passwd")
    if not fields[1] or not fields[2]:
        raise SASLFailure(_C.MALFORMED_REQUEST, "empty authcid or password")
    if any(len(field) > MAX_PLAIN_FIELD_BYTES for field in fields):
        raise SASLFailure(_C.MALFORMED_REQUEST, "field too long")
    authzid, authcid, password = (_utf8(field) for field in fields)
    if authzid is None or authcid is None or password is None:
        # RFC 4616 §2: "The message ... is encoded in UTF-8"
        raise SASLFailure(_C.INCORRECT_ENCODING, "not UTF-8")
    try:
        authcid = prepare_username(authcid)
    except ValueError:
        raise SASLFailure(_C.MALFORMED_REQUEST, "invalid username") from None
    return authzid, authcid, password


def verify_plain(password: str, credential: ScramCredential) -> None:
    """Check a PLAIN password against a SCRAM credential (RFC 5802 §3 key derivation).

    Recomputes StoredKey = H(HMAC(Hi(password, salt, i), "Client Key")) with the
    credential's own hash, salt and iterations, so PLAIN and SCRAM share one stored form.

    Raises:
        SASLFailure: NOT_AUTHORIZED if the password does not match or PRECIS rejects it
            (such a password cannot have been stored). The password is never in the message.
    """
    try:
        candidate = derive_credential(
            password, credential.hash_name, credential.iterations, credential.salt
        )
    except ValueError:
        raise SASLFailure(_C.NOT_AUTHORIZED) from None
    # SECURITY: constant-time compare, so timing reveals nothing about the stored key.
    if not hmac.compare_digest(candidate.stored_key, credential.stored_key):
        raise SASLFailure(_C.NOT_AUTHORIZED)


def _utf8(field: bytes) -> str | None:
    """Strict UTF-8 decoding, or None.

    SECURITY: a UnicodeDecodeError holds the bytes it failed on (here: maybe the password)
    in ``.object``; returning None instead of re-raising keeps it out of exception chains.
    """
    try:
        return field.decode("utf-8")
    except UnicodeDecodeError:
        return None
