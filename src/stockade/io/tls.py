"""TLS contexts with Stockade's policy: TLS 1.2+ only, ECDHE with AEAD ciphers only."""

from __future__ import annotations

import ssl
from pathlib import Path

#: TLS 1.2 suites: forward-secret key exchange (ECDHE) and AEAD ciphers only, named one by
#: one so no OpenSSL alias can widen the set. TLS 1.3 suites are all AEAD.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
)


def server_context(cert: Path, key: Path, *, min_version: str = "1.2",
                   client_cas: list[Path] | None = None,
                   pinned_client_certs: list[bytes] | None = None) -> ssl.SSLContext:
    """A server-side context.

    Args:
        cert: PEM certificate chain.
        key: PEM private key.
        min_version: "1.2" or "1.3"; nothing older is ever allowed.
        client_cas: CA bundles whose client certificates are accepted (SASL EXTERNAL).
        pinned_client_certs: DER certificates registered to accounts, trusted as-is.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if min_version == "1.3"
                           else ssl.TLSVersion.TLSv1_2)
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    # SECURITY: no 3DES/RC4/CBC/static RSA — the weak suites the seed documents warn of.
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                    | ssl.OP_SINGLE_ECDH_USE | ssl.OP_NO_RENEGOTIATION)
    ctx.load_cert_chain(cert, key)
    _configure_client_auth(ctx, client_cas or [], pinned_client_certs or [])
    return ctx


def _configure_client_auth(ctx: ssl.SSLContext, cas: list[Path], pinned: list[bytes]) -> None:
    if not cas and not pinned:
        ctx.verify_mode = ssl.CERT_NONE
        return
    ctx.verify_mode = ssl.CERT_OPTIONAL  # clients without certificates still use SCRAM
    for ca in cas:
        ctx.load_verify_locations(cafile=str(ca))
    for der in pinned:
        ctx.load_verify_locations(cadata=der)
    if pinned:
        # A registered self-signed or end-entity certificate is its own trust anchor.
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A verifying client context with the same policy (used by tools and tests)."""
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    return ctx
