"""Stored SCRAM credentials (RFC 5802 §3): the only form in which Stockade keeps a password."""

from __future__ import annotations

from dataclasses import dataclass

#: SCRAM hash names as they appear in mechanism names, mapped to hashlib names.
SCRAM_HASHES: dict[str, str] = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """Salted keys for one hash: what the server needs to verify SCRAM and PLAIN logins.

    ``stored_key`` = H(HMAC(SaltedPassword, "Client Key")); ``server_key`` =
    HMAC(SaltedPassword, "Server Key"). Neither lets anyone log in by itself.
    """

    hash_name: str  # "SHA-1", "SHA-256" or "SHA-512"
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def __post_init__(self) -> None:
        if self.hash_name not in SCRAM_HASHES:
            raise ValueError(f"unknown SCRAM hash {self.hash_name!r}")
        if self.iterations < 1:
            raise ValueError("iterations must be positive")
