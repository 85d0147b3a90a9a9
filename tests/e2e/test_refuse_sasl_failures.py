"""SASL failures (RFC 6120 §6.4.5, §6.5.10, §13.14): every credential failure is the same
``<not-authorized/>``, unknown accounts are indistinguishable from real ones, a stream gets a
bounded number of retries, and an account under attack is throttled across connections."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, RawClient, plain_auth, running_server, sasl_failure

NOT_AUTHORIZED = sasl_failure("not-authorized")
#: (username, password) pairs that must fail.
BAD = {"wrong-password": ("alice", "not-alices-password"),
       "unknown-account": ("mallory", "any-password-at-all")}


def _fields(server_first: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in server_first.split(","))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512",
                                       "PLAIN"])
@pytest.mark.parametrize("case", list(BAD))
async def test_bad_credentials_get_exactly_not_authorized(
        tmp_path: Path, ca: trustme.CA, case: str, mechanism: str) -> None:
    username, password = BAD[case]
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.to_sasl()
        if mechanism == "PLAIN":
            await client.send(plain_auth(username, password))
            outcome = await client.read_until(NOT_AUTHORIZED)
        else:
            outcome = await client.scram(username, password,
                                         hash_name=mechanism.removeprefix("SCRAM-"))
        assert outcome == NOT_AUTHORIZED
        # One failure does not end the stream: the right password still works on it.
        assert (await client.scram("alice", ACCOUNTS["alice"])).startswith(b"<success")
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("hash_name", ["SHA-1", "SHA-256", "SHA-512"])
async def test_unknown_account_server_first_looks_real(tmp_path: Path, ca: trustme.CA,
                                                       hash_name: str) -> None:
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.to_sasl()
        real = [_fields(await client.scram_server_first("alice", hash_name)) for _ in "12"]
        fake = [_fields(await client.scram_server_first("mallory", hash_name)) for _ in "12"]
        for attempt in (*real, *fake):
            assert list(attempt) == list(real[0])  # same attributes in the same order
            assert attempt["i"] == real[0]["i"] == "4096"
            assert len(base64.b64decode(attempt["s"])) == len(base64.b64decode(real[0]["s"]))
            assert len(attempt["r"]) == len(real[0]["r"])
        assert real[0]["s"] == real[1]["s"]
        assert fake[0]["s"] == fake[1]["s"]  # stable, as a stored salt would be
        assert fake[0]["s"] != real[0]["s"]
        assert fake[0].get("h") == real[0].get("h")
        await h.assert_still_serving()


@pytest.mark.timeout(30)
async def test_max_auth_failures_closes_the_stream(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:  # c2s.max_auth_failures = 3
        client = await h.connect()
        await client.to_sasl()
        for _ in range(2):
            assert await client.scram("alice", "wrong-password") == NOT_AUTHORIZED
        await client.send(plain_auth("mallory", "wrong-again"))
        assert await client.read_until(NOT_AUTHORIZED) == NOT_AUTHORIZED
        await client.expect_stream_error("policy-violation")
        await h.assert_still_serving()


@pytest.mark.timeout(30)
async def test_two_failures_still_allow_a_third_attempt(tmp_path: Path,
                                                        ca: trustme.CA) -> None:
    """RFC 6120 §6.4.5: at least two retries; the limit is not lower than configured."""
    async with running_server(tmp_path, ca) as h:
        client = await h.connect()
        await client.to_sasl()
        for _ in range(2):
            assert await client.scram("alice", "wrong-password") == NOT_AUTHORIZED
        assert (await client.scram("alice", ACCOUNTS["alice"])).startswith(b"<success")


THROTTLED = {"auth": {"max_failures_per_account": 3}}


async def _fail_once(client: RawClient) -> None:
    await client.to_sasl()
    assert await client.scram("alice", "wrong-password") == NOT_AUTHORIZED


@pytest.mark.timeout(30)
async def test_throttled_account_refuses_even_the_right_password(tmp_path: Path,
                                                                 ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, THROTTLED) as h:
        for _ in range(3):  # three failures, each on its own connection
            client = await h.connect()
            await _fail_once(client)
            await client.close()
        for mechanism in ("SCRAM-SHA-256", "PLAIN"):
            client = await h.connect()
            await client.to_sasl()
            if mechanism == "PLAIN":
                await client.send(plain_auth("alice", ACCOUNTS["alice"]))
                outcome = await client.read_until(NOT_AUTHORIZED)
            else:
                outcome = await client.scram("alice", ACCOUNTS["alice"])
            assert outcome == NOT_AUTHORIZED  # exactly what a wrong password gets
        # Other accounts are not affected.
        await h.assert_still_serving(sender="carol", receiver="bob")


@pytest.mark.timeout(30)
async def test_throttling_does_not_change_the_salt(tmp_path: Path, ca: trustme.CA) -> None:
    """A throttled attempt must "fail exactly as a wrong password would" (c2s.py): the
    server-first must not change, or throttling becomes a user-enumeration oracle (an
    unknown account's mock salt never changes)."""
    async with running_server(tmp_path, ca, THROTTLED) as h:
        client = await h.connect()
        await client.to_sasl()
        before = _fields(await client.scram_server_first("alice"))
        await client.close()
        for _ in range(3):
            client = await h.connect()
            await _fail_once(client)
            await client.close()
        client = await h.connect()
        await client.to_sasl()
        during = _fields(await client.scram_server_first("alice"))
        assert during["s"] == before["s"]
