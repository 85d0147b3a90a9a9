"""SASL2 (XEP-0388), Bind 2 (XEP-0386), FAST (XEP-0484) and XEP-0198 inline against a real
server over loopback TLS, byte by byte with a raw client.

The raw client computes everything a FAST client must: SCRAM with tls-server-end-point
channel binding, and the HT initial response straight from the draft's definition (hmac and
hashlib here, not Stockade's code).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trustme
from rawxmpp import (
    ACCOUNTS,
    DOMAIN,
    FEATURES_END,
    Harness,
    RawClient,
    body_of,
    eventually,
    parse_stanza,
    running_server,
)

from stockade.core.jid import JID
from stockade.core.sasl.scram import ScramClient
from stockade.server.session import Detached

NS_SASL2 = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
NS_SM = "urn:xmpp:sm:3"
NS_CARBONS = "urn:xmpp:carbons:2"
OUTCOME = re.compile(rb"<(challenge|success|failure) xmlns='urn:xmpp:sasl:2'(?:/>|>.*?</\1>)",
                     re.S)
AGENT = "<user-agent id='6f1c2d3e-0000-4000-8000-00000000a11c'><software>raw</software>" \
        "<device>test</device></user-agent>"
NOT_AUTHORIZED = (f"<failure xmlns='{NS_SASL2}'><not-authorized xmlns='{NS_SASL}'/>"
                  "</failure>").encode()
# Failures are tested here on purpose: keep the login throttle out of the way.
LENIENT = {"auth": {"max_failures_per_account": 1000, "max_failures_per_ip": 1000}}

pytestmark = pytest.mark.timeout(30)


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def endpoint_binding(client: RawClient) -> bytes:
    """RFC 5929 §4.1 tls-server-end-point: trustme signs with ECDSA-SHA256, so SHA-256 of the
    server's certificate."""
    der = client.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return hashlib.sha256(der).digest()


def ht_initial(username: str, token: str, cb: bytes) -> bytes:
    """draft-schmaus-kitten-sasl-ht §3.1: authcid NUL HMAC(token, "Initiator" || cb-data)."""
    return username.encode() + b"\0" + hmac.digest(token.encode(), b"Initiator" + cb, "sha256")


def authenticate(mechanism: str, initial: bytes, *extra: str) -> str:
    return (f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'><initial-response>"
            f"{base64.b64encode(initial).decode()}</initial-response>{''.join(extra)}"
            "</authenticate>")


async def exchange(client: RawClient, data: str) -> tuple[bytes, ET.Element]:
    """Send, then read the next SASL2 challenge/success/failure (bytes and parsed)."""
    await client.send(data)
    got = await client.read_until(OUTCOME)
    match = OUTCOME.search(got)
    assert match is not None
    return match.group(0), ET.fromstring(match.group(0))


async def scram_sasl2(client: RawClient, username: str, *extra: str,
                      password: str | None = None) -> tuple[bytes, ET.Element]:
    """SCRAM-SHA-256-PLUS over SASL2 after STARTTLS; the server signature is verified."""
    cb = ("tls-server-end-point", endpoint_binding(client))
    scram = ScramClient("SHA-256", username, password or ACCOUNTS[username], channel_binding=cb,
                        plus=True, server_offers_plus=True)
    _, challenge = await exchange(client, authenticate("SCRAM-SHA-256-PLUS", scram.first(),
                                                       *extra))
    assert challenge.tag == q(NS_SASL2, "challenge"), ET.tostring(challenge)
    final = scram.final(base64.b64decode(challenge.text or ""))
    raw, outcome = await exchange(
        client, f"<response xmlns='{NS_SASL2}'>{base64.b64encode(final).decode()}</response>")
    if outcome.tag == q(NS_SASL2, "success"):
        scram.verify(base64.b64decode(outcome.findtext(q(NS_SASL2, "additional-data")) or ""))
    return raw, outcome


def identity(success: ET.Element) -> str:
    text = success.findtext(q(NS_SASL2, "authorization-identifier"))
    assert text, ET.tostring(success)
    return text


def bind2(*children: str, tag: str = "RawTest") -> str:
    return f"<bind xmlns='{NS_BIND2}'><tag>{tag}</tag>{''.join(children)}</bind>"


async def logged_in_with_sasl2(h: Harness, username: str, *extra: str) -> tuple[RawClient,
                                                                               ET.Element]:
    client = await h.connect()
    await client.to_sasl()
    _, success = await scram_sasl2(client, username, AGENT, *extra)
    assert success.tag == q(NS_SASL2, "success"), ET.tostring(success)
    await client.read_until(FEATURES_END)  # new features, no stream restart
    client.jid = identity(success)
    return client, success


