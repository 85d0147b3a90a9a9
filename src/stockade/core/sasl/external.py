"""SASL EXTERNAL, RFC 4422 Appendix A, as XMPP uses it for certificates (XEP-0178, RFC 6120 §6.4.2).

The identity is established outside SASL (the TLS client certificate); the message carries
only an optional authorization identity, which the caller checks against the certificate.
"""

from __future__ import annotations

from stockade.core.errors import SASLFailure, SASLFailureCondition

__all__ = ["MAX_EXTERNAL_AUTHZID_BYTES", "parse_external"]

#: RFC 7622 §3.1: a JID is at most 3071 octets, and the authzid is a JID.
MAX_EXTERNAL_AUTHZID_BYTES = 3071

_C = SASLFailureCondition


def parse_external(payload: bytes) -> str | None:
    """Read the authzid from an EXTERNAL message (RFC 4422 App. A.1).

    Args:
        payload: the decoded initial response. RFC 6120 §6.4.2 sends an empty response as
            "=", and stream layers differ on whether they decode it, so both b"" and b"="
            mean "no authzid".

    Returns:
        The authzid, or None when the client asks for the identity derived from its
        certificate (XEP-0178 §3).

    Raises:
        SASLFailure: INCORRECT_ENCODING (not UTF-8) or MALFORMED_REQUEST (NUL, too long).
    """
    if payload in (b"", b"="):
        return None
    if len(payload) > MAX_EXTERNAL_AUTHZID_BYTES:
        raise SASLFailure(_C.MALFORMED_REQUEST, "authzid too long")
    try:
        authzid = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLFailure(_C.INCORRECT_ENCODING, "not UTF-8") from None
    # RFC 4422 App. A.1: authzid is UTF8-char-no-nul.
    if "\x00" in authzid:
        raise SASLFailure(_C.MALFORMED_REQUEST, "NUL in authzid")
    return authzid
