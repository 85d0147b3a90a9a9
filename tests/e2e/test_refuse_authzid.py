"""An authorization identity other than the authenticated account (RFC 6120 §6.4.6,
§6.5.6 invalid-authzid) is refused, with PLAIN (RFC 4616) and with SCRAM (RFC 5802 a=)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from rawxmpp import (
    ACCOUNTS,
    NS_BIND,
    SASL_SUCCESS,
    plain_auth,
    running_server,
    sasl_failure,
)

INVALID_AUTHZID = sasl_failure("invalid-authzid")
FOREIGN = {
    "other-account": "bob@localhost",
    "own-full-jid": "alice@localhost/res",  # §6.3.8: the authzid is a bare JID
    "own-name-other-domain": "alice@example.net",
    "not-a-jid": "a@b@c",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
@pytest.mark.parametrize("authzid", list(FOREIGN))
async def test_foreign_authzid_is_invalid_authzid(tmp_path: Path, ca: trustme.CA,
                                                  authzid: str, mechanism: str) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.to_sasl()
        if mechanism == "PLAIN":  # the right password: only the authzid is wrong
            await client.send(plain_auth("alice", ACCOUNTS["alice"], FOREIGN[authzid]))
            outcome = await client.read_until(INVALID_AUTHZID)
        else:
            outcome = await client.scram("alice", ACCOUNTS["alice"],
                                         authzid=FOREIGN[authzid])
        assert outcome == INVALID_AUTHZID
        assert await client.collect(0.1) == b""  # no <success/> follows
        # Without the authzid the same credentials work on the same stream.
        await client.send(plain_auth("alice", ACCOUNTS["alice"]))
        assert SASL_SUCCESS.fullmatch(await client.read_until(SASL_SUCCESS))
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_own_bare_jid_as_authzid_is_accepted(tmp_path: Path, ca: trustme.CA,
                                                   mechanism: str) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.to_sasl()
        if mechanism == "PLAIN":
            await client.send(plain_auth("alice", ACCOUNTS["alice"], "alice@localhost"))
            outcome = await client.read_until(SASL_SUCCESS)
        else:
            outcome = await client.scram("alice", ACCOUNTS["alice"], authzid="alice@localhost")
        assert outcome.startswith(b"<success"), outcome
        assert f"<bind xmlns='{NS_BIND}'/>".encode() in await client.open_stream()
        assert await client.bind("authz") == "alice@localhost/authz"
