"""A connection that does not authenticate and bind in time gets connection-timeout
(RFC 6120 §4.9.3.4); bound sessions are not affected."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import trustme
from rawxmpp import RawClient, running_server

AUTH_TIMEOUT = 5  # the smallest c2s.auth_timeout_s the configuration accepts


async def _times_out(client: RawClient, connected_at: float) -> float:
    await client.expect_stream_error("connection-timeout", timeout=AUTH_TIMEOUT + 2)
    return time.monotonic() - connected_at


@pytest.mark.timeout(30)
async def test_idle_unauthenticated_connections_time_out(tmp_path: Path,
                                                         ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, {"c2s": {"auth_timeout_s": AUTH_TIMEOUT}}) as h:
        started = time.monotonic()
        bound = await h.login("bob")
        silent = await h.connect()  # TCP only, not a byte sent
        opened = await h.connect()
        await opened.open_stream()
        after_tls = await h.connect()
        await after_tls.to_sasl()
        unbound = await h.connect()  # authenticated but never binds
        await unbound.authenticate("alice")
        elapsed = await asyncio.gather(*(_times_out(c, started)
                                         for c in (silent, opened, after_tls, unbound)))
        for seconds in elapsed:
            assert AUTH_TIMEOUT - 0.5 <= seconds <= AUTH_TIMEOUT + 1.5, elapsed
        await bound.ping()  # the bound session outlived the timeout
        await h.assert_still_serving(observer=bound)
