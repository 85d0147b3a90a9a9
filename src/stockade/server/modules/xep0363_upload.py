"""HTTP File Upload, XEP-0363, as a component on ``upload.<domain>`` with its HTTP routes.

A local user asks the component for a slot (§4) and gets a PUT and a GET URL on the HTTPS
listener (or http.public_url), ``/upload/<192-bit token>/<file name>``; the PUT must carry
the slot's Authorization header, its exact size and media type, before the slot expires,
and fills it once. Files live under ``data_dir/uploads/<token>/`` (directories 0700, files
0600), written to a temporary file and renamed into place; the slot rows are in storage
(``storage/upload.py``). A periodic sweep deletes expired slots and files, and files whose
slot is gone (a deleted account). The rules are the sans-I/O ``stockade.core.upload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.http import HTTPError, Request, Response
from stockade.core.stanza import Stanza, error_reply, result_reply
from stockade.core.upload import (
    CORS_HEADERS,
    CORS_PREFLIGHT_HEADERS,
    NS_DATA,
    NS_UPLOAD,
    TOKEN_BYTES,
    Usage,
    check_quota,
    download_headers,
    error_extension,
    is_token,
    parse_request,
    put_content_type,
    slot_path,
    token_of,
)
from stockade.core.xml import Element
from stockade.io.http import BodySink, FileResponse, HTTPListener
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import Component, HTTPEndpoint, Module, Registration, Spec
from stockade.server.modules.xep0030_disco import NS_INFO, NS_ITEMS
from stockade.server.session import Session
from stockade.storage.base import StorageError
from stockade.storage.upload import StoredUpload

if TYPE_CHECKING:
    from stockade.server.host import Host

log = logging.getLogger("stockade.upload")
SEC = StanzaErrorCondition
MIB = 1024 * 1024
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_SWEEP_INTERVAL_S = 60.0
_SWEEP_BATCH = 500
_FILE_NAME = "data"  # the stored file's name in its token directory (never the user's)
_ROUTE = "/upload/*"


def _label(value: Any) -> str | None:
    return None if _LABEL.fullmatch(value) else "must be one DNS label (a-z, 0-9, '-')"


register_section("upload", {
    "enabled": Option(bool, True, "Offer HTTP File Upload (XEP-0363) on "
                      "<subdomain>.<domain>, files served by the HTTP listeners."),
    "subdomain": Option(str, "upload", "The upload service's label in front of the domain.",
                        _label),
    "max_file_bytes": Option(int, 10 * MIB, "Largest file accepted (bytes).",
                             int_range(1, 1024 * 1024 * MIB)),
    "quota_bytes": Option(int, 100 * MIB, "Bytes of stored files and pending slots one "
                          "account may have at once.", int_range(1, 1024 * 1024 * MIB)),
    "expire_days": Option(int, 30, "Days an uploaded file is kept; 0: until its account is "
                          "deleted.", int_range(0, 36_500)),
    "slot_lifetime_s": Option(int, 300, "Seconds a slot waits for its upload to start.",
                              int_range(1, 86_400)),
    "max_pending_slots": Option(int, 10, "Slots one account may have waiting for an upload.",
                                int_range(1, 10_000)),
})


class HTTPUpload(Module):
    """XEP-0363 on the ``upload`` component and the ``/upload/`` HTTP routes."""

    name = "xep0363_upload"
    specs = (Spec("XEP-0363", "HTTP File Upload", "1.2.0", "complete",
                  "size limit, per-account quota, expiry; downloads of active types as "
                  "attachments; no purposes or byte ranges"),)
    depends = ("xep0030_disco",)
    config_section = "upload"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        options = self.options
        self.domain = f"{options['subdomain']}.{host.domain}"
        self.root = host.config.data_dir / "uploads"
        # A file larger than the quota could never be stored: it is too large outright.
        self.max_file_bytes = min(options["max_file_bytes"], options["quota_bytes"])
        self.clock = time.time  # wall-clock: slot times are stored and outlive the process
        self._pending: dict[str, StoredUpload] = {}  # slots awaiting their PUT
        self._uploading: set[str] = set()  # tokens whose PUT is in progress
        self._slot_lock = asyncio.Lock()  # one quota decision at a time
        self._listener_urls: list[str] = []  # base URLs of the HTTPS listeners
        self._sweeper: asyncio.Task[None] | None = None
        self.put_handler = _PutHandler(self)

    def registrations(self) -> Iterable[Registration]:
        """The component and the upload routes on every HTTP listener."""
        yield Component(self.options["subdomain"], "HTTP File Upload", self.on_stanza)
        yield HTTPEndpoint("PUT", _ROUTE, self.put_handler, self.max_file_bytes)
        yield HTTPEndpoint("GET", _ROUTE, self.on_get)
        yield HTTPEndpoint("OPTIONS", _ROUTE, self.on_options)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Create the upload directory, take up pending slots, start the sweeper."""
        await asyncio.to_thread(_make_private_dir, self.root)
        now = self.clock()
        for upload in await self.host.storage.list_pending_uploads():
            if upload.expires is None or upload.expires > now:
                self._pending[upload.token] = upload
        await self.sweep()
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def stop(self) -> None:
        """Stop the sweeper (uploads in progress end with their connections)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def listener_bound(self, listener: HTTPListener) -> None:
        """An HTTP listener is serving: HTTPS ones are where slot URLs point."""
        if listener.tls:
            self._listener_urls.append(listener.base_url)

    def base_url(self) -> str | None:
        """Where upload URLs point: http.public_url, else the first HTTPS listener.

        SECURITY: XEP-0363 §4 "The host MUST provide Transport Layer Security": a plain
        http:// URL is never handed out, and neither is one built from a request's Host.
        """
        public = self.host.config["http"]["public_url"]
        if public:
            return public.rstrip("/") if public.startswith("https://") else None
        return self._listener_urls[0] if self._listener_urls else None

    # ------------------------------------------------------------------ XMPP
    def on_stanza(self, stanza: Stanza, origin: Session | None) -> Awaitable[None] | None:
        """Everything addressed to the upload service."""
        if stanza.kind == "message":
            self.host.router.bounce(stanza, StanzaError(SEC.SERVICE_UNAVAILABLE))
            return None
        if stanza.kind != "iq" or stanza.type not in ("get", "set"):
            return None  # presence, results and errors: nothing to answer
        return self._answer(stanza, origin)

    async def _answer(self, iq: Stanza, origin: Session | None) -> None:
        try:
            reply = await self.handle_iq(iq, origin)
        except StanzaError as error:
            reply = _error_reply(iq, error)
        except Exception:
            log.exception("upload request failed", extra={"service": self.domain})
            reply = _error_reply(iq, StanzaError(SEC.INTERNAL_SERVER_ERROR))
        if iq.from_ is not None:
            self.host.router.deliver_local(iq.from_, reply)

    async def handle_iq(self, iq: Stanza, origin: Session | None) -> Element:
        """The answer to an IQ get/set (raises StanzaError for an error answer)."""
        payload = next(iq.element.elements(), None)
        tag = payload.tag if payload is not None else None
        if iq.to is not None and (iq.to.local is not None or iq.to.resource is not None):
            raise StanzaError(SEC.SERVICE_UNAVAILABLE)  # the service has no other JIDs
        if iq.type == "get" and tag == (NS_INFO, "query"):
            return self._disco_info(iq)
        if iq.type == "get" and tag == (NS_ITEMS, "query"):
            return result_reply(iq, self.domain, Element(NS_ITEMS, "query"))
        if iq.type == "get" and tag == (NS_UPLOAD, "request"):
            assert payload is not None
            return await self._request_slot(iq, origin, payload)
        raise StanzaError(SEC.SERVICE_UNAVAILABLE)

    def _disco_info(self, iq: Stanza) -> Element:
        """§3: the store/file identity, the feature and the size limit (XEP-0128 form)."""
        query_in = iq.element.find(NS_INFO, "query")
        if query_in is not None and query_in.get("node"):
            raise StanzaError(SEC.ITEM_NOT_FOUND)
        query = Element(NS_INFO, "query")
        query.sub(NS_INFO, "identity", {"category": "store", "type": "file",
                                        "name": "HTTP File Upload"})
        for var in (NS_INFO, NS_UPLOAD):
            query.sub(NS_INFO, "feature", {"var": var})
        form = query.sub(NS_DATA, "x", {"type": "result"})
        form_type = form.sub(NS_DATA, "field", {"var": "FORM_TYPE", "type": "hidden"})
        form_type.sub(NS_DATA, "value", text=NS_UPLOAD)
        size = form.sub(NS_DATA, "field", {"var": "max-file-size"})
        size.sub(NS_DATA, "value", text=str(self.max_file_bytes))
        return result_reply(iq, self.domain, query)

    async def _request_slot(self, iq: Stanza, origin: Session | None,
                            payload: Element) -> Element:
        """§4: a slot, or the §5 error."""
        sender = iq.from_
        if origin is None or sender is None or sender.domain != self.host.domain \
                or sender.local is None:
            raise StanzaError(SEC.FORBIDDEN, "only this server's users may upload")
        request = parse_request(payload, self.max_file_bytes)
        base = self.base_url()
        if base is None:
            log.warning("upload slot refused: no https listener or https public_url")
            raise StanzaError(SEC.SERVICE_UNAVAILABLE, "no HTTPS endpoint for uploads")
        secret = secrets.token_urlsafe(32)
        async with self._slot_lock:
            now = self.clock()
            mine = await self.host.storage.list_uploads(sender.local)
            check_quota([self._usage(u) for u in mine], request.size,
                        quota_bytes=self.options["quota_bytes"],
                        max_pending=self.options["max_pending_slots"], now=now)
            upload = StoredUpload(
                secrets.token_urlsafe(TOKEN_BYTES), sender.local, request.filename,
                request.size, request.content_type, _digest(secret), now,
                now + self.options["slot_lifetime_s"])
            await self.host.storage.add_upload(upload)
            self._pending[upload.token] = upload
        url = base + slot_path(upload.token, upload.filename)
        slot = Element(NS_UPLOAD, "slot")
        put = slot.sub(NS_UPLOAD, "put", {"url": url})
        # SECURITY: the GET URL is shared with the file's recipients; the PUT also needs
        # this secret, so none of them can replace the file before it is uploaded.
        put.sub(NS_UPLOAD, "header", {"name": "Authorization"}, text=f"Bearer {secret}")
        slot.sub(NS_UPLOAD, "get", {"url": url})
        log.info("upload slot", extra={"user": sender.local, "size": request.size})
        return result_reply(iq, self.domain, slot)

    def _usage(self, upload: StoredUpload) -> Usage:
        return Usage(upload.size, upload.expires, upload.is_pending,
                     upload.token in self._uploading)

    # ------------------------------------------------------------------ HTTP
    def check_put(self, request: Request) -> tuple[StoredUpload, str]:
        """The pending slot a PUT's head matches (§6), checked before any body byte, and
        the media type the file is stored as.

        Raises:
            HTTPError: 403 without a pending slot at this URL or without its secret (also
                after the slot expired), 409 while another PUT fills it, 400 for a size
                and 415 for a media type other than the slot's.
        """
        token = token_of(request.path)
        upload = self._pending.get(token) if token is not None else None
        if upload is None or slot_path(upload.token, upload.filename) != request.path:
            raise _http_error(403, "no upload slot at this URL")
        if upload.expires is not None and self.clock() >= upload.expires:
            raise _http_error(403, "the upload slot expired")
        if not _authorized(request.header("authorization"), upload.put_digest):
            raise _http_error(403, "wrong or missing Authorization")
        if upload.token in self._uploading:
            raise _http_error(409, "an upload into this slot is in progress")
        # §6: "The upload service MUST reject the file upload if the Content-Length does not
        # match the size of the slot request"; and "SHOULD reject the file if the
        # Content-Type has been specified beforehand and does not match".
        if request.content_length != upload.size:
            raise _http_error(400, "Content-Length differs from the slot's size")
        try:
            content_type = put_content_type(upload.content_type,
                                            request.header("content-type"))
        except ValueError:
            raise _http_error(415, "Content-Type differs from the slot's") from None
        return upload, content_type

    def open_put(self, request: Request) -> BodySink:
        """Where the body of a PUT that matches its slot goes.

        Raises:
            HTTPError: see :meth:`check_put`; 500 if no file can be created.
        """
        upload, content_type = self.check_put(request)
        try:
            file, part = _open_part(self.root / upload.token)
        except OSError:
            log.exception("cannot create an upload file", extra={"token": upload.token[:6]})
            raise _http_error(500, "cannot store the file") from None
        self._uploading.add(upload.token)
        return _FileSink(self, upload, content_type, file, part)

    async def finish_put(self, upload: StoredUpload, content_type: str,
                         part: Path) -> Response:
        """The whole body is in ``part`` (flushed, closed): move it into place, record it."""
        directory = self.root / upload.token
        try:
            await asyncio.to_thread(_commit, part, directory / _FILE_NAME)
            now = self.clock()
            days = self.options["expire_days"]
            expires = now + days * 86_400 if days else None
            stored = await self.host.storage.complete_upload(upload.token, now, expires,
                                                             content_type)
        except (OSError, StorageError):
            log.exception("storing an upload failed", extra={"token": upload.token[:6]})
            await asyncio.to_thread(_remove_dir, directory)
            raise _http_error(500, "cannot store the file") from None
        finally:
            self._uploading.discard(upload.token)
            self._pending.pop(upload.token, None)
        if not stored:  # the slot went meanwhile (its account was deleted)
            await asyncio.to_thread(_remove_dir, directory)
            raise _http_error(403, "the upload slot is gone")
        log.info("file uploaded", extra={"user": upload.username, "size": upload.size})
        # §6: "A HTTP status Code of 201 means that the server is now ready to serve the
        # file via the provided GET URL."
        return Response(201, (("Content-Type", "text/plain; charset=utf-8"), *CORS_HEADERS),
                        b"201 Created\n")

    def abort_put(self, upload: StoredUpload) -> None:
        """The PUT did not complete: the slot may be tried again until it expires."""
        self._uploading.discard(upload.token)

    async def on_get(self, request: Request, _body: bytes,
                     _listener: HTTPListener) -> FileResponse:
        """GET (and HEAD) of an uploaded file; 404 for anything else."""
        token = token_of(request.path)
        upload = await self.host.storage.get_upload(token) if token is not None else None
        if upload is None or upload.is_pending or \
                slot_path(upload.token, upload.filename) != request.path or \
                (upload.expires is not None and self.clock() >= upload.expires):
            raise _http_error(404, "no such file")
        try:
            file, length = await asyncio.to_thread(
                _open_stored, self.root / upload.token / _FILE_NAME)
        except FileNotFoundError:
            raise _http_error(404, "no such file") from None
        return FileResponse(200, download_headers(upload.content_type, upload.filename),
                            file, length)

    def on_options(self, _request: Request, _body: bytes, _listener: HTTPListener) -> Response:
        """A CORS preflight (XEP-0363 §7): web clients PUT from their own origin."""
        return Response(204, CORS_PREFLIGHT_HEADERS)

    # ------------------------------------------------------------------ expiry
    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except Exception:
                log.exception("upload sweep failed")

    async def sweep(self) -> int:
        """Delete expired slots with their files, then files whose slot is gone; returns
        how many slots went."""
        removed = 0
        while True:
            batch = await self.host.storage.expired_uploads(self.clock(), _SWEEP_BATCH)
            for upload in batch:
                if upload.token in self._uploading:
                    continue  # its PUT started in time; it finishes or fails first
                await self.host.storage.delete_upload(upload.token)
                self._pending.pop(upload.token, None)
                await asyncio.to_thread(_remove_dir, self.root / upload.token)
                removed += 1
            if len(batch) < _SWEEP_BATCH or all(u.token in self._uploading for u in batch):
                break
        await self._remove_orphans()
        if removed:
            log.info("expired uploads removed", extra={"count": removed})
        return removed

    async def _remove_orphans(self) -> None:
        # Listed before the tokens are read: a slot's row always exists before its
        # directory, so a directory without a row here really lost its slot.
        names = await asyncio.to_thread(_list_dir, self.root)
        if not names:
            return
        tokens = await self.host.storage.upload_tokens()
        for name in names:
            if name not in tokens and name not in self._uploading and is_token(name):
                await asyncio.to_thread(_remove_dir, self.root / name)


class _PutHandler:
    """The PUT route: bodies stream to a file (io.http.StreamingHandler), and it learns the
    listeners' URLs (io.http.ListenerObserver)."""

    def __init__(self, module: HTTPUpload) -> None:
        self.module = module

    def __call__(self, request: Request, _body: bytes, _listener: HTTPListener) -> Response:
        # Only a PUT without a body comes here: no slot is for zero bytes, so check_put
        # refuses it (with the same answers as a PUT with a body).
        self.module.check_put(request)
        raise _http_error(400, "Content-Length differs from the slot's size")

    def open_body(self, request: Request, _listener: HTTPListener) -> BodySink:
        return self.module.open_put(request)

    def listener_bound(self, listener: HTTPListener) -> None:
        self.module.listener_bound(listener)


