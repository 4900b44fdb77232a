"""Row operations several services share: apply a state transition with its audit row, archive a batch; and
the queries of mo_planner's queue and slots (what is queued, what occupies a slot, what may have been lost)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from shared.db.batch_state import ON_PLC, BatchState, IllegalTransition, Transition, archive_status, transition
from shared.db.columns import COLUMN_SUFFIX, actual_column
from shared.db.models import AuditEvent, MoBatch, MoHistory

_SHARED_COLUMNS = [
    c.key
    for c in inspect(MoHistory).column_attrs
    if c.key not in ("id", "status", "archived_at", "odoo_reply", "note")
]
_ON_PLC = [state.value for state in ON_PLC]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    mo_id: str | None = None,
    event_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            mo_id=mo_id,
            event_id=event_id,
            from_state=from_state,
            to_state=to_state,
            detail=detail,
        )
    )


def move(
    session: Session, row: MoBatch, target: str, *, actor: str, reason: str = "", **detail: Any
) -> Transition:
    """Change a batch's state (raises IllegalTransition), stamp the state's timestamp column, remember where an
    `attention` batch came from, and write its audit_event in the same session (so the same transaction)."""
    t = transition(
        row.mo_id, row.state, target, actor=actor, reason=reason, attention_from=row.attention_from, **detail
    )
    row.state = t.to_state.value
    row.attention_from = t.attention_from.value if t.attention_from else None
    if t.timestamp_column is not None:
        setattr(row, t.timestamp_column, t.at)
    if t.to_state is BatchState.REPORTED:
        row.update_odoo = True  # seed meaning: Odoo has the consumption
    session.add(
        AuditEvent(
            at=t.at,
            actor=actor,
            action="transition",
            mo_id=row.mo_id,
            from_state=t.from_state.value,
            to_state=t.to_state.value,
            detail={"reason": reason, **detail},
        )
    )
    return t


def archive(
    session: Session,
    row: MoBatch,
    status: str,
    *,
    actor: str,
    odoo_reply: dict[str, Any] | None = None,
    note: str | None = None,
) -> MoHistory:
    """Copy the batch into mo_histories and delete it from mo_batch (the caller's transaction makes it atomic).

    `status` must be the one the batch's state archives as (batch_state.ARCHIVE_STATUS): a batch is archived as
    completed only once it is `reported`, i.e. never before Odoo confirmed it.
    """
    expected = archive_status(row.mo_id, row.state)
    if status != expected:
        raise IllegalTransition(row.mo_id, row.state, f"archived as {status}", f"must be archived as {expected}")
    history = MoHistory(
        status=status, odoo_reply=odoo_reply, note=note, **{key: getattr(row, key) for key in _SHARED_COLUMNS}
    )
    session.add(history)
    session.delete(row)
    audit(
        session, actor=actor, action="archived", mo_id=row.mo_id, from_state=row.state, to_state=status, note=note
    )
    return history


def actuals_of(row: MoBatch | MoHistory) -> dict[str, float]:
    """PLC actual kg per equipment code (None -> 0)."""
    out: dict[str, float] = {}
    for code in COLUMN_SUFFIX:
        value = getattr(row, actual_column(code))
        out[code] = float(value) if value is not None else 0.0
    return out


def set_actuals(row: MoBatch, consumption: dict[str, float]) -> None:
    for code, kg in consumption.items():
        if code in COLUMN_SUFFIX:
            setattr(row, actual_column(code), Decimal(str(round(kg, 2))))


def batch_by_mo(session: Session, mo_id: str, *, lock: bool = False) -> MoBatch | None:
    stmt = select(MoBatch).where(MoBatch.mo_id == mo_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def archived_statuses(session: Session, mo_id: str) -> set[str]:
    return set(session.scalars(select(MoHistory.status).where(MoHistory.mo_id == mo_id)).all())


def archived_fingerprints(session: Session, mo_id: str) -> set[str]:
    """The PLC results stored with the MO's archived rows (shared/plc/fingerprint.py)."""
    rows = session.scalars(
        select(MoHistory.result_fingerprint).where(
            MoHistory.mo_id == mo_id, MoHistory.result_fingerprint.is_not(None)
        )
    ).all()
    return {fp for fp in rows if fp is not None}


# ------------------------------------------------------------------ the planner's queue and slots


def count_in_state(session: Session, state: BatchState) -> int:
    return int(session.scalar(select(func.count()).select_from(MoBatch).where(MoBatch.state == state)) or 0)


def state_counts(session: Session) -> dict[str, int]:
    """Rows in mo_batch per state (states without rows are absent)."""
    return {
        state: int(n) for state, n in session.execute(select(MoBatch.state, func.count()).group_by(MoBatch.state))
    }


def slot_occupied(session: Session, slot: int) -> bool:
    """A batch written to this slot has not ended on the PLC."""
    stmt = select(func.count()).select_from(MoBatch).where(MoBatch.slot == slot, MoBatch.state.in_(_ON_PLC))
    return bool(session.scalar(stmt))


def next_queued(session: Session, slot: int) -> MoBatch | None:
    """The queued batch to write into `slot` next, locked (replicas skip it): one already sticky to this slot
    (a refused write stays with its slot) first, then the oldest unassigned one."""
    return session.scalars(
        select(MoBatch)
        .where(MoBatch.state == BatchState.QUEUED, (MoBatch.slot == slot) | MoBatch.slot.is_(None))
        .order_by(MoBatch.slot.is_(None), MoBatch.queued_at, MoBatch.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def on_plc_written_before(session: Session, slot: int, before: dt.datetime) -> list[MoBatch]:
    """The batches on the PLC in `slot` that were written at or before `before`, locked."""
    return list(
        session.scalars(
            select(MoBatch)
            .where(MoBatch.slot == slot, MoBatch.state.in_(_ON_PLC), MoBatch.written_at <= before)
            .with_for_update()
        ).all()
    )


def closed_in_history(session: Session, mo_id: str) -> bool:
    """The MO was archived as completed or cancelled: it is never queued again."""
    return bool(archived_statuses(session, mo_id) & {"completed", "cancelled"})


def queue_view(session: Session, mo_ids: Collection[str]) -> tuple[dict[str, bool], set[str]]:
    """What the planner already knows of the MOs in one Odoo list, in two queries (not a few per MO, which made
    every list cost hundreds of round trips): {mo_id: reconcilable} for the MOs with a row in mo_batch (True
    for a queued row no write was sent for: Odoo's copy may still change it), and the MOs archived as completed
    or cancelled (never queued again)."""
    if not mo_ids:
        return {}, set()
    rows = session.execute(
        select(MoBatch.mo_id, MoBatch.state, MoBatch.write_request_id).where(MoBatch.mo_id.in_(mo_ids))
    )
    known = {mo_id: state == BatchState.QUEUED.value and request_id is None for mo_id, state, request_id in rows}
    closed = set(
        session.scalars(
            select(MoHistory.mo_id).where(
                MoHistory.mo_id.in_(mo_ids), MoHistory.status.in_(("completed", "cancelled"))
            )
        )
    )
    return known, closed
