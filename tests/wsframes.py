"""WebSocket frames built by hand for tests (RFC 6455 §5.2), written apart from the server's
codec so that a bug in one is not mirrored in the other: client frames of any shape, valid
or not, and a reader for the server's frames."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True,
                 rsv: int = 0, length_bytes: int | None = None) -> bytes:
    """One client frame. ``length_bytes`` forces 0 (7-bit), 2 or 8 length bytes, so that
    non-minimal encodings can be sent; ``rsv`` is the 3-bit RSV1-3 field."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    mask_bit = 0x80 if masked else 0
    if length_bytes == 0:
        head = bytes([first, mask_bit | n])
    elif length_bytes == 2:
        head = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(message: str | bytes, **kwargs: object) -> bytes:
    """A masked text frame."""
    data = message.encode() if isinstance(message, str) else message
    return client_frame(TEXT, data, **kwargs)  # type: ignore[arg-type]


def close(code: int | None = 1000, reason: bytes = b"") -> bytes:
    """A masked Close frame (no payload if ``code`` is None)."""
    payload = b"" if code is None else struct.pack(">H", code) + reason
    return client_frame(CLOSE, payload)


@dataclass
class ServerFrame:
    """One frame the server sent."""

    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a Close frame."""
        assert self.opcode == CLOSE, self
        return struct.unpack(">H", self.payload[:2])[0] if len(self.payload) >= 2 else None


def read_server_frames(data: bytes) -> tuple[list[ServerFrame], bytes]:
    """Complete frames at the start of ``data`` and the bytes left over. Asserts the rules
    for server frames: never masked, RSV clear."""
    frames = []
    while len(data) >= 2:
        first, second = data[0], data[1]
        assert second & 0x80 == 0, "server frames must not be masked"
        assert first & 0x70 == 0, "server set RSV bits"
        n, at = second & 0x7F, 2
        if n == 126:
            if len(data) < 4:
                break
            n, at = struct.unpack(">H", data[2:4])[0], 4
        elif n == 127:
            if len(data) < 10:
                break
            n, at = struct.unpack(">Q", data[2:10])[0], 10
        if len(data) < at + n:
            break
        frames.append(ServerFrame(bool(first & 0x80), first & 0x0F, data[at:at + n]))
        data = data[at + n:]
    return frames, data
