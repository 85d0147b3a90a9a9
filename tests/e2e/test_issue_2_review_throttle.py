"""Regression from the issue-2 review: the per-account login throttle counts attempts in
flight (RFC 6120 §13.14), so parallel guesses cannot all slip past it before any of them
has failed."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, RawClient, running_server, sasl_failure

from stockade.core.sasl.scram import ScramClient

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NOT_AUTHORIZED = sasl_failure("not-authorized")
CHALLENGE = re.compile(rb"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>([^<]*)</challenge>")
OUTCOME = re.compile(rb"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'(?:/>|>[^<]*</success>)"
                     rb"|<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>.*?</failure>", re.S)
GUESSES = 40


async def _client_first(client: RawClient, password: str) -> tuple[ScramClient, bytes]:
    """Start SCRAM-SHA-256 as alice: the server looks her credential up and challenges."""
    scram = ScramClient("SHA-256", "alice", password)
    first = base64.b64encode(scram.first()).decode()
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")
    data = await client.read_until(CHALLENGE)
    match = CHALLENGE.search(data)
    assert match is not None, data
    return scram, base64.b64decode(match.group(1))


async def _client_final(client: RawClient, scram: ScramClient, server_first: bytes) -> bytes:
    final = base64.b64encode(scram.final(server_first)).decode()
    await client.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
    data = await client.read_until(OUTCOME)
    match = OUTCOME.search(data)
    assert match is not None, data
    return match.group(0)


@pytest.mark.timeout(30)
async def test_parallel_guesses_are_throttled_while_in_flight(tmp_path: Path,
                                                              ca: trustme.CA) -> None:
    """Defect r16: failures were counted only when an attempt failed, so 40 wrong-password
    attempts in flight at once all got past ``auth.max_failures_per_account = 5``, and so
    did the right password among them. Attempts count from their credential lookup: with 40
    guesses in flight, the right password in parallel must fail exactly like a wrong one."""
    overrides = {"auth": {"max_failures_per_account": 5,
                          "max_failures_per_ip": 10_000}}  # the account limit is under test
    async with running_server(tmp_path, ca, overrides) as h:
        wrong = [await h.connect() for _ in range(GUESSES)]
        right = await h.connect()
        await asyncio.gather(*(c.to_sasl() for c in (*wrong, right)))
        # Every guess is in flight (credential looked up, challenged) before any answers...
        firsts = await asyncio.gather(*(_client_first(c, f"guess-{i}")
                                        for i, c in enumerate(wrong)))
        right_first = await _client_first(right, ACCOUNTS["alice"])
        # ... then all of them answer at once.
        outcomes = await asyncio.gather(
            *(_client_final(c, *first) for c, first in zip(wrong, firsts, strict=True)),
            _client_final(right, *right_first))
        assert outcomes[:-1] == [NOT_AUTHORIZED] * GUESSES, outcomes[:-1]
        assert outcomes[-1] == NOT_AUTHORIZED, "the right password got through the throttle"


@pytest.mark.timeout(30)
async def test_many_parallel_good_logins_from_one_ip_are_not_throttled(
        tmp_path: Path, ca: trustme.CA) -> None:
    """The throttle counts failures, not attempts: 30 users behind one address (a NAT, a
    bench) logging in at once all get in with the default per-IP limit of 10."""
    async with running_server(tmp_path, ca) as h:
        clients = await asyncio.gather(*(h.login(name, f"r{i}")
                                         for i in range(10)
                                         for name in ("alice", "bob", "carol")))
        assert len({c.jid for c in clients}) == 30
