"""Strophe.js, the XMPP library Converse.js is built on (run with Node), logs in over
WebSocket (RFC 7395) with SCRAM and RFC 6120 resource binding, and chats with a TCP slixmpp
client: the login path of Converse.js and other Strophe-based browser clients.

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
from rawxmpp import ACCOUNTS, DOMAIN, eventually, running_server
from slixmpp_helpers import Client, connect_and_start, disconnect, next_item

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")


@pytest.mark.timeout(30)
@pytest.mark.skipif(NODE is None, reason="node is not installed (needed for Strophe.js)")
async def test_strophejs_logs_in_over_websocket_and_chats(tmp_path: Path,
                                                          ca: trustme.CA) -> None:
    assert (JS_DIR / "node_modules" / "strophe.js").is_dir(), \
        "Node packages missing: run `make test` (npm ci in tests/js)"
    assert NODE is not None
    async with running_server(tmp_path, ca) as h:
        bob = Client(f"bob@{DOMAIN}", ACCOUNTS["bob"], h.deployment.ca_file)
        await connect_and_start(bob, h.starttls_port)
        url = f"ws://127.0.0.1:{h.server.ports['http'][0]}/xmpp-websocket"
        # Strophe asks for its resource in an RFC 6120 <bind/>; nothing else holds it, so
        # the server grants it as asked.
        alice_jid = f"alice@{DOMAIN}/strophe"
        node = await asyncio.create_subprocess_exec(
            NODE, str(JS_DIR / "strophe_chat.mjs"), url, alice_jid, ACCOUNTS["alice"],
            str(bob.boundjid), cwd=JS_DIR, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            msg = await next_item(bob.messages, "the message from Strophe.js", within=20)
            assert msg["body"] == "hello from strophe.js"
            assert msg["from"].full == alice_jid
            msg.reply("hello from slixmpp").send()
            stdout, stderr = await asyncio.wait_for(node.communicate(), 20)
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
            await disconnect(bob)
        assert node.returncode == 0, stderr.decode()
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        # Strophe prefers its strongest SCRAM; -PLUS needs TLS, which ws:// has not.
        assert result == {"jid": alice_jid, "mechanism": "SCRAM-SHA-512",
                          "from": str(bob.boundjid), "body": "hello from slixmpp"}
        # Strophe's <close/> (and its socket closing right after) ends the session.
        await eventually(lambda: not h.server.host_for(DOMAIN).resources("alice"),
                         "alice's WebSocket session ended")
