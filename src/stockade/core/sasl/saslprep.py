"""String preparation for SASL: PRECIS profiles (RFC 8265) in place of SASLprep (RFC 4013).

RFC 8265 §4.2 (OpaqueString) prepares passwords and §3.3 (UsernameCaseMapped) prepares
usernames; RFC 7622 §3.3 uses the same username profile for JID localparts, so an account
name means the same thing to SASL and to the JID layer. The same functions run when a
credential is stored and when a login is verified, so both sides always agree.
"""

from __future__ import annotations

import precis_i18n

_OPAQUE = precis_i18n.get_profile("OpaqueString")
_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")


def prepare_password(s: str) -> str:
    """Prepare a password with the PRECIS OpaqueString profile (RFC 8265 §4.2).

    Args:
        s: the password as typed.

    Returns:
        The prepared password (e.g. non-ASCII spaces mapped to U+0020, NFC applied).

    Raises:
        ValueError: the string is empty or contains a disallowed code point. The message
            names only the PRECIS rule, never the password or the offending character.
    """
    try:
        prepared: str = _OPAQUE.enforce(s)
    except UnicodeError as exc:
        reason = _reason(exc)
    else:
        return prepared
    # SECURITY: precis_i18n's UnicodeEncodeError carries the whole input in `.object` and
    # the offending character in its message. Raising outside the `except` block leaves
    # `__context__` empty, so no error reporter walking the chain can find the password.
    raise ValueError(f"password rejected by PRECIS OpaqueString: {reason}")


def prepare_username(s: str) -> str:
    """Prepare a username with the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3).

    Args:
        s: the username (SASL authcid or JID localpart).

    Returns:
        The prepared, case-mapped username.

    Raises:
        ValueError: the string is empty or contains a disallowed code point (e.g. a space).
    """
    try:
        prepared: str = _USERNAME.enforce(s)
    except UnicodeError as exc:
        raise ValueError(
            f"username rejected by PRECIS UsernameCaseMapped: {_reason(exc)}"
        ) from None
    return prepared


def _reason(exc: UnicodeError) -> str:
    """The PRECIS rule that failed (e.g. "DISALLOWED/controls"), without any input text."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else "invalid"
