"""XEP-0363 HTTP File Upload rules, sans-I/O: slot requests (§4), their errors (§5), the
URL of a slot, quotas, and what a stored file may be served as.

The service (``server.modules.xep0363_upload``) does the I/O; everything here is a pure
function of its arguments (time comes in as ``now``).
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from stockade.core.errors import ErrorType, StanzaError, StanzaErrorCondition
from stockade.core.xml import Element

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_DATA = "jabber:x:data"
URL_PREFIX = "/upload/"
TOKEN_BYTES = 24  # 192 bits of randomness in every URL (secrets.token_urlsafe)
MAX_FILENAME_BYTES = 255  # UTF-8; what common file systems allow for one name
MAX_CONTENT_TYPE_CHARS = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_SIZE = re.compile(r"[0-9]{1,18}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")  # token_urlsafe(24): 32 characters
_MEDIA_NAME = r"[A-Za-z0-9!#$&^_.+-]{1,127}"
_MEDIA_TYPE = re.compile(rf"({_MEDIA_NAME})/({_MEDIA_NAME})((?:[ \t]*;[ \t]*[^;]*)*)")
_PARAMETER = re.compile(rf"({_MEDIA_NAME})=({_MEDIA_NAME}|\"[\x20\x21\x23-\x5b\x5d-\x7e]*\")")
# SECURITY: bidirectional controls make "gpj.exe" display as "exe.jpg" (CVE-2021-42574 class
# of spoofing); no file name needs them.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069\u061c")

# Shown by browsers as themselves, without running anything: served inline.
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
                           "image/heic", "image/heif", "image/bmp", "text/plain"})
_INLINE_PREFIXES = ("audio/", "video/")
# SECURITY: types a browser would run (script, markup that can carry script, plugins); a
# file uploaded as one of them, served as itself from our origin, is stored XSS.
_ACTIVE_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
    "text/xsl", "application/xslt+xml", "text/css", "application/pdf",
    "application/x-shockwave-flash", "application/java-archive", "multipart/x-mixed-replace",
    "text/vtt", "application/wasm", "text/cache-manifest", "application/manifest+json",
})

#: Headers of every download: no sniffing into an active type, and a document that can do
#: nothing even if a browser renders it (no script, no requests, no forms, no framing).
SAFE_DOWNLOAD_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox"),
    ("Referrer-Policy", "no-referrer"),
)

#: XEP-0363 §7: web clients upload and download from another origin. Nothing here is
#: credentialed (no cookies; the PUT secret is the Authorization header the slot names), so
#: any origin may.
CORS_HEADERS: tuple[tuple[str, str], ...] = (("Access-Control-Allow-Origin", "*"),)
CORS_PREFLIGHT_HEADERS: tuple[tuple[str, str], ...] = (
    *CORS_HEADERS,
    ("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS"),
    ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
    ("Access-Control-Max-Age", "86400"),
)


# ---------------------------------------------------------------------- errors (§5)


class FileTooLarge(StanzaError):
    """§5: the file is larger than the service takes; the error carries the limit."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(StanzaErrorCondition.NOT_ACCEPTABLE,
                         f"File too large. The maximum file size is {max_bytes} bytes",
                         ErrorType.MODIFY)
        self.max_bytes = max_bytes


class UploadQuotaExceeded(StanzaError):
    """§5: a temporary refusal (quota, too many pending slots); ``retry_at`` is when trying
    again can succeed (None: not before the user deletes something, which they cannot)."""

    def __init__(self, text: str, retry_at: float | None) -> None:
        super().__init__(StanzaErrorCondition.RESOURCE_CONSTRAINT, text, ErrorType.WAIT)
        self.retry_at = retry_at


