"""Row claiming for workers that may run as several replicas: SELECT ... FOR UPDATE SKIP LOCKED.

A claimed row stays locked until the caller's transaction ends; another replica's claim skips it instead of
waiting, so two replicas never work on the same row and never block each other. "Due" compares with the
database clock (now() = the transaction's start), so replicas on boxes with skewed clocks agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.db.batch_state import BatchState
from shared.db.models import Base, EquipmentFailure, MoBatch

M = TypeVar("M", bound=Base)


def due(column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """Rows whose retry time (NULL = at once) has come."""
    return or_(column.is_(None), column <= func.now())


def claim(
    session: Session,
    model: type[M],
    *criteria: ColumnElement[bool],
    order_by: Sequence[Any] = (),
    limit: int = 1,
) -> list[M]:
    """Lock and return up to `limit` rows of `model` matching `criteria` that no other transaction holds."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    stmt = select(model).where(*criteria).order_by(*order_by).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def claim_batches(
    session: Session,
    states: BatchState | str | Iterable[BatchState | str],
    *,
    limit: int = 1,
    slot: int | None = None,
    due_only: bool = True,
    order_by: Sequence[Any] | None = None,
) -> list[MoBatch]:
    """Claim mo_batch rows in `states` (due for a retry unless `due_only=False`). Default order: rows never
    tried (next_attempt_at NULL) first, then the longest-waiting retry, so one failing row cannot starve the
    rest; id (queue order) breaks ties."""
    wanted = [states] if isinstance(states, str) else list(states)
    criteria: list[ColumnElement[bool]] = [MoBatch.state.in_([BatchState(s).value for s in wanted])]
    if slot is not None:
        criteria.append(MoBatch.slot == slot)
    if due_only:
        criteria.append(due(MoBatch.next_attempt_at))
    order = order_by if order_by is not None else (MoBatch.next_attempt_at.asc().nulls_first(), MoBatch.id)
    return claim(session, MoBatch, *criteria, order_by=order, limit=limit)


def claim_failures(session: Session, *, limit: int = 1, due_only: bool = True) -> list[EquipmentFailure]:
    """Claim failure events not yet reported to Odoo, in the order they were received."""
    criteria: list[ColumnElement[bool]] = [
        EquipmentFailure.reported_at.is_(None),
        EquipmentFailure.attention_reason.is_(None),
    ]
    if due_only:
        criteria.append(due(EquipmentFailure.next_attempt_at))
    return claim(session, EquipmentFailure, *criteria, order_by=(EquipmentFailure.id,), limit=limit)
