"""Failure events from PLC snapshots: what to store, and the time conversion. Pure."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from shared.mqtt.snapshots import FailureSnapshot


@dataclass(frozen=True)
class PlcFailure:
    """A failure event as failure_monitor stores it."""

    event_id: str
    equipment_code: str
    description: str
    local_time: dt.datetime  # naive, the PLC's clock
    utc_time: dt.datetime  # aware UTC
    unreportable: str | None = None  # why Odoo can never accept it as it is (stored, acked, then parked)


def event_from_snapshot(snap: FailureSnapshot, timezone: str) -> PlcFailure | None:
    """The event a failure snapshot asks us to store (pending: the PLC waits for F = 1), else None."""
    shown = snap.failure
    if not snap.pending or shown is None:
        return None
    local = shown.local_time
    return PlcFailure(
        shown.event_id, shown.equipment_code, shown.description, local, to_utc(local, timezone), shown.unreportable
    )


def to_utc(local: dt.datetime, timezone: str) -> dt.datetime:
    """PLC local wall time -> UTC. An ambiguous DST time takes the first occurrence (fold=0)."""
    return local.replace(tzinfo=zoneinfo.ZoneInfo(timezone)).astimezone(dt.UTC)
