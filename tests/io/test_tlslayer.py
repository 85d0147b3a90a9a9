"""TLS on memory BIOs (io/tlslayer.py), driven in memory against a stdlib client SSLObject."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from stockade.core.tls.clienthello import (
    Alert,
    TLSVersion,
    build_client_hello,
    parse_server_response,
)
from stockade.io.tls import server_context
from stockade.io.tlslayer import TLSFailed, TLSLayer


@pytest.fixture
def contexts(tmp_path: Path, ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    leaf = ca.issue_cert("localhost")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server_context(cert, key), client


class Client:
    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def step(self) -> bool:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True


def handshake(server: TLSLayer, client: Client) -> None:
    done = False
    for _ in range(10):
        done = client.step()
        plaintext, _completed, to_client = server.receive(client.out.read())
        assert plaintext == b""
        client.inc.write(to_client)
        if done and server.is_established:
            return
    raise AssertionError("handshake did not finish")


def test_handshake_and_data_both_ways(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = contexts
    server, client = TLSLayer(server_ctx), Client(client_ctx)
    handshake(server, client)
    assert server.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    client.obj.write(b"<stream:stream>")
    plaintext, completed, _ = server.receive(client.out.read())
    assert plaintext == b"<stream:stream>" and not completed
    client.inc.write(server.send(b"<features/>"))
    assert client.obj.read() == b"<features/>"


def test_close_notify_is_seen_and_answered(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = contexts
    server, client = TLSLayer(server_ctx), Client(client_ctx)
    handshake(server, client)
    try:
        client.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    plaintext, _, _ = server.receive(client.out.read())
    assert plaintext == b"" and server.is_closed
    assert server.close()  # our close_notify goes back


def test_old_protocol_gets_a_fatal_alert(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server = TLSLayer(contexts[0])
    hello = build_client_hello(version=TLSVersion.TLS1_0, cipher_suites=[0xC013],
                               server_name="localhost")
    with pytest.raises(TLSFailed) as info:
        server.receive(hello)
    alert = parse_server_response(info.value.alert)
    assert isinstance(alert, Alert) and alert.is_fatal and alert.description == 70


def test_3des_only_gets_handshake_failure(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server = TLSLayer(contexts[0])
    hello = build_client_hello(version=TLSVersion.TLS1_2, cipher_suites=[0x000A, 0xC012, 0xC008],
                               server_name="localhost")
    with pytest.raises(TLSFailed) as info:
        server.receive(hello)
    alert = parse_server_response(info.value.alert)
    assert isinstance(alert, Alert) and alert.description == 40


def test_garbage_instead_of_a_client_hello(
        contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server = TLSLayer(contexts[0])
    with pytest.raises(TLSFailed):
        server.receive(b"<stream:stream xmlns='jabber:client'>")
