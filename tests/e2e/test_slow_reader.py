"""A client that stops reading (slow-read attack, or a phone in a tunnel) neither grows the
server's memory without bound nor loses messages: once its send buffer passes
c2s.send_buffer_high_bytes, messages go to offline storage, and they are handed over, in
order, when it reads again."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import trustme
from rawxmpp import running_server

BODY = "x" * 4000
COUNT = 1500  # ~6 MB: more than the kernel buffers of both ends can hold


@pytest.mark.timeout(60)
async def test_slow_reader_gets_everything_in_order(tmp_path: Path, ca: trustme.CA) -> None:
    overrides = {"c2s": {"send_buffer_high_bytes": 16384,
                         "send_buffer_max_bytes": 64 * 1024 * 1024},
                 # The flood is the point here, not the rate limit (test_limits.py).
                 "limits": {"stanzas_per_second": 1_000_000, "stanza_burst": 1_000_000}}
    async with running_server(tmp_path, ca, overrides) as h:
        bob = await h.login("bob", "phone")
        await bob.send("<presence/>")
        await bob.read_until(b"<presence")
        alice = await h.login("alice", "desk")
        for i in range(COUNT):
            await alice.send(f"<message to='{bob.jid}' id='m{i}' type='chat'>"
                             f"<body>{i} {BODY}</body></message>")
        await alice.ping("all-routed")  # processed in order: every message is routed now
        stored = await h.server.storage.count_offline("bob")
        assert stored > 0, "the backed-up connection still took every message"

        seen: list[int] = []
        # Whole messages only: a body can be complete while its </message> is not yet here.
        pattern = re.compile(rb"<message\b[^>]*>.*?<body>(\d+) x+</body>.*?</message>", re.S)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while len(seen) < COUNT and loop.time() < deadline:
            await bob._receive(1.0)
            end = 0
            for match in pattern.finditer(bob.buffer):
                seen.append(int(match.group(1)))
                end = match.end()
            bob.buffer = bob.buffer[end:]
        assert seen == list(range(COUNT)), (len(seen), seen[:5], seen[-5:])
        assert await h.server.storage.count_offline("bob") == 0
        await bob.ping("still-connected")
