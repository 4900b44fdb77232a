"""Row claiming for workers that may run as several replicas.

Two rules, which plain `FOR UPDATE SKIP LOCKED` cannot tell apart:

* a row another *replica* of the same worker has claimed is skipped, never waited for (two replicas never
  work on the same row and never block each other);
* a row another *service* holds for a moment (the planner recording `acked_at`, its next snapshot of the same
  slot, an operator command) is waited for, bounded by `lock_wait_s`, and then checked again.

SKIP LOCKED skips both, so a woken worker could find "nothing to do" while the row it was woken for sat under
the planner's few-millisecond lock, and then sleep until the next wake-up (the next batch's finish, or the
safety sweep): the finish -> Odoo tail of issue 16. So `claim_for_worker` excludes replicas with a
transaction-scoped advisory lock (`pg_try_advisory_xact_lock(key, id)`, only workers take it) and takes the
row lock with an ordinary, waiting `FOR UPDATE`. Both locks end with the caller's transaction.
"Due" compares with the database clock (now() = the transaction's start), so replicas on boxes with skewed
clocks agree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, cast, func, inspect, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from shared.db.batch_state import BatchState
from shared.db.models import Base, EquipmentFailure, ManualWeighing, MoBatch

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Base)

# Advisory-lock namespaces (first key of pg_try_advisory_xact_lock(int, int)); one per kind of worker row.
BATCH_WORK_KEY = 16_001
FAILURE_REPORT_KEY = 16_002
WEIGHING_REPORT_KEY = 16_003
_LOCK_NOT_AVAILABLE = "55P03"
_INT4 = 2**31 - 1


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
    """Lock and return up to `limit` rows of `model` matching `criteria` that no other transaction holds
    (SKIP LOCKED: a row anybody holds is skipped; for a worker woken for a row, use `claim_for_worker`)."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    stmt = select(model).where(*criteria).order_by(*order_by).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def claim_for_worker(
    session: Session,
    model: type[M],
    *criteria: ColumnElement[bool],
    key: int,
    order_by: Sequence[Any] = (),
    limit: int = 1,
    lock_wait_s: float = 10.0,
    scan: int = 64,
) -> list[M]:
    """Lock and return up to `limit` rows matching `criteria`: rows other replicas (same `key`) have claimed are
    skipped; rows other transactions merely hold are waited for (at most `lock_wait_s`, then skipped with a
    warning) and re-checked against `criteria` as they are after the wait. Looks at the first `scan`
    candidates in `order_by` order."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if not lock_wait_s > 0:
        raise ValueError("lock_wait_s must be > 0")
    pk = inspect(model).primary_key[0]
    for _ in range(8):  # each round drops the rows that changed under us; 8 rounds is far more than needed
        candidates = select(pk.label("id")).where(*criteria).order_by(*order_by).limit(max(scan, limit)).subquery()
        # The LIMIT subquery is evaluated first and the volatile filter lazily on its rows in order, so the
        # advisory lock is taken only on the rows returned (up to `limit`), not on every candidate.
        mine = select(candidates.c.id).where(
            func.pg_try_advisory_xact_lock(key, cast(candidates.c.id % _INT4, Integer))
        )
        ids = list(session.scalars(mine.limit(limit)))
        if not ids:
            return []
        rows, waited_out = _lock_rows(session, model, pk, ids, criteria, order_by, lock_wait_s)
        if rows or waited_out or len(ids) < limit:
            return rows
    return []


def _lock_rows(
    session: Session,
    model: type[M],
    pk: Any,
    ids: list[Any],
    criteria: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    lock_wait_s: float,
) -> tuple[list[M], bool]:
    """Lock the rows `ids` that still match `criteria`; (rows, True) when the wait ran out (the free ones).
    Nobody else holds them in the common case: one SKIP LOCKED statement takes them all. Only when some were
    held does the bounded wait (lock_timeout in a savepoint: five more round trips) run, and it re-reads every
    id, so a row that changed while we looked is judged as it is now."""
    stmt = (
        select(model).where(pk.in_(ids), *criteria).order_by(*order_by).execution_options(populate_existing=True)
    )
    free = list(session.scalars(stmt.with_for_update(skip_locked=True)))
    if len(free) == len(ids):
        return free, False
    previous = session.scalar(text("SELECT current_setting('lock_timeout')"))
    session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": f"{int(lock_wait_s * 1000)}ms"})
    try:
        with session.begin_nested():
            return list(session.scalars(stmt.with_for_update())), False
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) != _LOCK_NOT_AVAILABLE:
            raise
        log.warning("rows held longer than the lock wait; taking the free ones", extra={"table": model.__name__})
        return list(session.scalars(stmt.with_for_update(skip_locked=True))), True
    finally:
        session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})


def claim_batches(
    session: Session,
    states: BatchState | str | Iterable[BatchState | str],
    *,
    limit: int = 1,
    slot: int | None = None,
    due_only: bool = True,
    order_by: Sequence[Any] | None = None,
) -> list[MoBatch]:
    """Claim mo_batch rows in `states` (due for a retry unless `due_only=False`) for a worker (`claim_for_worker`).
    Default order: rows never tried (next_attempt_at NULL) first, then the longest-waiting retry, so one failing
    row cannot starve the rest; id (queue order) breaks ties."""
    wanted = [states] if isinstance(states, str) else list(states)
    criteria: list[ColumnElement[bool]] = [MoBatch.state.in_([BatchState(s).value for s in wanted])]
    if slot is not None:
        criteria.append(MoBatch.slot == slot)
    if due_only:
        criteria.append(due(MoBatch.next_attempt_at))
    order = order_by if order_by is not None else (MoBatch.next_attempt_at.asc().nulls_first(), MoBatch.id)
    return claim_for_worker(session, MoBatch, *criteria, key=BATCH_WORK_KEY, order_by=order, limit=limit)


def claim_failures(session: Session, *, limit: int = 1, due_only: bool = True) -> list[EquipmentFailure]:
    """Claim failure events not yet reported to Odoo, in the order they were received (`claim_for_worker`).
    Events parked for a person (attention_reason) wait for an operator's retry."""
    criteria: list[ColumnElement[bool]] = [
        EquipmentFailure.reported_at.is_(None),
        EquipmentFailure.attention_reason.is_(None),
    ]
    if due_only:
        criteria.append(due(EquipmentFailure.next_attempt_at))
    return claim_for_worker(
        session, EquipmentFailure, *criteria, key=FAILURE_REPORT_KEY, order_by=(EquipmentFailure.id,), limit=limit
    )


