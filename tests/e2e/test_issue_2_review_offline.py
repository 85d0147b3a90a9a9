"""Regressions from the issue-2 review: offline messages (XEP-0160) at login.

The hand-over of stored messages stops at a backed-up connection and deletes only what it
wrote, so a slow client gets every stored message exactly once; and a message sent while
the user's initial presence is being processed does not overtake the stored ones.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import pytest
import trustme
from rawxmpp import TIMEOUT, Gate, body_of, eventually, running_server

N_STORED = 200
BODY = "x" * 60_000  # 200 x 60 kB = 12 MB: far more than the kernel buffers of both ends
_MESSAGE_ID = re.compile(rb"<message\b[^>]*\bid='m(\d+)'")



@pytest.mark.timeout(30)
async def test_offline_hand_over_to_a_slow_client_loses_nothing(tmp_path: Path,
                                                                ca: trustme.CA) -> None:
    """Defect r3: the hand-over wrote a whole batch of stored messages whatever the client
    read, and deleted the whole batch; past ``send_buffer_max_bytes`` the connection was
    cut, so stored messages that were never written were deleted (lost). The hand-over must
    stop at a backed-up connection with the rest still stored, and once the client reads,
    every stored message arrives exactly once and storage ends empty."""
    overrides = {"c2s": {"send_buffer_high_bytes": 16384, "send_buffer_max_bytes": 1 << 20}}
    async with running_server(tmp_path, ca, overrides) as h:
        storage = h.server.storage
        alice = await h.login("alice", "desk")
        for i in range(N_STORED):
            await alice.send(f"<message to='bob@localhost' type='chat' id='m{i}'>"
                             f"<body>{i} {BODY}</body></message>")
        await alice.ping("all-stored")
        assert await storage.count_offline("bob") == N_STORED

        bob = await h.login("bob", "phone")
        await bob.send("<presence/>")  # the hand-over starts; bob does not read for now
        session = h.server.hosts["localhost"].resources("bob")[0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while session.draining or await storage.count_offline("bob") == N_STORED:
            assert loop.time() < deadline, "the first hand-over did not end"
            await asyncio.sleep(0.01)
        left = await storage.count_offline("bob")
        assert 0 < left < N_STORED, f"{left} of {N_STORED} still stored at the backed-up client"
        assert h.server.hosts["localhost"].resources("bob") == [session]  # not cut off

        seen: list[int] = []
        deadline = loop.time() + 20
        while len(seen) < N_STORED and not bob.eof and loop.time() < deadline:
            await bob._receive(1.0)
            last = bob.buffer.rfind(b"</message>")
            if last >= 0:
                complete, bob.buffer = bob.buffer[:last + 10], bob.buffer[last + 10:]
                seen.extend(int(m.group(1)) for m in _MESSAGE_ID.finditer(complete))
        counts = Counter(seen)
        missing = [i for i in range(N_STORED) if counts[i] == 0]
        repeated = sorted(i for i, n in counts.items() if n > 1)
        assert not missing, f"{len(seen)} received, eof={bob.eof}, missing {missing[:10]}"
        assert not repeated, f"received more than once: {repeated[:10]}"
        assert seen == list(range(N_STORED)), "stored messages out of order"
        await eventually(lambda: not session.draining, "the last hand-over to end")
        assert await storage.count_offline("bob") == 0
        await bob.ping("still-connected")


@pytest.mark.timeout(30)
async def test_live_message_during_initial_presence_queues_behind_stored(
        tmp_path: Path, ca: trustme.CA) -> None:
    """Defect r17: a message sent to a user while its initial presence was being processed
    (before the stored messages were handed over) was delivered live, overtaking the stored
    ones. The user must get the stored message first, then the live one."""
    async with running_server(tmp_path, ca) as h:
        alice = await h.login("alice", "desk")
        await alice.send("<message to='bob@localhost' type='chat' id='m1'>"
                         "<body>first</body></message>")
        await alice.ping("stored")
        assert await h.server.storage.count_offline("bob") == 1
        # Bob's initial presence waits for his roster (a busy storage thread) ...
        gate = Gate(h.server.storage, "get_roster", lambda username: username == "bob")
        bob = await h.login("bob", "phone")
        try:
            await bob.send("<presence/>")
            await asyncio.wait_for(gate.entered.wait(), TIMEOUT)
            # ... while alice's next message arrives.
            await alice.send("<message to='bob@localhost' type='chat' id='m2'>"
                             "<body>second</body></message>")
            await alice.ping("routed")
        finally:
            gate.release.set()
        first = await bob.read_message()
        second = await bob.read_message()
        assert [body_of(first), body_of(second)] == ["first", "second"]
        assert [first.get("id"), second.get("id")] == ["m1", "m2"]
        rest = await bob.collect(0.3)
        assert b"<message" not in rest, rest  # each exactly once