async def get_token(h: Harness, mechanism: str = "HT-SHA-256-ENDP") -> str:
    client, success = await logged_in_with_sasl2(
        h, "alice", f"<request-token xmlns='{NS_FAST}' mechanism='{mechanism}'/>")
    token = success.find(q(NS_FAST, "token"))
    assert token is not None, ET.tostring(success)
    await client.close()
    return token.attrib["token"]


async def fast_login(h: Harness, token: str, *extra: str,
                     mechanism: str = "HT-SHA-256-ENDP") -> tuple[RawClient, bytes, ET.Element]:
    client = await h.connect()
    await client.to_sasl()
    cb = endpoint_binding(client) if mechanism.endswith("ENDP") else b""
    raw, outcome = await exchange(client, authenticate(
        mechanism, ht_initial("alice", token, cb), AGENT, f"<fast xmlns='{NS_FAST}'/>", *extra))
    return client, raw, outcome


async def test_one_round_trip_login_binds_and_enables_stream_management(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        alice = await h.connect()
        features = await alice.to_sasl()
        assert f"<authentication xmlns='{NS_SASL2}'>".encode() in features
        assert b"<mechanism>SCRAM-SHA-256-PLUS</mechanism>" in features
        assert f"<fast xmlns='{NS_FAST}'><mechanism>HT-SHA-256-ENDP</mechanism>".encode() \
            in features
        _, success = await scram_sasl2(alice, "alice", AGENT,
                                       bind2(f"<enable xmlns='{NS_SM}' resume='true'/>"))
        assert success.tag == q(NS_SASL2, "success"), ET.tostring(success)
        jid = identity(success)
        assert jid.startswith(f"alice@{DOMAIN}/RawTest/")  # XEP-0386 "[tag]/[server id]"
        enabled = success.find(f"{q(NS_BIND2, 'bound')}/{q(NS_SM, 'enabled')}")
        assert enabled is not None and enabled.get("resume") == "true"
        after = await alice.read_until(FEATURES_END)
        assert b"xmpp-bind" not in after  # bound already; no restart either
        # The session works at once: a message out, an SM ack request answered.
        await alice.send(f"<message to='{bob.jid}' type='chat'><body>one trip</body></message>"
                         f"<r xmlns='{NS_SM}'/>")
        await alice.read_until(f"<a xmlns='{NS_SM}' h='1'/>".encode())
        message = await bob.read_message()
        assert body_of(message) == "one trip" and message.get("from") == jid


async def test_token_then_fast_login_without_the_password(tmp_path: Path,
                                                          ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        token = await get_token(h)
        # SECURITY: only hashes are kept; the token is nowhere in the database files.
        for db_file in (tmp_path / "data").glob("stockade.db*"):
            assert token.encode() not in db_file.read_bytes()
        bob = await h.login("bob")
        alice, _, success = await fast_login(h, token, bind2())
        # One round trip: <authenticate/> answered by <success/>, no challenge.
        assert success.tag == q(NS_SASL2, "success"), ET.tostring(success)
        cb = endpoint_binding(alice)
        responder = base64.b64decode(success.findtext(q(NS_SASL2, "additional-data")) or "")
        assert hmac.compare_digest(responder, hmac.digest(token.encode(), b"Responder" + cb,
                                                          "sha256"))
        rotated = success.find(q(NS_FAST, "token"))
        assert rotated is not None and rotated.attrib["token"] != token
        jid = identity(success)
        await alice.read_until(FEATURES_END)
        await alice.send(f"<message to='{bob.jid}'><body>no password</body></message>")
        message = await bob.read_message()
        assert body_of(message) == "no password" and message.get("from") == jid
        # The rotated token works; after it was used, the old one no longer does (XEP-0484 §3.5).
        _, _, again = await fast_login(h, rotated.attrib["token"])
        assert again.tag == q(NS_SASL2, "success")
        _, raw, _ = await fast_login(h, token)
        assert raw == NOT_AUTHORIZED, raw


async def test_bad_tokens_are_refused_exactly_like_a_wrong_password(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca, LENIENT) as h:
        wrong_password = await h.connect()
        await wrong_password.to_sasl()
        raw, _ = await exchange(wrong_password, authenticate(
            "PLAIN", b"\0alice\0not-her-password", AGENT))
        assert raw == NOT_AUTHORIZED

        token = await get_token(h)
        _, raw, _ = await fast_login(h, token[::-1])
        assert raw == NOT_AUTHORIZED, "wrong token"
        _, raw, _ = await fast_login(h, token, mechanism="HT-SHA-256-NONE")
        assert raw == NOT_AUTHORIZED, "token used with another mechanism"

        db = sqlite3.connect(tmp_path / "data" / "stockade.db", timeout=5)
        with db:
            db.execute("UPDATE fast_tokens SET expires_at = 1")
        db.close()
        _, raw, _ = await fast_login(h, token)
        assert raw == NOT_AUTHORIZED, "expired token"

        token = await get_token(h)
        listed = await asyncio.to_thread(h.deployment.stockade, "user", "tokens", "list",
                                         f"alice@{DOMAIN}")
        assert listed.returncode == 0 and "HT-SHA-256-ENDP" in listed.stdout, listed.stderr
        assert token not in listed.stdout
        revoked = await asyncio.to_thread(h.deployment.stockade, "user", "tokens", "revoke",
                                          f"alice@{DOMAIN}")
        assert revoked.returncode == 0, revoked.stderr
        _, raw, _ = await fast_login(h, token)
        assert raw == NOT_AUTHORIZED, "revoked token"

        token = await get_token(h)
        changed = await asyncio.to_thread(h.deployment.stockade, "user", "passwd",
                                          f"alice@{DOMAIN}", stdin="a-new-password\n")
        assert changed.returncode == 0, changed.stderr
        _, raw, _ = await fast_login(h, token)
        assert raw == NOT_AUTHORIZED, "token from before the password change"
        await h.assert_still_serving(sender="bob", receiver="carol")


async def test_sasl2_is_not_offered_before_tls_and_refused_if_tried(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        attacker = await h.connect()
        features = await attacker.open_stream()
        assert b"sasl:2" not in features and b"<starttls" in features
        await attacker.send(authenticate("PLAIN", b"\0alice\0" + ACCOUNTS["alice"].encode()))
        await attacker.read_until(
            f"<failure xmlns='{NS_SASL2}'><encryption-required xmlns='{NS_SASL}'/>"
            "</failure>".encode())
        await attacker.expect_stream_error("policy-violation")
        await h.assert_still_serving(bob)


async def test_resumption_inline_after_a_dropped_connection(tmp_path: Path,
                                                            ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        alice, success = await logged_in_with_sasl2(
            h, "alice", bind2(f"<enable xmlns='{NS_SM}' resume='true'/>"))
        enabled = success.find(f"{q(NS_BIND2, 'bound')}/{q(NS_SM, 'enabled')}")
        assert enabled is not None
        await alice.send("<presence/>")
        await bob.send(f"<message to='{alice.jid}' id='m1'><body>before the drop</body>"
                       "</message>")
        assert body_of(await alice.read_message()) == "before the drop"
        alice.writer.transport.abort()  # the network goes away; nothing was acked
        host = h.server.host_for(DOMAIN)
        assert alice.jid is not None
        full = JID.parse(alice.jid)
        await eventually(lambda: isinstance(getattr(host.session_for(full), "conn", None),
                                            Detached), "the session hibernates")

        again = await h.connect()
        await again.to_sasl()
        _, resumed_success = await scram_sasl2(
            again, "alice", AGENT, f"<resume xmlns='{NS_SM}' previd='{enabled.get('id')}' "
                                   "h='0'/>", bind2())
        assert identity(resumed_success) == alice.jid  # the same session, not a new bind
        resumed = resumed_success.find(q(NS_SM, "resumed"))
        assert resumed is not None and resumed.get("h") == "1"  # the presence was handled
        assert resumed_success.find(q(NS_BIND2, "bound")) is None
        message = await again.read_message()  # retransmitted: never acknowledged
        assert body_of(message) == "before the drop" and message.get("id") == "m1"
        await again.send(f"<message to='{bob.jid}'><body>back</body></message>")
        assert body_of(await bob.read_message()) == "back"


async def test_carbons_enabled_inside_bind(tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        bob = await h.login("bob")
        watcher, _ = await logged_in_with_sasl2(h, "alice",
                                                bind2(f"<enable xmlns='{NS_CARBONS}'/>"))
        phone = await h.login("alice", "phone")
        await phone.send(f"<message to='{bob.jid}' type='chat'><body>copied</body></message>")
        assert body_of(await bob.read_message()) == "copied"
        # A carbon holds a message in a message: read to the end of the outer one.
        data = await watcher.read_until(b"</sent></message>")
        copy = parse_stanza(data[data.rindex(f"<message from='alice@{DOMAIN}' ".encode()):])
        sent = copy.find(q(NS_CARBONS, "sent"))
        assert sent is not None and copy.get("from") == f"alice@{DOMAIN}", data


async def test_a_new_bind_of_the_same_client_replaces_its_old_session(
        tmp_path: Path, ca: trustme.CA) -> None:
    async with running_server(tmp_path, ca) as h:
        first, _ = await logged_in_with_sasl2(h, "alice", bind2())
        second, _ = await logged_in_with_sasl2(h, "alice", bind2())
        await first.expect_stream_error("conflict")  # XEP-0386 §3.2, same user-agent id
        assert first.jid != second.jid
        await second.ping()
