"""XEP-0363 rules (stockade.core.upload) and the upload module on a real host with SQLite:
file names, slot requests and their errors, URLs, quotas, download headers, prefix routes,
who may ask, and the expiry sweep."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockade.core.errors import ErrorType, StanzaError, StanzaErrorCondition
from stockade.core.http import HTTPError, RequestParser, Routes
from stockade.core.stanza import NS_CLIENT, Stanza, parse_stanza
from stockade.core.upload import (
    DEFAULT_CONTENT_TYPE,
    NS_UPLOAD,
    FileTooLarge,
    UploadQuotaExceeded,
    Usage,
    check_quota,
    download_headers,
    error_extension,
    normalize_media_type,
    parse_request,
    put_content_type,
    sanitize_filename,
    slot_path,
    token_of,
)
from stockade.core.xml import Element
from stockade.io.http import HTTPListener
from stockade.server.host import Host
from stockade.server.modules.xep0363_upload import HTTPUpload
from stockade.storage.upload import StoredUpload
from tests.server.small_modules import DOMAIN, condition, open_host, query
from tests.server.test_routing import online

SERVICE = f"upload.{DOMAIN}"
NS_INFO = "http://jabber.org/protocol/disco#info"
TOKEN = "T" * 32
NOW = 1_700_000_000.0


# ---------------------------------------------------------------------- file names


@pytest.mark.parametrize("name", ["cat.jpg", "Фото 1.jpg", ".hidden", "a..b", "100%.txt",
                                  "what?#.txt", "x" * 255, "日本" * 42])
def test_plain_file_names_are_kept(name: str) -> None:
    assert sanitize_filename(name) == name


def test_file_names_are_nfc() -> None:
    assert sanitize_filename("re\u0301sume\u0301.pdf") == "r\u00e9sum\u00e9.pdf"


@pytest.mark.parametrize("name", [
    "", ".", "..", "../etc/passwd", "a/b", "a\\b", "..\\..\\boot.ini", "nul\x00.txt",
    "tab\t.txt", "new\nline", "del\x7f", "c1\u0085.txt", "invoice\u202egpj.exe",
    "iso\u2066late", " lead.txt", "trail.txt ", "x" * 256, "日本" * 43,
])
def test_paths_control_characters_and_overlong_names_are_bad_requests(name: str) -> None:
    with pytest.raises(StanzaError) as refused:
        sanitize_filename(name)
    assert refused.value.condition is StanzaErrorCondition.BAD_REQUEST


# ---------------------------------------------------------------------- slot requests


def request(**attrs: str) -> Element:
    return Element(NS_UPLOAD, "request", attrs)


def test_a_request_becomes_a_slot_request() -> None:
    got = parse_request(request(filename="a.png", size="007", **{"content-type": "Image/PNG"}),
                        100)
    assert (got.filename, got.size, got.content_type) == ("a.png", 7, "image/png")
    # content-type is optional (§4): the PUT's then decides (§6).
    assert parse_request(request(filename="a", size="100"), 100).content_type == ""


@pytest.mark.parametrize(("promised", "header", "stored"), [
    ("image/png", None, "image/png"), ("image/png", "IMAGE/PNG", "image/png"),
    ("", "text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    ("", None, DEFAULT_CONTENT_TYPE),
    ("image/png", "text/html", None), ("", "not a type", None), ("image/png", "", None),
])
def test_put_content_type_must_keep_the_promise(promised: str, header: str | None,
                                                 stored: str | None) -> None:
    if stored is None:
        with pytest.raises(ValueError, match="differs"):
            put_content_type(promised, header)
    else:
        assert put_content_type(promised, header) == stored


@pytest.mark.parametrize("attrs", [
    {"size": "5"}, {"filename": "a"}, {"filename": "a", "size": "0"},
    {"filename": "a", "size": "-5"}, {"filename": "a", "size": "+5"},
    {"filename": "a", "size": " 5"}, {"filename": "a", "size": "1e3"},
    {"filename": "a", "size": "9" * 19}, {"filename": "../a", "size": "5"},
    {"filename": "a", "size": "5", "content-type": "text"},
    {"filename": "a", "size": "5", "content-type": "text/plain\r\nX-Evil: 1"},
    {"filename": "a", "size": "5", "content-type": "text/plain; charset"},
])
def test_malformed_requests_are_bad_requests(attrs: dict[str, str]) -> None:
    with pytest.raises(StanzaError) as refused:
        parse_request(request(**attrs), 100)
    assert refused.value.condition is StanzaErrorCondition.BAD_REQUEST


def test_too_large_is_not_acceptable_with_the_limit() -> None:
    with pytest.raises(FileTooLarge) as refused:
        parse_request(request(filename="a", size="101"), 100)
    error = refused.value
    assert (error.condition, error.type) == (StanzaErrorCondition.NOT_ACCEPTABLE,
                                             ErrorType.MODIFY)
    extension = error_extension(error)
    assert extension is not None and extension.tag == (NS_UPLOAD, "file-too-large")
    limit = extension.find(NS_UPLOAD, "max-file-size")
    assert limit is not None and limit.text == "100"


@pytest.mark.parametrize(("value", "normal"), [
    ("text/plain", "text/plain"), ("TEXT/Plain ;Charset=UTF-8", "text/plain; charset=UTF-8"),
    ('multipart/mixed; boundary="a b"', 'multipart/mixed; boundary="a b"'),
    ("text", None), ("text/", None), ("a/b/c", None), ("text/plain; x", None),
    ("text/plain\x00", None), ("a" * 200 + "/" + "b" * 60, None),
])
def test_media_types_are_normalised_or_refused(value: str, normal: str | None) -> None:
    assert normalize_media_type(value) == normal


# ---------------------------------------------------------------------- URLs


def test_slot_paths_percent_encode_the_name_and_give_back_the_token() -> None:
    path = slot_path(TOKEN, "my photo?#/.jpg")
    assert path == f"/upload/{TOKEN}/my%20photo%3F%23%2F.jpg"
    assert token_of(path) == TOKEN
    # Exactly what the HTTP parser accepts as a request target.
    parsed = RequestParser().feed(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert parsed is not None and parsed.path == path


@pytest.mark.parametrize("path", [
    "/upload/", f"/upload/{TOKEN}", f"/upload/{TOKEN}/", f"/upload/{TOKEN}/a/b",
    f"/other/{TOKEN}/a", "/upload/short/a", "/upload/../a", f"/upload/{TOKEN}x/a",
    "/upload/" + "T" * 31 + "!/a",
])
def test_other_paths_have_no_token(path: str) -> None:
    assert token_of(path) is None


# ---------------------------------------------------------------------- quotas


def test_pending_slots_are_limited_until_the_first_expires() -> None:
    pending = [Usage(1, NOW + 30, True), Usage(1, NOW + 10, True)]
    check_quota(pending, 1, quota_bytes=100, max_pending=3, now=NOW)
    with pytest.raises(UploadQuotaExceeded) as refused:
        check_quota(pending, 1, quota_bytes=100, max_pending=2, now=NOW)
    assert refused.value.retry_at == NOW + 10
    assert refused.value.type is ErrorType.WAIT
    # Expired slots do not count; a slot being uploaded into does, even past its deadline.
    check_quota([Usage(1, NOW - 1, True)] * 5, 1, quota_bytes=100, max_pending=1, now=NOW)
    with pytest.raises(UploadQuotaExceeded):
        check_quota([Usage(1, NOW - 1, True, uploading=True)], 1, quota_bytes=100,
                    max_pending=1, now=NOW)


def test_quota_counts_files_and_pending_slots_and_says_when_room_comes() -> None:
    uploads = [Usage(40, None, False), Usage(30, NOW + 500, False), Usage(20, NOW + 100, True),
               Usage(50, NOW - 1, False)]  # expired: not counted
    check_quota(uploads, 10, quota_bytes=100, max_pending=5, now=NOW)
    with pytest.raises(UploadQuotaExceeded) as refused:
        check_quota(uploads, 15, quota_bytes=100, max_pending=5, now=NOW)
    assert refused.value.retry_at == NOW + 100  # the pending 20 bytes free enough
    with pytest.raises(UploadQuotaExceeded) as refused:
        check_quota(uploads, 45, quota_bytes=100, max_pending=5, now=NOW)
    assert refused.value.retry_at == NOW + 500  # both expiring ones are needed
    with pytest.raises(UploadQuotaExceeded) as refused:
        check_quota(uploads, 61, quota_bytes=100, max_pending=5, now=NOW)
    assert refused.value.retry_at is None  # 40 bytes never expire
    assert error_extension(refused.value) is None


def test_retry_stamp_is_xep0082_utc_rounded_up() -> None:
    extension = error_extension(UploadQuotaExceeded("full", 1_512_344_524.2))
    assert extension is not None and extension.tag == (NS_UPLOAD, "retry")
    assert extension.get("stamp") == "2017-12-03T23:42:05Z"


# ---------------------------------------------------------------------- downloads


def headers_of(content_type: str, name: str = "f.bin") -> dict[str, str]:
    return dict(download_headers(content_type, name))


@pytest.mark.parametrize("content_type", [
    "text/html", "TEXT/HTML; charset=utf-8", "image/svg+xml", "application/xhtml+xml",
    "text/xml", "application/xml", "application/rss+xml", "text/javascript",
    "application/javascript", "application/x-shockwave-flash", "application/pdf", "text/css",
    "not a type",
])
def test_active_content_is_served_as_an_octet_stream_attachment(content_type: str) -> None:
    headers = headers_of(content_type, "page one.html")
    assert headers["Content-Type"] == DEFAULT_CONTENT_TYPE
    assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''page%20one.html"


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "video/mp4", "audio/ogg",
                                          "text/plain; charset=utf-8"])
def test_passive_media_is_served_inline_as_itself(content_type: str) -> None:
    headers = headers_of(content_type)
    assert headers["Content-Type"] == content_type
    assert headers["Content-Disposition"].startswith("inline;")


def test_other_types_keep_their_type_as_attachments_and_every_download_is_defused() -> None:
    headers = headers_of("application/zip")
    assert headers["Content-Type"] == "application/zip"
    assert headers["Content-Disposition"].startswith("attachment;")
    for content_type in ("application/zip", "image/png", "text/html"):
        headers = headers_of(content_type)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "sandbox" in headers["Content-Security-Policy"]
        assert headers["Access-Control-Allow-Origin"] == "*"


# ---------------------------------------------------------------------- prefix routes


def parse(line: str) -> object:
    request = RequestParser().feed(f"{line} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert request is not None
    return request


def test_prefix_routes() -> None:
    routes: Routes[str] = Routes()
    routes.add("GET", "/up/*", "get-up")
    routes.add("GET", "/up/deep/*", "get-deep")
    routes.add("PUT", "/up/*", "put-up")
    routes.add("GET", "/up/exact", "exact")
    assert routes.resolve(parse("GET /up/a/b")) == "get-up"  # type: ignore[arg-type]
    assert routes.resolve(parse("GET /up/deep/x")) == "get-deep"  # type: ignore[arg-type]
    assert routes.resolve(parse("GET /up/exact")) == "exact"  # type: ignore[arg-type]
    assert routes.resolve(parse("HEAD /up/a")) == "get-up"  # type: ignore[arg-type]
    assert routes.resolve(parse("PUT /up/a")) == "put-up"  # type: ignore[arg-type]
    with pytest.raises(HTTPError) as refused:
        routes.resolve(parse("POST /up/a"))  # type: ignore[arg-type]
    assert refused.value.status == 405
    assert refused.value.headers == (("Allow", "GET, HEAD, PUT"),)
    with pytest.raises(HTTPError) as refused:
        routes.resolve(parse("GET /upx"))  # type: ignore[arg-type]
    assert refused.value.status == 404
    with pytest.raises(ValueError, match="twice"):
        routes.add("PUT", "/up/*", "again")
    assert "get-up" in routes.values() and "exact" in routes.values()


# ---------------------------------------------------------------------- the module


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = {"upload": {"max_file_bytes": 1000, "quota_bytes": 5000, "expire_days": 1}}
    async with open_host(tmp_path, "juliet", "romeo", config=config) as host:
        yield host


def upload_module(host: Host) -> HTTPUpload:
    module = host.modules["xep0363_upload"]
    assert isinstance(module, HTTPUpload)
    return module


def https_listener(port: int = 5443) -> HTTPListener:
    listener = HTTPListener(tls=True, websocket_path="/ws", allowed_origins=[],
                            public_url="", domain=DOMAIN)
    listener.bound(("127.0.0.1", port))
    return listener


async def test_slot_urls_point_at_the_https_listener(host: Host) -> None:
    module = upload_module(host)
    session, conn = await online(host, "juliet", "balcony")
    ask = request(filename="rose.png", size="10", **{"content-type": "image/png"})
    reply = await query(host, session, conn, "get", ask, SERVICE)
    assert condition(reply) == "service-unavailable"  # no HTTPS listener yet: no plain URL
    module.listener_bound(HTTPListener(tls=False, websocket_path="/ws", allowed_origins=[],
                                       public_url="", domain=DOMAIN))
    module.listener_bound(https_listener())
    reply = await query(host, session, conn, "get", ask, SERVICE)
    assert reply.get("type") == "result" and reply.get("from") == SERVICE
    slot = reply.find(NS_UPLOAD, "slot")
    assert slot is not None
    put, get = slot.find(NS_UPLOAD, "put"), slot.find(NS_UPLOAD, "get")
    assert put is not None and get is not None
    url = get.get("url") or ""
    assert url == put.get("url") and url.startswith(f"https://{DOMAIN}:5443/upload/")
    assert url.endswith("/rose.png")
    (header,) = put.find_all(NS_UPLOAD, "header")
    assert header.get("name") == "Authorization" and header.text.startswith("Bearer ")
    (stored,) = await host.storage.list_uploads("juliet")
    assert (stored.size, stored.content_type, stored.is_pending) == (10, "image/png", True)
    assert header.text.removeprefix("Bearer ") not in repr(stored)  # only its digest


@pytest.mark.parametrize(("public_url", "base"), [
    ("https://files.example.com/", "https://files.example.com"), ("http://local:80", None)])
async def test_public_url_wins_but_only_over_https(tmp_path: Path, public_url: str,
                                                   base: str | None) -> None:
    async with open_host(tmp_path, "juliet",
                         config={"http": {"public_url": public_url}}) as host:
        module = upload_module(host)
        module.listener_bound(https_listener())
        assert module.base_url() == base


def iq_from(sender: str, payload: Element) -> Stanza:
    el = Element(NS_CLIENT, "iq", {"type": "get", "id": "u1", "to": SERVICE, "from": sender})
    el.append(payload)
    return parse_stanza(el)


async def test_only_local_users_get_slots(host: Host) -> None:
    module = upload_module(host)
    module.listener_bound(https_listener())
    ask = request(filename="a.txt", size="5")
    for sender, origin in (("mallory@evil.example/x", None), (f"{DOMAIN}", None)):
        with pytest.raises(StanzaError) as refused:
            await module.handle_iq(iq_from(sender, ask), origin)
        assert refused.value.condition is StanzaErrorCondition.FORBIDDEN
    session, _ = await online(host, "romeo", "r")
    element = await module.handle_iq(iq_from(str(session.jid), ask), session)
    assert element.find(NS_UPLOAD, "slot") is not None


async def test_disco_info_and_errors_of_the_component(host: Host) -> None:
    session, conn = await online(host, "juliet", "balcony")
    info = await query(host, session, conn, "get",
                       Element(NS_INFO, "query"), SERVICE)
    query_el = info.find(NS_INFO, "query")
    assert query_el is not None
    identity = query_el.find(NS_INFO, "identity")
    assert identity is not None and (identity.get("category"), identity.get("type")) == (
        "store", "file")
    assert NS_UPLOAD in [f.get("var") for f in query_el.find_all(NS_INFO, "feature")]
    form = query_el.find("jabber:x:data", "x")
    assert form is not None
    fields = {f.get("var"): f.find("jabber:x:data", "value") for f in form.elements()}
    size, form_type = fields["max-file-size"], fields["FORM_TYPE"]
    assert size is not None and size.text == "1000"
    assert form_type is not None and form_type.text == NS_UPLOAD
    too_big = await query(host, session, conn, "get", request(filename="a", size="1001"),
                          SERVICE)
    assert condition(too_big) == "not-acceptable"
    error = too_big.find(NS_CLIENT, "error")
    assert error is not None and error.find(NS_UPLOAD, "file-too-large") is not None
    unknown = await query(host, session, conn, "get", Element("urn:x:nothing", "q"), SERVICE)
    assert condition(unknown) == "service-unavailable"


def stored(token: str, *, expires: float | None, completed: float | None) -> StoredUpload:
    return StoredUpload(token, "juliet", "f.txt", 3, "text/plain", b"d" * 32, NOW - 10,
                        expires, completed)


async def test_sweep_removes_expired_slots_files_and_orphans(host: Host) -> None:
    module = upload_module(host)
    root = module.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    rows = {"A" * 32: stored("A" * 32, expires=NOW - 1, completed=NOW - 5),  # file expired
            "B" * 32: stored("B" * 32, expires=NOW + 99, completed=NOW - 5),  # file kept
            "C" * 32: stored("C" * 32, expires=NOW - 1, completed=None),  # slot expired
            "D" * 32: stored("D" * 32, expires=None, completed=NOW - 5),  # kept for ever
            "E" * 32: stored("E" * 32, expires=NOW - 1, completed=None)}  # PUT in progress
    for token, row in rows.items():
        await host.storage.add_upload(row)
        (root / token).mkdir()
        (root / token / "data").write_bytes(b"abc")
    (root / ("O" * 32)).mkdir()  # a file whose slot went with its account
    (root / "README").write_text("not ours")  # not shaped like a token: left alone
    module._uploading.add("E" * 32)
    module.clock = lambda: NOW

    assert await module.sweep() == 2
    left = {p.name for p in root.iterdir()}
    assert left == {"B" * 32, "D" * 32, "E" * 32, "README"}
    assert await host.storage.upload_tokens() == {"B" * 32, "D" * 32, "E" * 32}


async def test_a_completed_upload_gets_its_expiry(host: Host, tmp_path: Path) -> None:
    module = upload_module(host)
    module.clock = lambda: NOW
    row = stored(TOKEN, expires=NOW + 300, completed=None)
    await host.storage.add_upload(row)
    module._pending[TOKEN] = row
    part = module.root / TOKEN / ".part-x"
    part.parent.mkdir()
    part.write_bytes(b"abc")
    response = await module.finish_put(row, "text/plain", part)
    assert response.status == 201
    done = await host.storage.get_upload(TOKEN)
    assert done is not None and (done.completed, done.expires) == (NOW, NOW + 86_400)
    assert done.content_type == "text/plain"
    assert (module.root / TOKEN / "data").read_bytes() == b"abc"
    assert not part.exists() and TOKEN not in module._pending


async def test_pending_slots_survive_a_restart(tmp_path: Path) -> None:
    async with open_host(tmp_path, "juliet") as host:
        await host.storage.add_upload(stored(TOKEN, expires=2 * NOW, completed=None))
    async with open_host(tmp_path) as host:
        module = upload_module(host)
        parsed = RequestParser().feed(
            f"PUT {slot_path(TOKEN, 'f.txt')} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
            "Authorization: Bearer wrong\r\n\r\n".encode())
        assert parsed is not None
        with pytest.raises(HTTPError) as refused:
            module.check_put(parsed)
        # Known again after the restart: refused for the secret, not for a missing slot.
        assert refused.value.detail == "wrong or missing Authorization"
    assert not os.listdir(tmp_path / "uploads")

