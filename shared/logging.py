"""JSON logs to stdout, one object per line, with known secrets masked before anything is written."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this exact value in every later log line (passwords read from env or files)."""
    if value and len(value) >= 3:
        _secrets.add(value)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<scheme>***@", text)
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho and urllib3 are chatty at INFO/DEBUG and may print URLs.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