class _FileSink:
    """A PUT body on its way to the slot's temporary file."""

    def __init__(self, module: HTTPUpload, upload: StoredUpload, content_type: str,
                 file: IO[bytes], part: Path) -> None:
        self.module = module
        self.upload = upload
        self.content_type = content_type
        self.file = file
        self.part = part

    def write(self, data: bytes) -> None:
        # Into the page cache at once (nothing held back in a buffer); the fsync happens
        # off the event loop, in finish().
        self.file.write(data)
        self.file.flush()

    async def finish(self) -> Response:
        try:
            await asyncio.to_thread(_sync_close, self.file)
        except OSError:
            self.abort()
            log.exception("writing an upload failed", extra={"token": self.upload.token[:6]})
            raise _http_error(500, "cannot store the file") from None
        return await self.module.finish_put(self.upload, self.content_type, self.part)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.part.unlink()
        self.module.abort_put(self.upload)


# ---------------------------------------------------------------------- helpers


def _error_reply(iq: Stanza, error: StanzaError) -> Element:
    """The §5 error: the stanza error with its urn:xmpp:http:upload:0 child, if any."""
    if error.app is None:
        error.app = error_extension(error)
    return error_reply(iq.element, error)


def _http_error(status: int, detail: str) -> HTTPError:
    # CORS on refusals too, or a web client cannot even see why its upload failed.
    return HTTPError(status, detail, CORS_HEADERS)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _authorized(header: str | None, digest: bytes) -> bool:
    if header is None or not header.startswith("Bearer "):
        return False
    try:
        presented = _digest(header[len("Bearer "):])
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(presented, digest)


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # also when it existed with wider permissions


def _open_part(directory: Path) -> tuple[IO[bytes], Path]:
    """A new temporary file (0600) in the slot's directory (0700), opened for writing."""
    directory.mkdir(mode=0o700, exist_ok=True)
    part = directory / f".part-{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(part, flags, 0o600)
    return os.fdopen(fd, "wb"), part


def _sync_close(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _commit(part: Path, final: Path) -> None:
    """Atomic: the file is either complete under its final name or not there at all."""
    os.replace(part, final)
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def _open_stored(path: Path) -> tuple[IO[bytes], int]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    file = os.fdopen(fd, "rb")
    return file, os.fstat(fd).st_size


def _remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _list_dir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


MODULES = (HTTPUpload,)
