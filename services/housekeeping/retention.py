"""Retention: deletes what an edge box must not keep forever, in small transactions.

What goes, by age (0 days = keep forever):

- `audit_event` rows older than AUDIT_RETENTION_DAYS (default 180): the audit trail of transitions and
  operator actions; half a year covers any dispute about a batch, after that it only grows the disk.
- `equipment_failure` rows older than FAILURE_RETENTION_DAYS (default 730), and only those that are finished
  with: acknowledged on the PLC and reported to Odoo (Odoo keeps its own copy). Unreported or parked rows stay
  whatever their age: they are still work.
- `mo_histories` rows older than HISTORY_RETENTION_DAYS (default 0 = kept): the archived batches are the
  plant's production record, and the unique completed-MO index is what stops an MO being reported twice, so
  deleting them is an explicit decision of the site.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, select
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent, EquipmentFailure, MoHistory

# Rows per DELETE: short transactions, so the services never wait long behind a purge of a year's backlog.
CHUNK = 5000


@dataclass(frozen=True)
class RetentionPolicy:
    audit_days: int = 180
    failure_days: int = 730
    history_days: int = 0


def _purge(
    engine: Engine,
    table: type[AuditEvent | EquipmentFailure | MoHistory],
    where: list[object],
    progress: Callable[[], None],
) -> int:
    total = 0
    while True:
        with Session(engine) as session, session.begin():
            ids = select(table.id).where(*where).limit(CHUNK)  # type: ignore[arg-type]
            result = session.execute(delete(table).where(table.id.in_(ids.scalar_subquery())))
            deleted = int(cast("CursorResult[Any]", result).rowcount)
        total += deleted
        progress()
        if deleted < CHUNK:
            return total


def purge(
    engine: Engine, policy: RetentionPolicy, now: dt.datetime, progress: Callable[[], None] = lambda: None
) -> dict[str, int]:
    """Delete what the policy lets go; returns rows deleted per table. `progress()` after every chunk (a year's
    backlog is many chunks: the worker's stall rule must not take it for a hang)."""
    done = {"audit_event": 0, "equipment_failure": 0, "mo_histories": 0}
    if policy.audit_days > 0:
        cutoff = now - dt.timedelta(days=policy.audit_days)
        done["audit_event"] = _purge(engine, AuditEvent, [AuditEvent.at < cutoff], progress)
    if policy.failure_days > 0:
        cutoff = now - dt.timedelta(days=policy.failure_days)
        done["equipment_failure"] = _purge(
            engine,
            EquipmentFailure,
            [
                EquipmentFailure.received_at < cutoff,
                EquipmentFailure.reported_at.is_not(None),
                EquipmentFailure.acked_at.is_not(None),
                EquipmentFailure.attention_at.is_(None),
            ],
            progress,
        )
    if policy.history_days > 0:
        cutoff = now - dt.timedelta(days=policy.history_days)
        done["mo_histories"] = _purge(engine, MoHistory, [MoHistory.archived_at < cutoff], progress)
    return done