def claim_weighings(session: Session, *, limit: int = 1, due_only: bool = True) -> list[ManualWeighing]:
    """Claim acknowledged manual weighings not yet reported to Odoo, oldest first (`claim_for_worker`).
    A weighing is reported only after its PLC item was acknowledged; parked ones wait for an operator.

    One post at a time per MO and product: while another weighing of the same MO and product has a post of
    unknown outcome, none is posted, because that post is decided by comparing the product's consumption with
    the value read before it, and any other post in between would make the comparison meaningless."""
    other = aliased(ManualWeighing)
    unresolved = (
        select(other.id)
        .where(
            other.mo_id == ManualWeighing.mo_id,
            other.product_id == ManualWeighing.product_id,
            other.id != ManualWeighing.id,
            other.outcome_unknown.is_(True),
            other.reported_at.is_(None),
        )
        .exists()
    )
    criteria: list[ColumnElement[bool]] = [
        ManualWeighing.reported_at.is_(None),
        ManualWeighing.acked_at.is_not(None),
        ManualWeighing.attention_reason.is_(None),
        ~unresolved,
    ]
    if due_only:
        criteria.append(due(ManualWeighing.next_attempt_at))
    return claim_for_worker(
        session, ManualWeighing, *criteria, key=WEIGHING_REPORT_KEY, order_by=(ManualWeighing.id,), limit=limit
    )
