"""SASL before TLS is refused (RFC 6120 §5.3.1, §6.4.1, §13.8): not even offered, never run."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trustme
from rawxmpp import (
    ACCOUNTS,
    NS_SASL,
    NS_TLS,
    plain_auth,
    running_server,
    sasl_failure,
)

SCRAM_FIRST = base64.b64encode(b"n,,n=alice,r=0123456789abcdefghijklmn").decode()
ATTEMPTS = {
    # Real credentials: if the server ran the mechanism, alice would be logged in.
    "PLAIN": plain_auth("alice", ACCOUNTS["alice"]),
    "SCRAM-SHA-256": (f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{SCRAM_FIRST}"
                      "</auth>").encode(),
}


@pytest.mark.timeout(30)
async def test_pre_tls_features_offer_starttls_only(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        features = await client.open_stream()
        body = features[features.index(b"<stream:features>"):]
        assert body == (f"<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls>"
                        "</stream:features>").encode()
        assert b"<mechanisms" not in features


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", list(ATTEMPTS))
async def test_auth_before_starttls_is_refused(tmp_path: Path, ca: trustme.CA,
                                                mechanism: str) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        features = await client.open_stream()
        assert b"<mechanisms" not in features
        await client.send(ATTEMPTS[mechanism])
        answer = await client.read_until(sasl_failure("encryption-required"))
        assert answer == sasl_failure("encryption-required")
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()
