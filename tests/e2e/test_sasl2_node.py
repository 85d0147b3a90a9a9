"""A third-party SASL2/FAST client: xmpp.js (Node) logs in with SASL2 + Bind 2 over STARTTLS,
gets a FAST token, then logs in again with the token alone (its HT-SHA-256-NONE runs on
WebCrypto: an HMAC implementation that is not ours).

Node packages come from tests/js/package-lock.json (``make test`` installs them); the test
skips only when Node itself is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, DOMAIN, body_of, running_server

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")


@pytest.mark.timeout(30)
@pytest.mark.skipif(NODE is None, reason="node is not installed (needed for xmpp.js)")
async def test_xmppjs_logs_in_with_sasl2_then_with_a_fast_token(tmp_path: Path,
                                                                 ca: trustme.CA) -> None:
    assert (JS_DIR / "node_modules" / "@xmpp" / "client").is_dir(), \
        "Node packages missing: run `make test` (npm ci in tests/js)"
    assert NODE is not None
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        node = await asyncio.create_subprocess_exec(
            NODE, str(JS_DIR / "sasl2_fast.mjs"), f"xmpp://127.0.0.1:{h.starttls_port}",
            DOMAIN, "alice", ACCOUNTS["alice"], str(bob.jid), cwd=JS_DIR,
            env={**os.environ, "NODE_EXTRA_CA_CERTS": str(h.deployment.ca_file)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(node.communicate(), 25)
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
        assert node.returncode == 0, stderr.decode()
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        # Bind 2 resources: the client's tag, then the server's part (XEP-0386 §3.2.1).
        assert result["first"].startswith(f"alice@{DOMAIN}/node/"), result
        assert result["second"].startswith(f"alice@{DOMAIN}/node/"), result
        assert result["first"] != result["second"]
        assert result["mechanism"] == "HT-SHA-256-NONE"
        assert result["rotated"] is True  # XEP-0484 §3.5: a fresh token on use
        message = await bob.read_message()
        assert body_of(message) == "fast hello"
        assert message.get("from") == result["second"]
        (stored,) = [t for _, t in await h.server.storage.list_fast_tokens("alice")
                     if t.slot == "new"]
        assert stored.mechanism == "HT-SHA-256-NONE"
