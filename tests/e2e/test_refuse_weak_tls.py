"""TLS policy on both client ports (RFC 7525 / RFC 9325 §4): no TLS 1.0 or 1.1, no 3DES,
RC4, NULL, static RSA or CBC suites; modern TLS 1.2 ECDHE-AEAD and TLS 1.3 are accepted.

Hand-built ClientHellos (``stockade.core.tls.clienthello``) offer exactly one version and
one class of suites, including ones this machine's OpenSSL can no longer send; each is tried
against a server with an ECDSA and one with an RSA certificate, so a refusal is the policy's
and not merely a key-type mismatch.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from pathlib import Path

import pytest
import trustme
from rawxmpp import DOMAIN, HOST, NS_TLS, TIMEOUT, Harness, running_server, stream_header

from stockade.core.tls.clienthello import (
    Alert,
    AlertDescription,
    ServerHello,
    TLSVersion,
    build_client_hello,
)
from tlsprobe import probe

#: Suites with both ECDSA and RSA authentication where both exist.
CBC_AND_AEAD_FOR_OLD_VERSIONS = [0xC013, 0xC014, 0xC009, 0xC00A, 0x002F, 0x0035, 0x000A]
REFUSED: dict[str, tuple[TLSVersion, list[int], AlertDescription]] = {
    "tls1.0": (TLSVersion.TLS1_0, CBC_AND_AEAD_FOR_OLD_VERSIONS,
               AlertDescription.PROTOCOL_VERSION),
    "tls1.1": (TLSVersion.TLS1_1, CBC_AND_AEAD_FOR_OLD_VERSIONS,
               AlertDescription.PROTOCOL_VERSION),
    "3des-only": (TLSVersion.TLS1_2, [0x000A, 0xC012, 0xC008, 0x0016],
                  AlertDescription.HANDSHAKE_FAILURE),
    "rc4-only": (TLSVersion.TLS1_2, [0x0005, 0x0004, 0xC011, 0xC007],
                 AlertDescription.HANDSHAKE_FAILURE),
    "null-only": (TLSVersion.TLS1_2, [0x0001, 0x0002, 0x003B, 0xC010, 0xC006],
                  AlertDescription.HANDSHAKE_FAILURE),
    "static-rsa-only": (TLSVersion.TLS1_2, [0x009C, 0x009D, 0x003C, 0x003D, 0x002F, 0x0035],
                        AlertDescription.HANDSHAKE_FAILURE),
    "cbc-only": (TLSVersion.TLS1_2, [0xC013, 0xC014, 0xC027, 0xC028, 0xC009, 0xC00A, 0xC023,
                                     0xC024, 0x009E, 0x0033, 0x0039, 0x0067, 0x006B],
                 AlertDescription.HANDSHAKE_FAILURE),
}
#: (version, offered suites, suites the server may pick).
AEAD_12 = [0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA9, 0xCCA8]
ACCEPTED: dict[str, tuple[TLSVersion, list[int], set[int]]] = {
    "tls1.2-ecdhe-aead": (TLSVersion.TLS1_2, AEAD_12, set(AEAD_12)),
    "tls1.2-weak-listed-first": (TLSVersion.TLS1_2, [0x000A, 0xC013, 0x0005, *AEAD_12],
                                 set(AEAD_12)),
    "tls1.3": (TLSVersion.TLS1_3, [0x1301, 0x1302, 0x1303], {0x1301, 0x1302, 0x1303}),
}
PORTS = ["starttls", "direct_tls"]
CERTS = ["ecdsa", "rsa"]


async def _probe(h: Harness, port_kind: str, hello: bytes) -> Alert | ServerHello | None:
    port = h.server.ports[port_kind][0]
    xmpp = DOMAIN if port_kind == "starttls" else None
    return await asyncio.to_thread(probe, HOST, port, hello, starttls_xmpp_domain=xmpp)




@pytest.mark.timeout(30)
@pytest.mark.parametrize("cert", CERTS)
@pytest.mark.parametrize("port_kind", PORTS)
@pytest.mark.parametrize("case", list(REFUSED))
async def test_weak_client_hello_never_gets_a_server_hello(
        tmp_path: Path, ca: trustme.CA, case: str, port_kind: str, cert: str) -> None:
    version, suites, _ = REFUSED[case]
    hello = build_client_hello(version=version, cipher_suites=suites, server_name=DOMAIN)
    async with running_server(tmp_path, ca, rsa_certificate=cert == "rsa") as h:
        answer = await _probe(h, port_kind, hello)
        # None: the server closed the connection without answering.
        assert answer is None or (isinstance(answer, Alert) and answer.is_fatal), answer
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cert", CERTS)
@pytest.mark.parametrize("port_kind", PORTS)
@pytest.mark.parametrize("case", list(REFUSED))
async def test_weak_client_hello_gets_a_fatal_alert(tmp_path: Path, ca: trustme.CA, case: str,
                                                    port_kind: str, cert: str) -> None:
    version, suites, description = REFUSED[case]
    hello = build_client_hello(version=version, cipher_suites=suites, server_name=DOMAIN)
    async with running_server(tmp_path, ca, rsa_certificate=cert == "rsa") as h:
        answer = await _probe(h, port_kind, hello)
        assert isinstance(answer, Alert), answer
        assert answer.is_fatal and answer.description == description, answer


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cert", CERTS)
@pytest.mark.parametrize("port_kind", PORTS)
@pytest.mark.parametrize("case", list(ACCEPTED))
async def test_modern_client_hello_gets_a_server_hello(tmp_path: Path, ca: trustme.CA,
                                                       case: str, port_kind: str,
                                                       cert: str) -> None:
    version, suites, allowed = ACCEPTED[case]
    hello = build_client_hello(version=version, cipher_suites=suites, server_name=DOMAIN)
    async with running_server(tmp_path, ca, rsa_certificate=cert == "rsa") as h:
        answer = await _probe(h, port_kind, hello)
        assert isinstance(answer, ServerHello), answer
        assert answer.version == version and not answer.is_hello_retry_request, answer
        assert answer.cipher_suite in allowed, hex(answer.cipher_suite)


# ---------------------------------------------------------------------- stdlib ssl client


def _recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before {marker!r}: {data!r}"
        data += chunk
    return data


def _handshake(port: int, starttls: bool, ca_file: Path,
               maximum: ssl.TLSVersion) -> str | None:
    """Connect with the stdlib client; return the negotiated version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca_file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 are deprecated
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so OpenSSL really offers TLS 1.0/1.1 suites
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        if starttls:
            sock.sendall(stream_header())
            _recv_until(sock, b"</stream:features>")
            sock.sendall(f"<starttls xmlns='{NS_TLS}'/>".encode())
            _recv_until(sock, b"<proceed")
        with ctx.wrap_socket(sock, server_hostname=DOMAIN) as tls:
            return tls.version()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("port_kind", PORTS)