def error_extension(error: StanzaError) -> Element | None:
    """The urn:xmpp:http:upload:0 child of ``<error/>`` for ``error`` (§5), if any."""
    if isinstance(error, FileTooLarge):
        el = Element(NS_UPLOAD, "file-too-large")
        el.sub(NS_UPLOAD, "max-file-size", text=str(error.max_bytes))
        return el
    if isinstance(error, UploadQuotaExceeded) and error.retry_at is not None:
        # "The format of the timestamp MUST adhere to the date-time format specified in
        # XEP-0082 and MUST be expressed in UTC." Rounded up: never earlier than the truth.
        return Element(NS_UPLOAD, "retry", {"stamp": xep0082_seconds(math.ceil(error.retry_at))})
    return None


def xep0082_seconds(stamp: float) -> str:
    """A XEP-0082 DateTime in UTC, to the second."""
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- slot requests (§4)


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """A checked slot request: a safe file name, a size the service takes, a media type
    ("" if the request named none: the PUT's Content-Type decides)."""

    filename: str
    size: int
    content_type: str


def bad_request(text: str) -> StanzaError:
    """The refusal of a malformed request (the client can fix it)."""
    return StanzaError(StanzaErrorCondition.BAD_REQUEST, text)


def parse_request(request: Element, max_file_bytes: int) -> SlotRequest:
    """Check a ``<request/>`` (§4): filename and size are required, content-type optional.

    Raises:
        StanzaError: bad-request for a missing or malformed attribute or a file name that
            could not be a plain file name; FileTooLarge for a size over the limit.
    """
    filename, size_text = request.get("filename"), request.get("size")
    if filename is None or size_text is None:
        raise bad_request("filename and size are required")
    if not _SIZE.fullmatch(size_text):
        raise bad_request("size must be a number of bytes")
    size = int(size_text)
    if size <= 0:
        raise bad_request("size must be at least one byte")
    if size > max_file_bytes:
        raise FileTooLarge(max_file_bytes)
    content_type = request.get("content-type")
    media = "" if not content_type else normalize_media_type(content_type)
    if media is None:
        raise bad_request("content-type is not a media type")
    return SlotRequest(sanitize_filename(filename), size, media)


def put_content_type(promised: str, header: str | None) -> str:
    """The media type a PUT stores its file as (§6), given the slot's (``promised``, ""
    if the slot request named none) and the PUT's Content-Type header.

    "The service SHOULD reject the file if the Content-Type has been specified beforehand
    and does not match. The service MAY assume application/octet-stream as a Content-Type
    if the client did not specify a Content-Type at all."

    Raises:
        ValueError: the header differs from the promised type, or is no media type.
    """
    if header is None:
        return promised or DEFAULT_CONTENT_TYPE
    media = normalize_media_type(header)
    if media is None or (promised and media != promised):
        raise ValueError("Content-Type differs from the slot's")
    return media


def sanitize_filename(name: str) -> str:
    """The file name as it goes into the URL (before percent-encoding).

    The name becomes one URL path segment and never a path on disk (files are stored under
    fixed names), so anything that is no plain name is refused rather than rewritten: a
    client must not find its file under a name it did not choose.

    Raises:
        StanzaError: bad-request for an empty or too long name, a path (separators, "."
            and ".."), control characters or bidirectional overrides.
    """
    name = unicodedata.normalize("NFC", name)
    if not name or len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        raise bad_request(f"filename must be 1 to {MAX_FILENAME_BYTES} bytes")
    # SECURITY: path traversal ("../../x", "a/b", "..\\x" for Windows downloaders).
    if "/" in name or "\\" in name or name in (".", ".."):
        raise bad_request("filename must not be a path")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS:
            raise bad_request("filename contains control characters")
    if name != name.strip():
        raise bad_request("filename must not start or end with white space")
    return name


def normalize_media_type(value: str) -> str | None:
    """``type/subtype`` lower-cased with its parameters as ``; name=value``, or None if
    ``value`` is no media type (RFC 9110 §8.3.1). Used to compare a PUT's Content-Type with
    the slot's, and safe to send as a header (no CR, LF or other controls)."""
    if len(value) > MAX_CONTENT_TYPE_CHARS:
        return None
    match = _MEDIA_TYPE.fullmatch(value.strip())
    if match is None:
        return None
    kind = f"{match.group(1)}/{match.group(2)}".lower()
    params = []
    for part in match.group(3).split(";")[1:]:
        param = _PARAMETER.fullmatch(part.strip())
        if param is None:
            return None
        params.append(f"{param.group(1).lower()}={param.group(2)}")
    return "; ".join([kind, *params])


