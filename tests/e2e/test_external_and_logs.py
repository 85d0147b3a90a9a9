"""SASL EXTERNAL with client certificates (XEP-0178), and logs that keep secrets out."""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import Deployment, deployment_config

from stockade.server.config import load_config
from stockade.server.logs import JSONFormatter, TextFormatter
from stockade.server.server import Server

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
XMPP_ADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")


class Raw:
    """Just enough of a client to reach SASL over STARTTLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def starttls(cls, port: int, ctx: ssl.SSLContext) -> tuple[Raw, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        raw.writer.write(HEADER)
        await raw.read_until(b"</stream:features>")
        raw.writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await raw.read_until(b"<proceed")
        await raw.writer.start_tls(ctx, server_hostname="localhost")
        raw.writer.write(HEADER)
        return raw, await raw.read_until(b"</stream:features>")

    async def read_until(self, marker: bytes, timeout: float = 5) -> bytes:
        data = b""
        while marker not in data:
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.writer.close()


def client_context(deployment: Deployment, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(deployment.ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def self_signed_client(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return _write(tmp_path, name, cert, key)


def ca_issued_client(tmp_path: Path, ca: trustme.CA, jid: str) -> tuple[Path, Path]:
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    der_utf8 = b"\x0c" + bytes([len(jid.encode())]) + jid.encode()
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, jid)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(XMPP_ADDR, der_utf8)]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return _write(tmp_path, jid, cert, key)


def _write(tmp_path: Path, name: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def start(deployment: Deployment) -> Server:
    srv = Server(load_config(deployment.config_path))
    await srv.start()
    return srv


@pytest.fixture
async def pinned(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[tuple[Deployment, Server,
                                                                         Path, Path]]:
    deployment, _ = deployment_config(tmp_path, ca)
    deployment.add_user("juliet@localhost", "not-used-here-1")
    cert, key = self_signed_client(tmp_path, "juliet-device")
    result = deployment.stockade("user", "cert", "juliet@localhost", str(cert))
    assert result.returncode == 0, result.stderr
    srv = await start(deployment)
    yield deployment, srv, cert, key
    await srv.stop()


@pytest.mark.timeout(30)
async def test_external_with_a_registered_certificate(pinned: tuple[Deployment, Server,
                                                                    Path, Path]) -> None:
    deployment, srv, cert, key = pinned
    raw, features = await Raw.starttls(srv.ports["starttls"][0],
                                       client_context(deployment, cert, key))
    assert b"<mechanism>EXTERNAL</mechanism>" in features
    raw.writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
                     + base64.b64encode(b"juliet@localhost") + b"</auth>")
    assert b"<success" in await raw.read_until(b"</success>")
    raw.close()


@pytest.mark.timeout(30)
async def test_external_authzid_of_another_account_fails(
        pinned: tuple[Deployment, Server, Path, Path]) -> None:
    deployment, srv, cert, key = pinned
    deployment.add_user("romeo@localhost", "not-used-here-2")
    raw, _ = await Raw.starttls(srv.ports["starttls"][0], client_context(deployment, cert, key))
    raw.writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
                     + base64.b64encode(b"romeo@localhost") + b"</auth>")
    assert b"<not-authorized/>" in await raw.read_until(b"</failure>")
    raw.close()


@pytest.mark.timeout(30)
async def test_no_certificate_means_no_external(pinned: tuple[Deployment, Server,
                                                              Path, Path]) -> None:
    deployment, srv, _, _ = pinned
    raw, features = await Raw.starttls(srv.ports["starttls"][0], client_context(deployment))
    assert b"<mechanisms" in features and b"EXTERNAL" not in features
    raw.close()


@pytest.mark.timeout(30)
async def test_unregistered_self_signed_certificate_is_refused(
        pinned: tuple[Deployment, Server, Path, Path], tmp_path: Path) -> None:
    deployment, srv, _, _ = pinned
    cert, key = self_signed_client(tmp_path, "mallory")
    try:
        raw, features = await Raw.starttls(srv.ports["starttls"][0],
                                           client_context(deployment, cert, key))
    except (ssl.SSLError, ConnectionError):
        return  # refused during the handshake
    # TLS 1.3: the client finishes first and learns of the refusal when the server closes.
    assert b"<mechanisms" not in features
    assert await raw.read_until(b"never", timeout=3) == b""
    raw.close()


@pytest.mark.timeout(30)
async def test_external_with_a_ca_issued_xmppaddr_certificate(tmp_path: Path,
                                                              ca: trustme.CA) -> None:
    deployment, _ = deployment_config(tmp_path, ca, {"tls": {"client_ca": str(
        tmp_path / "ca.pem")}})
    deployment.add_user("romeo@localhost", "not-used-here-3")
    cert, key = ca_issued_client(tmp_path, ca, "romeo@localhost")
    srv = await start(deployment)
    try:
        raw, features = await Raw.starttls(srv.ports["starttls"][0],
                                           client_context(deployment, cert, key))
        assert b"EXTERNAL" in features
        raw.writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                         b"mechanism='EXTERNAL'>=</auth>")
        assert b"<success" in await raw.read_until(b"</success>")
        raw.close()
        # A CA-issued certificate for an account that does not exist logs nobody in.
        cert2, key2 = ca_issued_client(tmp_path, ca, "ghost@localhost")
        raw, _ = await Raw.starttls(srv.ports["starttls"][0],
                                    client_context(deployment, cert2, key2))
        raw.writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                         b"mechanism='EXTERNAL'>=</auth>")
        assert b"<not-authorized/>" in await raw.read_until(b"</failure>")
        raw.close()
    finally:
        await srv.stop()


@pytest.mark.timeout(30)
async def test_logs_never_contain_passwords_or_bodies(
        deployment: Deployment, server: Server, caplog: pytest.LogCaptureFixture) -> None:
    password, body = "Tr0ub4dor-and-3", "the eagle flies at midnight"
    deployment.add_user("juliet@localhost", password)
    caplog.set_level(logging.DEBUG)
    raw, _ = await Raw.starttls(server.ports["starttls"][0], client_context(deployment))
    creds = base64.b64encode(b"\x00juliet\x00" + password.encode())
    raw.writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                     + creds + b"</auth>")
    assert b"<success" in await raw.read_until(b"</success>")
    raw.writer.write(HEADER)
    await raw.read_until(b"</stream:features>")
    raw.writer.write(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                     b"</iq>")
    await raw.read_until(b"</iq>")
    raw.writer.write(b"<presence/>")
    await raw.read_until(b"<presence")
    raw.writer.write(f"<message to='juliet@localhost'><body>{body}</body></message>".encode())
    assert body.encode() in await raw.read_until(body.encode())  # routed and delivered
    raw.writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")  # stream error
    await raw.read_until(b"</stream:stream>")
    raw.close()
    await asyncio.sleep(0.1)
    assert any("authenticated" in r.getMessage() for r in caplog.records)  # logs do exist
    for formatter in (TextFormatter(), JSONFormatter()):
        text = "\n".join(formatter.format(r) for r in caplog.records)
        for secret in (password, body, creds.decode()):
            assert secret not in text
        assert not re.search(r"SCRAM[^\s]*\s*[=:]\s*[A-Za-z0-9+/]{20,}", text)


def test_cli_refuses_to_register_a_ca_certificate(deployment: Deployment,
                                                  ca: trustme.CA) -> None:
    """A registered certificate becomes a trust anchor: a CA there could mint identities."""
    deployment.add_user("juliet@localhost", "not-used-here-4")
    ca_file = deployment.root / "some-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    result = deployment.stockade("user", "cert", "juliet@localhost", str(ca_file))
    assert result.returncode == 1 and "is a CA certificate" in result.stderr
    assert not (deployment.root / "data" / "client-certs").exists()