async def test_stdlib_tls11_client_fails_the_handshake(tmp_path: Path, ca: trustme.CA,
                                                       port_kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        port = h.server.ports[port_kind][0]
        with pytest.raises(ssl.SSLError) as refused:
            await asyncio.to_thread(_handshake, port, port_kind == "starttls",
                                    h.deployment.ca_file, ssl.TLSVersion.TLSv1_1)
        # The ClientHello went out and the server refused it (not a local "no protocols").
        assert refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION",
                                        "UNEXPECTED_EOF_WHILE_READING"), refused.value
        # The same client allowed TLS 1.2 gets through: the refusal is about the version.
        version = await asyncio.to_thread(_handshake, port, port_kind == "starttls",
                                          h.deployment.ca_file, ssl.TLSVersion.TLSv1_2)
        assert version == "TLSv1.2"
        await h.assert_still_serving()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("port_kind", PORTS)
async def test_stdlib_tls11_client_gets_protocol_version_alert(
        tmp_path: Path, ca: trustme.CA, port_kind: str) -> None:
    async with running_server(tmp_path, ca) as h:
        port = h.server.ports[port_kind][0]
        with pytest.raises(ssl.SSLError) as refused:
            await asyncio.to_thread(_handshake, port, port_kind == "starttls",
                                    h.deployment.ca_file, ssl.TLSVersion.TLSv1_1)
        assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value
