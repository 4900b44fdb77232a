"""Read-only listings from PostgreSQL: ``edgectl queue``, ``edgectl history``, ``edgectl failures``,
``edgectl weighings``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Executable, select

from edgectl import connection
from edgectl.commands import EXIT_OK
from edgectl.db import session_factory
from edgectl.output import table, to_json
from shared.db.batch_state import HistoryStatus
from shared.db.models import EquipmentFailure, ManualWeighing, MoBatch, MoHistory


def register(sub: Any) -> None:
    q: argparse.ArgumentParser = sub.add_parser("queue", help="batches in mo_batch (queued to attention)")
    _common(q, run_queue)

    h: argparse.ArgumentParser = sub.add_parser("history", help="archived batches (mo_histories), newest first")
    h.add_argument("--limit", type=_positive, default=20, help="rows to show (20)")
    h.add_argument("--status", choices=[s.value for s in HistoryStatus], help="only this status")
    _common(h, run_history)

    f: argparse.ArgumentParser = sub.add_parser("failures", help="equipment failures stored from the PLC")
    f.add_argument("--unreported", action="store_true", help="only those Odoo has not confirmed yet")
    f.add_argument("--attention", action="store_true", help="only those parked for a person")
    f.add_argument("--limit", type=_positive, default=50, help="rows to show, newest first (50)")
    _common(f, run_failures)

    w: argparse.ArgumentParser = sub.add_parser("weighings", help="manual weighings stored from the PLC")
    w.add_argument("--unreported", action="store_true", help="only those not booked in Odoo yet")
    w.add_argument("--attention", action="store_true", help="only those parked for a person")
    w.add_argument("--limit", type=_positive, default=50, help="rows to show, newest first (50)")
    _common(w, run_weighings)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list")
    connection.add_arguments(p)
    p.set_defaults(func=func)


def _fetch(args: argparse.Namespace, stmt: Executable) -> list[dict[str, Any]]:
    conn = connection.resolve(args)
    with session_factory(conn) as factory, factory() as s:
        return [dict(row._mapping) for row in s.execute(stmt)]


def _print(args: argparse.Namespace, rows: list[dict[str, Any]], columns: Sequence[str], empty: str) -> int:
    if args.json:
        print(to_json(rows))
    elif rows:
        print(table(columns, [[r[c] for c in columns] for r in rows]))
    else:
        print(empty)
    return EXIT_OK


def run_queue(args: argparse.Namespace) -> int:
    stmt = select(
        MoBatch.mo_id,
        MoBatch.state,
        MoBatch.slot,
        MoBatch.queued_at,
        MoBatch.attention_from,
        MoBatch.sync_attempts,
        MoBatch.next_attempt_at,
        MoBatch.last_error,
    ).order_by(MoBatch.queued_at, MoBatch.id)
    rows = _fetch(args, stmt)
    return _print(args, rows, ("mo_id", "state", "slot", "queued_at", "last_error"), "queue is empty")


def run_history(args: argparse.Namespace) -> int:
    stmt = select(
        MoHistory.mo_id,
        MoHistory.status,
        MoHistory.slot,
        MoHistory.consumption.label("quantity"),
        MoHistory.actual_weight_quantity_finished_goods.label("finished_kg"),
        MoHistory.finished_at,
        MoHistory.archived_at,
        MoHistory.note,
    )
    if args.status:
        stmt = stmt.where(MoHistory.status == args.status)
    stmt = stmt.order_by(MoHistory.archived_at.desc(), MoHistory.id.desc()).limit(args.limit)
    rows = _fetch(args, stmt)
    columns = ("mo_id", "status", "slot", "finished_kg", "archived_at", "note")
    return _print(args, rows, columns, "no archived batches")


def run_failures(args: argparse.Namespace) -> int:
    stmt = select(
        EquipmentFailure.event_id,
        EquipmentFailure.equipment_code,
        EquipmentFailure.description,
        EquipmentFailure.plc_time_local,
        EquipmentFailure.plc_timezone,
        EquipmentFailure.plc_time_utc,
        EquipmentFailure.received_at,
        EquipmentFailure.acked_at,
        EquipmentFailure.reported_at,
        EquipmentFailure.odoo_record_id,
        EquipmentFailure.report_attempts,
        EquipmentFailure.last_error,
        EquipmentFailure.attention_reason,
    )
    if args.unreported:
        stmt = stmt.where(EquipmentFailure.reported_at.is_(None))
    if args.attention:
        stmt = stmt.where(EquipmentFailure.attention_reason.is_not(None))
    stmt = stmt.order_by(EquipmentFailure.received_at.desc(), EquipmentFailure.id.desc()).limit(args.limit)
    rows = _fetch(args, stmt)
    for row in rows:
        row["event"] = row["event_id"][:12]  # the full hash is in --json; 12 hex digits tell events apart
    columns = ("event", "equipment_code", "description", "plc_time_local", "reported_at", "attention_reason")
    return _print(args, rows, columns, "no unreported failures" if args.unreported else "no failures stored")


def run_weighings(args: argparse.Namespace) -> int:
    stmt = select(
        ManualWeighing.id,
        ManualWeighing.event_id,
        ManualWeighing.item,
        ManualWeighing.batch,
        ManualWeighing.mo_id,
        ManualWeighing.product_id,
        ManualWeighing.kg,
        ManualWeighing.received_at,
        ManualWeighing.acked_at,
        ManualWeighing.ack_code,
        ManualWeighing.odoo_before_kg,
        ManualWeighing.reported_at,
        ManualWeighing.applied_kg,
        ManualWeighing.report_attempts,
        ManualWeighing.outcome_unknown,
        ManualWeighing.last_error,
        ManualWeighing.attention_reason,
    )
    if args.unreported:
        stmt = stmt.where(ManualWeighing.reported_at.is_(None))
    if args.attention:
        stmt = stmt.where(ManualWeighing.attention_reason.is_not(None))
    stmt = stmt.order_by(ManualWeighing.received_at.desc(), ManualWeighing.id.desc()).limit(args.limit)
    rows = _fetch(args, stmt)
    for row in rows:
        row["acked"] = row["acked_at"] is not None
    columns = ("id", "item", "mo_id", "product_id", "kg", "acked", "reported_at", "applied_kg", "attention_reason")
    return _print(args, rows, columns, "no unreported weighings" if args.unreported else "no weighings stored")
