"""The server side of SASL2/Bind 2/FAST: configuration into the stream policy, and the Bind 2
inline features registered for carbons (XEP-0280) and CSI (XEP-0352)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.errors import ConfigError
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0280_carbons import KEY as CARBONS_KEY
from stockade.server.modules.xep0280_carbons import NS_CARBONS
from stockade.server.modules.xep0352_csi import NS_CSI
from stockade.server.server import c2s_policy
from tests.conftest import make_config
from tests.server.small_modules import open_host
from tests.server.test_routing import online

BASE = {"server": {"domains": ["example.com"]}}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with open_host(tmp_path, "juliet", "romeo") as h:
        yield h


async def test_policy_offers_sasl2_fast_and_the_modules_bind2_features(host: Host) -> None:
    policy = c2s_policy(host.config, b"\x00" * 32, host)
    assert policy.sasl2 and policy.fast_token_lifetime_s == 14 * 86_400
    assert {(NS_CARBONS, "enable"), (NS_CSI, "active"), (NS_CSI, "inactive")} <= \
        policy.bind2_features
    assert policy.bind2_vars.count(NS_CSI) == 1  # two elements, one advertised var
    assert NS_CARBONS in policy.bind2_vars


def test_sasl2_and_fast_can_be_switched_off() -> None:
    config = make_config({**BASE, "sasl2": {"fast": False}})
    assert c2s_policy(config, b"\x00" * 32).fast_token_lifetime_s == 0
    config = make_config({**BASE, "sasl2": {"enabled": False}})
    assert not c2s_policy(config, b"\x00" * 32).sasl2
    with pytest.raises(ConfigError, match="fast_token_lifetime_days"):
        make_config({**BASE, "sasl2": {"fast_token_lifetime_days": 0}})


async def test_carbons_enabled_inside_bind_are_on_for_the_session(host: Host) -> None:
    session, _ = await online(host, "juliet", "balcony")
    handler = host.bind2_inline[(NS_CARBONS, "enable")].handler
    assert handler(Element(NS_CARBONS, "enable"), session) is None  # XEP-0386: no reply
    assert session.data[CARBONS_KEY] is True


async def test_csi_inactive_inside_bind_holds_presence_back(host: Host) -> None:
    session, conn = await online(host, "juliet", "balcony")
    host.bind2_inline[(NS_CSI, "inactive")].handler(Element(NS_CSI, "inactive"), session)
    before = len(conn.received)
    session.deliver(Element(NS_CLIENT, "presence", {"from": "romeo@example.com/orchard"}))
    assert len(conn.received) == before  # held: the session began inactive
    host.bind2_inline[(NS_CSI, "active")].handler(Element(NS_CSI, "active"), session)
    assert conn.received[-1].get("from") == "romeo@example.com/orchard"


async def test_with_sasl2_off_bind2_is_not_offered(tmp_path: Path) -> None:
    # Modules still declare their Bind 2 features; without SASL2 there is no <bind/> to
    # carry them.
    async with open_host(tmp_path, "juliet", config={"sasl2": {"enabled": False}}) as h:
        assert (NS_CARBONS, "enable") in h.bind2_inline
        assert not c2s_policy(h.config, b"\x00" * 32, h).sasl2
