"""Replay tests/transcripts/*.xmpp (RFC example conversations) against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme
from rawxmpp import RawClient, running_server

from stockade.core.xml import Element, XMLStreamParser, serialize

TRANSCRIPTS = sorted((Path(__file__).parents[1] / "transcripts").glob("*.xmpp"))
HEADER = (b"<stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")


class Reader:
    """Turns a client's received bytes into top-level elements."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.parser = XMLStreamParser()
        self.parser.feed(HEADER)
        self.ready: list[Element] = []

    async def next(self, timeout: float = 5.0) -> Element:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready:
            if self.client.buffer:
                data, self.client.buffer = self.client.buffer, b""
                self.ready.extend(e for e in self.parser.feed(data) if isinstance(e, Element))
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self.client._receive(remaining):
                raise AssertionError("no stanza arrived")
        return self.ready.pop(0)


def parse_expected(text: str) -> Element:
    parser = XMLStreamParser()
    parser.feed(HEADER)
    (el,) = [e for e in parser.feed(text.encode()) if isinstance(e, Element)]
    return el


def matches(expected: Element, actual: Element) -> bool:
    if expected.tag != actual.tag or set(expected.attrs) != set(actual.attrs):
        return False
    if any(v != "*" and actual.attrs[k] != v for k, v in expected.attrs.items()):
        return False
    exp_children, act_children = list(expected.elements()), list(actual.elements())
    return (expected.text.strip() == actual.text.strip()
            and len(exp_children) == len(act_children)
            and all(matches(e, a) for e, a in zip(exp_children, act_children, strict=True)))


def steps(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        who, op, xml = line[0], line[1], line[2:].strip()
        assert who in "AB" and op in ":<", f"{path.name}:{number}: cannot read {line!r}"
        out.append((f"{path.name}:{number}", who + op, xml))
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
async def test_transcript(path: Path, tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        clients = {"A": await h.login("alice", "balcony"), "B": await h.login("bob", "orchard")}
        names = {"{A}": clients["A"].jid, "{B}": clients["B"].jid,
                 "{a}": clients["A"].jid.split("/")[0], "{b}": clients["B"].jid.split("/")[0]}
        readers = {who: Reader(c) for who, c in clients.items()}
        for where, op, xml in steps(path):
            for placeholder, value in names.items():
                xml = xml.replace(placeholder, value)
            if op[1] == ":":
                await clients[op[0]].send(xml)
                continue
            actual = await readers[op[0]].next()
            expected = parse_expected(xml)
            assert matches(expected, actual), (
                f"{where}: expected {serialize(expected)}\n got {serialize(actual)}")