# ---------------------------------------------------------------------- URLs


def slot_path(token: str, filename: str) -> str:
    """The path of a slot's PUT and GET URL: ``/upload/<token>/<percent-encoded name>``."""
    return f"{URL_PREFIX}{token}/{quote(filename, safe='')}"


def is_token(text: str) -> bool:
    """Whether ``text`` is shaped like a slot token (what the service's directories are
    named; nothing else in the upload directory is touched)."""
    return _TOKEN.fullmatch(text) is not None


def token_of(path: str) -> str | None:
    """The token in an upload URL path, or None if the path is not shaped like one (the
    caller still compares the whole path with the slot's)."""
    if not path.startswith(URL_PREFIX):
        return None
    token, slash, name = path[len(URL_PREFIX):].partition("/")
    if not slash or not name or "/" in name or not _TOKEN.fullmatch(token):
        return None
    return token


# ---------------------------------------------------------------------- quotas


@dataclass(frozen=True, slots=True)
class Usage:
    """One slot of an account as the quota sees it."""

    size: int
    expires: float | None  # pending: PUT deadline; completed: file expiry; None: never
    pending: bool
    uploading: bool = False  # a PUT is in progress (counts even past its deadline)


def check_quota(uploads: Sequence[Usage], size: int, *, quota_bytes: int, max_pending: int,
                now: float) -> None:
    """Whether an account may have one more slot of ``size`` bytes. Completed files and
    pending slots both count, until they expire.

    Raises:
        UploadQuotaExceeded: too many pending slots, or the bytes would exceed the quota;
            with the moment enough of them will have expired (if any will).
    """
    live = [u for u in uploads if u.uploading or u.expires is None or u.expires > now]
    pending = [u for u in live if u.pending]
    if len(pending) >= max_pending:
        ends = [u.expires for u in pending if u.expires is not None and not u.uploading]
        raise UploadQuotaExceeded(f"at most {max_pending} slots may wait for an upload",
                                  min(ends) if ends else None)
    used = sum(u.size for u in live)
    if used + size <= quota_bytes:
        return
    freed = 0
    for upload in sorted((u for u in live if u.expires is not None and not u.uploading),
                         key=lambda u: u.expires or 0.0):
        freed += upload.size
        if used - freed + size <= quota_bytes:
            raise UploadQuotaExceeded("upload quota reached", upload.expires)
    raise UploadQuotaExceeded("upload quota reached", None)


# ---------------------------------------------------------------------- downloads


def download_headers(content_type: str, filename: str) -> tuple[tuple[str, str], ...]:
    """Content-Type and Content-Disposition of a stored file, with the safety headers.

    SECURITY: a file is served as its own type inline only if browsers merely display that
    type; a type they would run (HTML, SVG, XML, script, PDF, ...) goes out as
    application/octet-stream, and everything but the inline types as an attachment.
    """
    media = normalize_media_type(content_type) or DEFAULT_CONTENT_TYPE
    kind = media.partition(";")[0]
    encoded = quote(filename, safe="")
    if kind in _INLINE_TYPES or kind.startswith(_INLINE_PREFIXES):
        served, disposition = media, "inline"
    elif _is_active(kind):
        served, disposition = DEFAULT_CONTENT_TYPE, "attachment"
    else:
        served, disposition = media, "attachment"
    return (("Content-Type", served),
            # RFC 6266 §4.3 with the RFC 8187 encoding: any name, nothing to escape wrongly.
            ("Content-Disposition", f"{disposition}; filename*=UTF-8''{encoded}"),
            *SAFE_DOWNLOAD_HEADERS, *CORS_HEADERS)


def _is_active(kind: str) -> bool:
    subtype = kind.partition("/")[2]
    return (kind in _ACTIVE_TYPES or subtype.endswith("+xml") or "script" in kind
            or subtype in ("xml", "html"))
