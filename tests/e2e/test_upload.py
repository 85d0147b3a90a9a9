"""XEP-0363 HTTP File Upload over loopback: slixmpp's xep_0363 plugin discovers the service,
gets a slot and PUTs a file over HTTPS (aiohttp, verifying the test CA), and the file comes
back byte for byte; every slot or PUT that breaks a rule is refused, downloads of active
content are defused, and web clients get their CORS answers."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import ssl
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import trustme
from rawxmpp import eventually
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0363 import http_upload
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    connect_and_start,
    disconnect_all,
    registered_accounts,
)
from tests.conftest import Deployment, deployment_config
from wsclient import http_exchange, tls_context

from stockade.server.config import load_config
from stockade.server.modules.xep0363_upload import HTTPUpload
from stockade.server.server import Server

accounts_template, _deployment = registered_accounts()
pytestmark = pytest.mark.timeout(30)
NS_UPLOAD = "urn:xmpp:http:upload:0"
SERVICE = "upload.localhost"
MAX_FILE = 200 * 1024
QUOTA = 500 * 1024
UPLOAD_CONFIG: dict[str, dict[str, object]] = {"upload": {
    "max_file_bytes": MAX_FILE, "quota_bytes": QUOTA, "max_pending_slots": 3}}


class Setup:
    """A running server, its deployment, and alice logged in with the upload plugin."""

    def __init__(self, server: Server, deployment: Deployment, alice: Client) -> None:
        self.server = server
        self.deployment = deployment
        self.alice = alice
        self.module = server.hosts["localhost"].modules["xep0363_upload"]
        assert isinstance(self.module, HTTPUpload)

    @property
    def https_port(self) -> int:
        return self.server.ports["https"][0]

    @property
    def tls(self) -> ssl.SSLContext:
        return tls_context(self.deployment.ca_file)

    async def slot(self, filename: str, size: int, content_type: str | None = None,
                   client: Client | None = None) -> tuple[str, dict[str, str], str]:
        """(put url, put headers, get url) of a new slot."""
        plugin = (client or self.alice).plugin["xep_0363"]
        iq = await plugin.request_slot(SERVICE, filename, size, content_type, timeout=10)
        slot = iq["http_upload_slot"]
        headers = {h["name"]: h["value"] for h in slot["put"]["headers"]}
        return slot["put"]["url"], headers, slot["get"]["url"]

    async def raw(self, method: str, url: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """One hand-written HTTP/1.1 request over TLS to the upload URL's path."""
        lines = [f"{method} {urlsplit(url).path if '://' in url else url} HTTP/1.1",
                 "Host: localhost", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        return await http_exchange(self.https_port, request, tls=self.tls)


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make the plugin's aiohttp sessions verify against the test CA (it has no option)."""
    def install(ca_file: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        original = http_upload.ClientSession

        def session(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
            return original(*args, connector=aiohttp.TCPConnector(ssl=context), **kwargs)

        monkeypatch.setattr(http_upload, "ClientSession", session)
    return install


@pytest.fixture
async def setup(tmp_path: Path, ca: trustme.CA, accounts_template: Path,
                trust_test_ca: Callable[[Path], None]) -> AsyncIterator[Setup]:
    deployment, _ = deployment_config(tmp_path, ca, UPLOAD_CONFIG)
    shutil.copytree(accounts_template, tmp_path / "data")
    trust_test_ca(deployment.ca_file)
    server = Server(load_config(deployment.config_path))
    await server.start()
    alice = Client(ALICE + "/desk", ACCOUNTS[ALICE], deployment.ca_file)
    alice.register_plugin("xep_0363")
    try:
        await connect_and_start(alice, server.ports["starttls"][0])
        yield Setup(server, deployment, alice)
    finally:
        await disconnect_all([alice])
        await server.stop()


async def fetch(url: str, context: ssl.SSLContext,
                method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http, \
            http.request(method, url) as response:
        return response.status, dict(response.headers), await response.read()


# ---------------------------------------------------------------------- the whole flow


async def test_slixmpp_uploads_and_the_file_comes_back_identical(setup: Setup) -> None:
    content = os.urandom(150_000)  # several chunks each way
    plugin = setup.alice.plugin["xep_0363"]
    get_url = await plugin.upload_file("holiday photo.jpg", input_file=io.BytesIO(content),
                                       content_type="image/jpeg", timeout=10)
    # Discovered through the host's disco#items and the service's XEP-0128 form.
    assert plugin.upload_service == SERVICE and plugin.max_file_size == MAX_FILE
    url = urlsplit(get_url)
    assert (url.scheme, url.hostname, url.port) == ("https", "localhost", setup.https_port)
    token, name = url.path.removeprefix("/upload/").split("/")
    # 192 bits: token_urlsafe(24) is 32 base64url characters.
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token) and name == "holiday%20photo.jpg"

    status, headers, body = await fetch(get_url, setup.tls)
    assert status == 200 and body == content
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]
    assert headers["Access-Control-Allow-Origin"] == "*"
    status, headers, body = await fetch(get_url, setup.tls, "HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(len(content)), b"")

    # Stored privately under data_dir/uploads/<token>/.
    directory = setup.deployment.root / "data" / "uploads" / token
    (stored,) = list(directory.iterdir())
    assert stored.read_bytes() == content
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


async def test_too_large_file_is_refused_at_the_slot_request(setup: Setup) -> None:
    with pytest.raises(IqError) as refused:
        await setup.slot("big.bin", MAX_FILE + 1)
    error = refused.value.iq["error"]
    assert (error["type"], error["condition"]) == ("modify", "not-acceptable")
    limit = error.xml.find(f"{{{NS_UPLOAD}}}file-too-large/{{{NS_UPLOAD}}}max-file-size")
    assert limit is not None and limit.text == str(MAX_FILE)


async def test_quota_and_pending_slots_are_limited(setup: Setup) -> None:
    # Two pending 200 KiB slots fit in the 500 KiB quota, a third does not.
    for _ in range(2):
        await setup.slot("part.bin", MAX_FILE)
    with pytest.raises(IqError) as refused:
        await setup.slot("part.bin", MAX_FILE)
    error = refused.value.iq["error"]
    assert (error["type"], error["condition"]) == ("wait", "resource-constraint")
    retry = error.xml.find(f"{{{NS_UPLOAD}}}retry")
    assert retry is not None and retry.get("stamp", "").endswith("Z")
    # A small one still fits; then the limit of three pending slots is reached.
    await setup.slot("small.txt", 10, "text/plain")
    with pytest.raises(IqError) as refused:
        await setup.slot("small.txt", 10, "text/plain")
    assert refused.value.iq["error"]["condition"] == "resource-constraint"
    # Bob's quota is his own.
    bob = Client(BOB + "/desk", ACCOUNTS[BOB], setup.deployment.ca_file)
    bob.register_plugin("xep_0363")
    try:
        await connect_and_start(bob, setup.server.ports["starttls"][0])
        await setup.slot("part.bin", MAX_FILE, client=bob)
    finally:
        await disconnect_all([bob])


@pytest.mark.parametrize(("filename", "size"), [
    ("../../stockade.db", "5"), ("a/b.txt", "5"), ("..", "5"), ("..\\x.txt", "5"),
    (" padded.txt", "5"), ("invoice\u202egpj.exe", "5"), ("", "5"),
    ("ok.txt", "0"), ("ok.txt", "-1"), ("ok.txt", "five"),
])
async def test_bad_file_names_and_sizes_are_bad_requests(setup: Setup, filename: str,
                                                         size: str) -> None:
    iq = setup.alice.make_iq_get(ito=SERVICE)
    iq["http_upload_request"]["filename"] = filename
    iq["http_upload_request"]["size"] = size
    with pytest.raises(IqError) as refused:
        await iq.send(timeout=10)
    assert refused.value.iq["error"]["condition"] == "bad-request"


# ---------------------------------------------------------------------- PUT rules


async def test_put_must_match_its_slot_once_and_in_time(setup: Setup) -> None:
    put_url, headers, get_url = await setup.slot("note.txt", 5, "text/plain")
    good = {**headers, "Content-Type": "text/plain", "Content-Length": "5"}
    assert (await setup.raw("PUT", put_url, {**good, "Content-Length": "6"}, b"hello!"))[0] \
        == 400
    assert (await setup.raw("PUT", put_url, {**good, "Content-Type": "text/html"},
                            b"hello"))[0] == 415
    no_secret = {k: v for k, v in good.items() if k != "Authorization"}
    assert (await setup.raw("PUT", put_url, no_secret, b"hello"))[0] == 403
    forged = {**good, "Authorization": "Bearer guessed"}
    assert (await setup.raw("PUT", put_url, forged, b"hello"))[0] == 403
    other_name = put_url.rsplit("/", 1)[0] + "/other.txt"
    assert (await setup.raw("PUT", other_name, good, b"hello"))[0] == 403
    # The refused attempts left nothing to download.
    assert (await setup.raw("GET", get_url))[0] == 404

    status, response_headers, _ = await setup.raw("PUT", put_url, good, b"hello")
    assert status == 201 and response_headers["access-control-allow-origin"] == "*"
    assert (await setup.raw("GET", get_url))[2] == b"hello"
    # Once only: the file stays what it was.
    assert (await setup.raw("PUT", put_url, good, b"HELLO"))[0] == 403
    assert (await setup.raw("GET", get_url))[2] == b"hello"


async def test_put_after_the_slot_expired_is_refused(setup: Setup) -> None:
    put_url, headers, get_url = await setup.slot("late.txt", 4, "text/plain")
    lifetime = setup.server.config["upload"]["slot_lifetime_s"]
    setup.module.clock = lambda: time.time() + lifetime + 1
    status, _, _ = await setup.raw("PUT", put_url, {**headers, "Content-Length": "4"},
                                   b"late")
    assert status == 403
    assert (await setup.raw("GET", get_url))[0] == 404


async def test_put_body_streams_to_disk_and_a_dropped_put_leaves_nothing(
        setup: Setup) -> None:
    content = os.urandom(120_000)
    put_url, headers, get_url = await setup.slot("stream.bin", len(content))
    token = urlsplit(put_url).path.split("/")[2]
    directory = setup.deployment.root / "data" / "uploads" / token
    head = (f"PUT {urlsplit(put_url).path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: {headers['Authorization']}\r\n"
            f"Content-Length: {len(content)}\r\n\r\n").encode()

    def part_bytes() -> int:
        parts = list(directory.glob(".part-*")) if directory.exists() else []
        return parts[0].stat().st_size if parts else -1

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", setup.https_port, ssl=setup.tls,
                                             server_hostname="localhost")

    # Half a body, then the client goes away: the bytes were on disk, and are gone again.
    reader, writer = await connect()
    writer.write(head + content[:60_000])
    await writer.drain()
    await eventually(lambda: part_bytes() == 60_000, "the first half written to disk")
    writer.close()
    await eventually(lambda: part_bytes() == -1, "the partial file removed")
    assert (await setup.raw("GET", get_url))[0] == 404

    # The slot is still usable: a whole PUT, in two pieces, fills it.
    reader, writer = await connect()
    try:
        writer.write(head + content[:60_000])
        await eventually(lambda: part_bytes() == 60_000, "the first half written again")
        writer.write(content[60_000:])
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 201 ")
    finally:
        writer.close()
    assert part_bytes() == -1
    assert (await fetch(get_url, setup.tls))[2] == content


async def test_put_decides_the_type_when_the_slot_named_none(setup: Setup) -> None:
    iq = setup.alice.make_iq_get(ito=SERVICE)
    iq["http_upload_request"]["filename"] = "dot.png"
    iq["http_upload_request"]["size"] = "4"
    slot = (await iq.send(timeout=10))["http_upload_slot"]
    headers = {h["name"]: h["value"] for h in slot["put"]["headers"]}
    # A client that waits for 100 Continue gets it once the head has passed the checks.
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.https_port,
                                                   ssl=setup.tls, server_hostname="localhost")
    try:
        writer.write(f"PUT {urlsplit(slot['put']['url']).path} HTTP/1.1\r\n"
                     f"Host: localhost\r\nAuthorization: {headers['Authorization']}\r\n"
                     "Content-Type: image/png\r\nContent-Length: 4\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"\x89PNG")
        final = await asyncio.wait_for(reader.readline(), 10)
        assert final.startswith(b"HTTP/1.1 201 ")
    finally:
        writer.close()
    status, response_headers, body = await fetch(slot["get"]["url"], setup.tls)
    assert (status, response_headers["Content-Type"], body) == (200, "image/png", b"\x89PNG")


async def test_a_large_download_follows_a_slow_reader(tmp_path: Path, ca: trustme.CA,
                                                      accounts_template: Path) -> None:
    # 8 MiB, more than the kernel's socket buffers hold: without backpressure the rest would
    # pile up in the server's memory while the client does not read.
    size = 8 * 1024 * 1024
    deployment, _ = deployment_config(tmp_path, ca, {"upload": {
        "max_file_bytes": size, "quota_bytes": size}})
    shutil.copytree(accounts_template, tmp_path / "data")
    server = Server(load_config(deployment.config_path))
    await server.start()
    alice = Client(ALICE + "/desk", ACCOUNTS[ALICE], deployment.ca_file)
    alice.register_plugin("xep_0363")
    try:
        await connect_and_start(alice, server.ports["starttls"][0])
        setup = Setup(server, deployment, alice)
        content = os.urandom(size)
        put_url, headers, get_url = await setup.slot("big.bin", size)
        assert (await setup.raw("PUT", put_url, {**headers, "Content-Length": str(size)},
                                content))[0] == 201
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", setup.https_port, ssl=setup.tls, server_hostname="localhost",
            limit=1024 * 1024)
        try:
            writer.write(f"GET {urlsplit(get_url).path} HTTP/1.1\r\nHost: localhost\r\n"
                         "\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ") and f"{size}".encode() in head
            await asyncio.sleep(0.5)  # not reading: the server must wait, not buffer
            high = server.config["c2s"]["send_buffer_high_bytes"]
            buffered = [c.transport.get_write_buffer_size() for c in server.connections
                        if c.transport is not None]
            assert max(buffered) < high + 2 * 64 * 1024, buffered
            body = await asyncio.wait_for(reader.readexactly(size), 20)
            assert body == content
        finally:
            writer.close()
    finally:
        await disconnect_all([alice])
        await server.stop()


# ---------------------------------------------------------------------- GET rules


async def test_unknown_tokens_and_traversal_paths_are_404(setup: Setup) -> None:
    put_url, headers, get_url = await setup.slot("real.txt", 4, "text/plain")
    assert (await setup.raw("PUT", put_url, {**headers, "Content-Length": "4"},
                            b"real"))[0] == 201
    token = urlsplit(get_url).path.split("/")[2]
    for path in ("/upload/" + "A" * 32 + "/real.txt",  # a token nobody was given
                 f"/upload/{token}/other.txt", f"/upload/{token}",
                 "/upload/../stockade.db", "/upload/%2e%2e/%2e%2e/stockade.db",
                 f"/upload/{token}/..%2f..%2fstockade.db", f"/upload/{token}/data"):
        assert (await setup.raw("GET", path))[0] == 404, path
    assert (await setup.raw("GET", get_url))[2] == b"real"
    # Once the file has expired (upload.expire_days), it is gone even before the sweep.
    days = setup.server.config["upload"]["expire_days"]
    setup.module.clock = lambda: time.time() + days * 86_400 + 1
    assert (await setup.raw("GET", get_url))[0] == 404
    assert await setup.module.sweep() == 1
    assert not (setup.deployment.root / "data" / "uploads" / token).exists()


async def test_uploaded_html_is_not_served_as_html(setup: Setup) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    put_url, headers, get_url = await setup.slot("page.html", len(page), "text/html")
    status, _, _ = await setup.raw(
        "PUT", put_url, {**headers, "Content-Type": "text/html",
                         "Content-Length": str(len(page))}, page)
    assert status == 201
    status, response_headers, body = await fetch(get_url, setup.tls)
    assert status == 200 and body == page
    assert response_headers["Content-Type"] == "application/octet-stream"
    assert response_headers["Content-Disposition"].startswith("attachment;")
    assert response_headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response_headers["Content-Security-Policy"]


async def test_cors_preflight_lets_web_clients_put(setup: Setup) -> None:
    put_url, _, _ = await setup.slot("web.txt", 3, "text/plain")
    status, headers, _ = await setup.raw("OPTIONS", put_url, {
        "Origin": "https://webchat.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status in (200, 204)
    assert headers["access-control-allow-origin"] == "*"
    assert "PUT" in headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed


async def test_disco_lists_the_service_with_its_limit(setup: Setup) -> None:
    disco = setup.alice.plugin["xep_0030"]
    items = await disco.get_items(jid="localhost", timeout=10)
    assert (SERVICE, None, "HTTP File Upload") in items["disco_items"]["items"]
    info = await disco.get_info(jid=SERVICE, timeout=10)
    assert ("store", "file", None, "HTTP File Upload") in info["disco_info"]["identities"]
    assert NS_UPLOAD in info["disco_info"]["features"]
    (form,) = info["disco_info"].iterables
    assert form["values"]["max-file-size"] == str(MAX_FILE)


async def test_server_keeps_serving_after_refusals(setup: Setup) -> None:
    # A garbage PUT and a garbage slot request; then a normal upload still works.
    assert (await setup.raw("PUT", "/upload/x/y", {"Content-Length": "3"}, b"abc"))[0] == 403
    with pytest.raises(IqError):
        await setup.slot("a/b", 1)
    put_url, headers, get_url = await setup.slot("fine.txt", 2, "text/plain")
    assert (await setup.raw("PUT", put_url, {**headers, "Content-Length": "2"}, b"ok"))[0] \
        == 201
    assert (await asyncio.wait_for(setup.raw("GET", get_url), 10))[2] == b"ok"
