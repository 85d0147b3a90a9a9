"""Structured logging: key=value text or one JSON object per line.

Only fields passed in ``extra`` are written; call sites never pass passwords, SASL data or
message bodies, and the formatter drops any field whose name suggests one.
"""

from __future__ import annotations

import json
import logging
import sys

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_NEVER = ("password", "body", "sasl", "secret", "key", "token")


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items()
            if k not in _STANDARD and not any(n in k.lower() for n in _NEVER)}


class JSONFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialize the record and its extra fields."""
        data: dict[str, object] = {"ts": round(record.created, 3), "level": record.levelname,
                                   "logger": record.name, "msg": record.getMessage()}
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _quote(value: object) -> str:
    # A value with spaces, quotes or '=' (a resource, say) must not forge other fields.
    text = str(value)
    return json.dumps(text) if any(c in text for c in " =\"\n\r\t") or not text else text


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record and its extra fields."""
        extra = " ".join(f"{k}={_quote(v)}" for k, v in _fields(record).items())
        line = (f"{self.formatTime(record)} {record.levelname:<7} {record.name}: "
                f"{record.getMessage()}{' ' + extra if extra else ''}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str, fmt: str) -> None:
    """Configure the root logger once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
