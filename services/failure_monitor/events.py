"""Failure events from PLC snapshots: pure parsing and time conversion."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FailureEvent:
    event_id: str
    equipment_code: str
    description: str
    local_time: dt.datetime  # naive, the PLC's clock
    utc_time: dt.datetime  # aware UTC
    unreportable: str | None = None  # why Odoo can never accept it as it is (stored, acked, then parked)


def event_from_snapshot(body: dict[str, Any], timezone: str) -> FailureEvent | None:
    """A pending, valid failure snapshot -> event; anything else -> None (never acted on)."""
    if not body.get("valid") or not body.get("pending"):
        return None
    fields = body.get("fields") or {}
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or event_id != fields.get("event_id"):
        return None
    try:
        local = dt.datetime.strptime(str(fields["timestamp"]), "%Y-%m-%d %H:%M:%S")
        code, text = str(fields["equipment_code"]), str(fields["description"])
    except (KeyError, ValueError):
        return None
    unreportable = fields.get("unreportable")
    if unreportable is not None and not isinstance(unreportable, str):
        return None
    return FailureEvent(event_id, code, text, local, to_utc(local, timezone), unreportable)


def to_utc(local: dt.datetime, timezone: str) -> dt.datetime:
    """PLC local wall time -> UTC. An ambiguous DST time takes the first occurrence (fold=0)."""
    return local.replace(tzinfo=zoneinfo.ZoneInfo(timezone)).astimezone(dt.UTC)
