"""The smallest end-to-end check: the server starts and speaks XMPP on its STARTTLS port."""

from __future__ import annotations

import asyncio

from stockade.server.server import Server


async def test_server_greets_with_starttls_required(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["starttls"][0])
    writer.write(b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    data = b""
    while b"</stream:features>" not in data:
        data += await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" in data
    assert b"mechanisms" not in data  # no SASL before TLS
