"""XEP-0202 entity time: the server answers with its clock in UTC (XEP-0082 format)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from stockade.core.xml import Element
from stockade.server.modules.xep0202_time import NS_TIME
from tests.server.small_modules import open_host, query
from tests.server.test_routing import online


async def test_server_time_is_utc_now(tmp_path: Path) -> None:
    async with open_host(tmp_path, "juliet") as host:
        juliet, conn = await online(host, "juliet", "balcony")
        before = datetime.datetime.now(datetime.UTC)
        reply = await query(host, juliet, conn, "get", Element(NS_TIME, "time"),
                            to="example.com")
        after = datetime.datetime.now(datetime.UTC)
    time_el = reply.find(NS_TIME, "time")
    assert reply.get("type") == "result" and reply.get("from") == "example.com"
    assert time_el is not None
    tzo, utc = time_el.find(NS_TIME, "tzo"), time_el.find(NS_TIME, "utc")
    assert tzo is not None and tzo.text == "+00:00"
    assert utc is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc.text)
    stamp = datetime.datetime.fromisoformat(utc.text.replace("Z", "+00:00"))
    assert before - datetime.timedelta(milliseconds=1) <= stamp <= after


async def test_time_of_another_account_is_not_the_servers_to_answer(tmp_path: Path) -> None:
    async with open_host(tmp_path, "juliet", "romeo") as host:
        juliet, conn = await online(host, "juliet", "balcony")
        reply = await query(host, juliet, conn, "get", Element(NS_TIME, "time"),
                            to="romeo@example.com")
    assert reply.get("type") == "error"
