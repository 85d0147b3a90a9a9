"""A browser-side XMPP library (xmpp.js, run with Node) logs in over WebSocket (RFC 7395)
and chats with a TCP slixmpp client: an implementation of RFC 6455/7395 that is not ours.

Node packages come from tests/js/package-lock.json (``make test`` installs them); the test
skips only when Node itself is not installed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import trustme
from rawxmpp import ACCOUNTS, DOMAIN, running_server
from slixmpp_helpers import Client, connect_and_start, disconnect, next_item

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")


@pytest.mark.timeout(30)
@pytest.mark.skipif(NODE is None, reason="node is not installed (needed for xmpp.js)")
async def test_xmppjs_logs_in_over_websocket_and_chats(tmp_path: Path, ca: trustme.CA) -> None:
    assert (JS_DIR / "node_modules" / "@xmpp" / "client").is_dir(), \
        "Node packages missing: run `make test` (npm ci in tests/js)"
    assert NODE is not None
    async with running_server(tmp_path, ca) as h:
        bob = Client(f"bob@{DOMAIN}", ACCOUNTS["bob"], h.deployment.ca_file)
        await connect_and_start(bob, h.starttls_port)
        url = f"ws://127.0.0.1:{h.server.ports['http'][0]}/xmpp-websocket"
        node = await asyncio.create_subprocess_exec(
            NODE, str(JS_DIR / "ws_chat.mjs"), url, DOMAIN, "alice", ACCOUNTS["alice"],
            str(bob.boundjid), cwd=JS_DIR, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            msg = await next_item(bob.messages, "the message from xmpp.js", within=20)
            assert msg["body"] == "hello from xmpp.js"
            # xmpp.js logs in with SASL2 + Bind2 (XEP-0386): its resource is its tag
            # "xmppjs" plus a random suffix from the server.
            assert msg["from"].full.startswith(f"alice@{DOMAIN}/xmppjs/")
            alice_jid = msg["from"].full
            msg.reply("hello from slixmpp").send()
            stdout, stderr = await asyncio.wait_for(node.communicate(), 20)
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
            await disconnect(bob)
        assert node.returncode == 0, stderr.decode()
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        assert result == {"jid": alice_jid, "from": str(bob.boundjid),
                          "body": "hello from slixmpp"}
