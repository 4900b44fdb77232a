"""What the console reads from PostgreSQL. Every page reads through an engine whose transactions are read-only
(`default_transaction_read_only`), on top of the read-only role DATABASE_URL should name: a bug in a page can
never change a row. Only shared.db.operator_actions writes, through the action engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, event, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from services.console.views import HistoryQuery
from shared.db.columns import COLUMN_SUFFIX, actual_column, target_column
from shared.db.models import AuditEvent, EquipmentFailure, ManualWeighing, MoBatch, MoHistory
from shared.db.session import make_engine


def read_only_engine(url: str, *, pool_size: int = 3, connect_timeout_s: int = 5) -> Engine:
    engine = make_engine(url, pool_size=pool_size, connect_timeout_s=connect_timeout_s, application_name="console")
    # Belt and braces with the read-only role: PostgreSQL refuses any write in these sessions.

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET default_transaction_read_only = on")
        dbapi_conn.commit()

    return engine


def targets_of(row: MoBatch | MoHistory) -> dict[str, float]:
    return {c: float(getattr(row, target_column(c)) or 0) for c in COLUMN_SUFFIX}


def actuals_of(row: MoBatch | MoHistory) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for c in COLUMN_SUFFIX:
        value = getattr(row, actual_column(c))
        out[c] = float(value) if value is not None else None
    return out


@dataclass
class Summary:
    queue: list[MoBatch]
    attention: list[MoBatch]
    failures_unreported: int
    failures_attention: list[EquipmentFailure]
    completed_today: int
    weighings_attention: int = 0

    @property
    def targets(self) -> dict[str, dict[str, float]]:
        return {row.mo_id: targets_of(row) for row in self.queue}

    @property
    def states(self) -> dict[str, str]:
        return {row.mo_id: row.state for row in self.queue}


def summary(s: Session, now: dt.datetime) -> Summary:
    queue = list(s.scalars(select(MoBatch).order_by(MoBatch.queued_at, MoBatch.id)))
    attention = [r for r in queue if r.state == "attention"]
    unreported = s.scalar(
        select(func.count()).select_from(EquipmentFailure).where(EquipmentFailure.reported_at.is_(None))
    )
    parked = list(
        s.scalars(
            select(EquipmentFailure)
            .where(EquipmentFailure.attention_reason.is_not(None))
            .order_by(EquipmentFailure.attention_at)
        )
    )
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    completed = s.scalar(
        select(func.count())
        .select_from(MoHistory)
        .where(MoHistory.status == "completed", MoHistory.archived_at >= midnight)
    )
    weighings = s.scalar(
        select(func.count()).select_from(ManualWeighing).where(ManualWeighing.attention_reason.is_not(None))
    )
    return Summary(queue, attention, int(unreported or 0), parked, int(completed or 0), int(weighings or 0))


def _history_filter(stmt: Any, q: HistoryQuery) -> Any:  # a Select of any row shape
    if q.mo:
        escaped = q.mo.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(MoHistory.mo_id.ilike(f"%{escaped}%", escape="\\"))
    if q.status:
        stmt = stmt.where(MoHistory.status == q.status)
    if q.date_from:
        stmt = stmt.where(MoHistory.archived_at >= dt.datetime.combine(q.date_from, dt.time(), dt.UTC))
    if q.date_to:
        end = dt.datetime.combine(q.date_to + dt.timedelta(days=1), dt.time(), dt.UTC)
        stmt = stmt.where(MoHistory.archived_at < end)
    return stmt


HISTORY_COLUMNS = (
    "mo_id",
    "status",
    "slot",
    "bom_name",
    "quantity",
    "finished_kg",
    "queued_at",
    "finished_at",
    "archived_at",
    "note",
)


def history(s: Session, q: HistoryQuery, page_size: int | None) -> tuple[list[dict[str, Any]], int]:
    """Rows of one page (all rows when page_size is None, for CSV) and the total count."""
    total = s.scalar(_history_filter(select(func.count()).select_from(MoHistory), q)) or 0
    stmt = _history_filter(
        select(
            MoHistory.mo_id,
            MoHistory.status,
            MoHistory.slot,
            MoHistory.bom_name,
            MoHistory.consumption.label("quantity"),
            MoHistory.actual_weight_quantity_finished_goods.label("finished_kg"),
            MoHistory.queued_at,
            MoHistory.finished_at,
            MoHistory.archived_at,
            MoHistory.note,
        ),
        q,
    ).order_by(MoHistory.archived_at.desc(), MoHistory.id.desc())
    if page_size is not None:
        stmt = stmt.limit(page_size).offset((q.page - 1) * page_size)
    return [dict(r._mapping) for r in s.execute(stmt)], int(total)


def failures(s: Session, page: int, page_size: int) -> tuple[list[EquipmentFailure], int]:
    total = s.scalar(select(func.count()).select_from(EquipmentFailure)) or 0
    rows = s.scalars(
        select(EquipmentFailure)
        .order_by(EquipmentFailure.received_at.desc(), EquipmentFailure.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return list(rows), int(total)


def weighings(s: Session, page: int, page_size: int, *, attention_only: bool) -> tuple[list[ManualWeighing], int]:
    """Newest first; `attention_only`: those waiting for a person."""
    cond = ManualWeighing.attention_reason.is_not(None) if attention_only else and_(True)
    total = s.scalar(select(func.count()).select_from(ManualWeighing).where(cond)) or 0
    rows = s.scalars(
        select(ManualWeighing)
        .where(cond)
        .order_by(ManualWeighing.received_at.desc(), ManualWeighing.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return list(rows), int(total)


LOGOUT_ACTION = "console_logout"


def revoked_sessions(s: Session, now: dt.datetime, lifetime_s: int) -> dict[str, int]:
    """Revocation tag -> expiry of every logout whose session could still be valid (no cookie lives longer
    than `lifetime_s`; older rows cannot matter, and housekeeping deletes them in time)."""
    since = now - dt.timedelta(seconds=lifetime_s)
    rows = s.execute(
        select(AuditEvent.detail["revocation"].astext, AuditEvent.detail["until"].astext).where(
            AuditEvent.action == LOGOUT_ACTION, AuditEvent.at >= since
        )
    )
    out: dict[str, int] = {}
    for tag, until in rows:
        if tag and until and until.isdigit() and int(until) > now.timestamp():
            out[tag] = int(until)
    return out


def audit_trail(s: Session, mo: str, page: int, page_size: int) -> tuple[list[AuditEvent], int]:
    cond = (
        or_(AuditEvent.mo_id == mo, AuditEvent.event_id.startswith(mo), AuditEvent.actor == mo)
        if mo
        else and_(True)
    )
    total = s.scalar(select(func.count()).select_from(AuditEvent).where(cond)) or 0
    rows = s.scalars(
        select(AuditEvent)
        .where(cond)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return list(rows), int(total)


@dataclass
class BatchDetail:
    mo_id: str
    active: MoBatch | None
    archived: list[MoHistory]
    events: list[AuditEvent]

    @property
    def row(self) -> MoBatch | MoHistory | None:
        return self.active or (self.archived[0] if self.archived else None)


def batch_detail(s: Session, mo_id: str) -> BatchDetail:
    active = s.scalars(select(MoBatch).where(MoBatch.mo_id == mo_id)).first()
    archived = list(
        s.scalars(select(MoHistory).where(MoHistory.mo_id == mo_id).order_by(MoHistory.archived_at.desc()))
    )
    events = list(
        s.scalars(select(AuditEvent).where(AuditEvent.mo_id == mo_id).order_by(AuditEvent.at, AuditEvent.id))
    )
    return BatchDetail(mo_id, active, archived, events)
