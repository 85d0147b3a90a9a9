"""TLS on memory BIOs, driven by the connection's own ``asyncio.Protocol``.

Why not ``loop.start_tls()``: asyncio (and uvloop) drop OpenSSL's pending fatal alert when a
handshake fails (CPython gh-98078), so refused clients would see a bare TCP close instead of
the alert RFC 8446 §4.1.1 requires; and a protocol switch in the middle of a connection opens
a window in which decrypted bytes race the switch. Here the connection decides, byte for
byte, which input is plaintext and which is TLS.
"""

from __future__ import annotations

import ssl


class TLSFailed(Exception):
    """The TLS layer failed; ``alert`` holds the bytes to send before closing (an alert)."""

    def __init__(self, reason: str, alert: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.alert = alert


class TLSLayer:
    """Server-side TLS over memory BIOs: ciphertext in and out, plaintext in and out."""

    __slots__ = ("_in", "_obj", "_out", "is_closed", "is_established")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=True)
        self.is_established = False
        self.is_closed = False  # the peer sent close_notify

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The underlying object (peer certificate, negotiated version)."""
        return self._obj

    def receive(self, data: bytes) -> tuple[bytes, bool, bytes]:
        """Feed ciphertext. Returns (plaintext, handshake completed now, bytes to send).

        Raises:
            TLSFailed: handshake or record error; send ``alert`` and close.
        """
        self._in.write(data)
        completed = False
        try:
            if not self.is_established:
                if not self._handshake():
                    return b"", False, self._out.read()
                completed = self.is_established = True
            return self._read_plaintext(), completed, self._out.read()
        except ssl.SSLError as exc:
            raise TLSFailed(exc.reason or type(exc).__name__, self._out.read()) from None

    def _handshake(self) -> bool:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def _read_plaintext(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.is_closed = True
                break
            if not chunk:
                # CPython's SSLObject returns b"" (not SSLZeroReturnError) once the peer's
                # close_notify has been read; without data it raises SSLWantReadError.
                self.is_closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> bytes:
        """Encrypt application data; returns the records to write (nothing once closed)."""
        try:
            self._obj.write(plaintext)
        except ssl.SSLError:
            return b""  # the session is shut down: there is no channel left to write on
        return self._out.read()

    def close(self) -> bytes:
        """Our close_notify (best effort), as bytes to write."""
        if self.is_established:
            try:
                self._obj.unwrap()
            except ssl.SSLError:
                pass  # the peer's close_notify has not arrived: we do not wait for it
        return self._out.read()
