"""An unknown first-level element ends the stream with unsupported-stanza-type
(RFC 6120 §4.9.3.24), before and after resource binding."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from rawxmpp import running_server

ELEMENTS = {
    "foreign-namespace": "<foo xmlns='urn:x'/>",
    "unknown-name-in-jabber-client": "<foo/>",
    "stanza-name-in-foreign-namespace": "<message xmlns='urn:x' to='bob@localhost'/>",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("phase", ["after-sasl-before-bind", "established"])
@pytest.mark.parametrize("element", list(ELEMENTS))
async def test_unknown_top_level_element(tmp_path: Path, ca: trustme.CA, element: str,
                                         phase: str) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        if phase == "established":
            client = await h.login("alice")
        else:
            client = await h.connect()
            await client.authenticate("alice")
        await client.send(ELEMENTS[element])
        await client.expect_stream_error("unsupported-stanza-type")
        await h.assert_still_serving(observer=bob)
