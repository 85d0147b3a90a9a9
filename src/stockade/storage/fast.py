"""FAST tokens, XEP-0484: per account and client (the SASL2 user-agent id), at most two
("current" and "new", §5.1), kept only in their hashed form (``core.sasl.ht.FastToken``).

Tokens go when their account is deleted and when its password changes (the credentials are
replaced): a token must not outlive the password it was obtained with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from stockade.core.sasl.ht import FastToken, FastTokenUse

#: Longest client id (SASL2 user-agent id) stored; the stream core refuses longer ones.
MAX_CLIENT_ID_CHARS = 128

#: Decides, from a client's stored tokens, which one a login proved (or None).
TokenChooser = Callable[[Sequence[FastToken]], FastTokenUse | None]


class FastTokenStorage(Protocol):
    """Stored FAST tokens."""

    async def store_fast_token(self, username: str, client_id: str, token: FastToken) -> None:
        """Put a newly issued token in the client's "new" slot, replacing a token there that
        was never used (XEP-0484 §3.5: "SHOULD invalidate any tokens previously generated
        that have not been used"). The "current" token stays valid until this one is used.

        Raises:
            AccountNotFound: no such account.
            ValueError: ``token.slot`` is not "new" or the client id is too long.
        """

    async def use_fast_token(self, username: str, client_id: str,
                             choose: TokenChooser) -> FastTokenUse | None:
        """In one transaction: read the client's tokens, let ``choose`` decide, apply it.

        Applying a use: with ``invalidate`` all the client's tokens are deleted; otherwise
        the client's tokens expiring before the used one are deleted, the used one becomes
        "current" and its last_count becomes ``count`` (if given). One transaction, so two
        logins replaying one count cannot both pass. Returns what ``choose`` returned.
        """

    async def list_fast_tokens(self, username: str) -> list[tuple[str, FastToken]]:
        """Every (client id, token) of the account, by client id then slot."""

    async def revoke_fast_tokens(self, username: str, client_id: str | None = None) -> int:
        """Delete the account's tokens (of one client, or all); return how many went."""
