"""Printing: compact tables for people, JSON (one document) for scripts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return value.isoformat(timespec="seconds")
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(doc: Any, *, indent: int | None = 2) -> str:
    return json.dumps(doc, default=_default, indent=indent, sort_keys=False)


def when(value: dt.datetime | None) -> str:
    """Local wall-clock time for people (operators read the plant's clock, not UTC)."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any, width: int = 60) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, dt.datetime):
        text = when(value)
    elif isinstance(value, Decimal | float):
        text = f"{float(value):.2f}"
    else:
        text = str(value)
    text = " ".join(text.split())  # multi-line Odoo errors stay on one row
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
