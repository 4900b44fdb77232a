"""Operator actions on one batch: ``edgectl cancel MO`` and ``edgectl retry MO``.

Both change rows only through shared.db.repo (`move`, `archive`), so every change has its audit_event row
(actor `operator`, the OS user in the detail), and both lock the row first (SELECT ... FOR UPDATE) so they
cannot race mo_planner or odoo_sync working on the same batch.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy.orm import Session

from edgectl import connection
from edgectl.bus import Bus
from edgectl.commands import EXIT_OK
from edgectl.db import session_factory
from edgectl.errors import Refused, Unreachable, UsageError
from shared.db.batch_state import ON_PLC, BatchState
from shared.db.models import MoBatch
from shared.db.repo import archive, archived_statuses, batch_by_mo, move
from shared.db.session import transaction
from shared.mqtt.events import batch_event
from shared.mqtt.payloads import dumps

ACTOR = "operator"
# Origins odoo_sync works on: a retry hands the batch back to it. Batches that went to attention from the PLC
# side (lost on the PLC, refused at queueing) need a decision, not a blind resend.
RETRYABLE_ORIGINS = (BatchState.FINISHED, BatchState.FAILED, BatchState.REPORTED)


def register(sub: Any) -> None:
    c: argparse.ArgumentParser = sub.add_parser(
        "cancel",
        help="cancel a batch that is still queued, or give up on one lost on the PLC",
        description="Cancel a queued batch (archived as cancelled, never written to the PLC), or give up on a "
        "batch in attention that never ended on the PLC, e.g. one lost by a reboot (never re-dosed). Refused "
        "once a batch is on its way to the PLC or on it, and for one that ended there (retry those). The MO in Odoo is "
        "NOT cancelled: cancel it in Odoo's UI if wanted (the planner never queues an MO again once it is "
        "archived as cancelled).",
    )
    c.add_argument("mo_id", metavar="MO", help="MO name, e.g. WH/MO/00014")
    connection.add_arguments(c)
    c.set_defaults(func=run_cancel)

    r: argparse.ArgumentParser = sub.add_parser(
        "retry",
        help="hand a batch in attention back (after fixing the cause in Odoo)",
        description="For a batch in `attention` after Odoo refused its report or cancel: put it back to the "
        "state it came from (finished, failed or reported) with the retry due now, and wake odoo_sync. For one "
        "refused before it reached the PLC (e.g. an MO scaled away from its BoM): back to the queue, where "
        "mo_planner reads it again from Odoo before writing it.",
    )
    r.add_argument("mo_id", metavar="MO", help="MO name, e.g. WH/MO/00014")
    connection.add_arguments(r)
    r.set_defaults(func=run_retry)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def _locked_batch(s: Session, mo_id: str) -> MoBatch:
    row = batch_by_mo(s, mo_id, lock=True)
    if row is None:
        archived = archived_statuses(s, mo_id)
        if archived:
            raise Refused(f"{mo_id} is not in the queue: already archived as {', '.join(sorted(archived))}")
        raise Refused(f"{mo_id} is unknown (not in mo_batch or mo_histories; see `edgectl queue`)")
    return row


def run_cancel(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    with session_factory(conn) as factory, transaction(factory) as s:
        row = _locked_batch(s, args.mo_id)
        if row.state in {st.value for st in ON_PLC}:
            raise Refused(f"{row.mo_id} is {row.state} on the PLC (slot {row.slot}): it cannot be cancelled here")
        if row.state == BatchState.ATTENTION:
            if row.attention_from in RETRYABLE_ORIGINS:
                # The PLC finished it: its result must reach Odoo. Fix the cause in Odoo and retry.
                raise Refused(
                    f"{row.mo_id} ended on the PLC ({row.attention_from}); retry it instead of cancelling"
                )
            move(
                s,
                row,
                BatchState.CANCELLED,
                actor=ACTOR,
                reason="given up by the operator (edgectl)",
                user=_user(),
                was=row.last_error,
            )
            archive(
                s,
                row,
                "cancelled",
                actor=ACTOR,
                note=f"given up by the operator from attention ({row.last_error}); Odoo left as it is",
            )
            print(f"{args.mo_id}: given up and archived as cancelled (the MO in Odoo is unchanged)")
            return EXIT_OK
        if row.state != BatchState.QUEUED:
            raise Refused(f"{row.mo_id} is {row.state}, not queued: only a queued batch can be cancelled")
        if row.write_request_id:
            # mo_planner stores the request id before it sends write_batch: the batch may be on the PLC now.
            raise Refused(
                f"{row.mo_id}: a write to slot {row.slot} was already sent ({row.write_request_id}); "
                "it may be on the PLC now: not cancelled"
            )
        move(s, row, BatchState.CANCELLED, actor=ACTOR, reason="cancelled by the operator (edgectl)", user=_user())
        archive(
            s,
            row,
            "cancelled",
            actor=ACTOR,
            note="cancelled by the operator before it reached the PLC; the MO in Odoo was left as it is",
        )
    print(f"{args.mo_id}: cancelled and archived (the MO in Odoo is unchanged: cancel it there if wanted)")
    return EXIT_OK


def run_retry(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    broker = conn.broker()  # settings checked before the database is changed
    with session_factory(conn) as factory, transaction(factory) as s:
        row = _locked_batch(s, args.mo_id)
        if row.state != BatchState.ATTENTION:
            raise Refused(f"{row.mo_id} is {row.state}, not attention: nothing to retry")
        origin = row.attention_from or ("failed" if row.status_operation else "finished")
        if origin == BatchState.QUEUED:
            # Refused before it reached the PLC (e.g. scaled away from its BoM): fixed in Odoo, it goes back to
            # the queue; mo_planner reads it again from Odoo before writing and parks it again if still wrong.
            move(
                s,
                row,
                origin,
                actor=ACTOR,
                reason="operator retry (edgectl)",
                previous_error=row.last_error,
                user=_user(),
            )
            row.last_error = None
            print(f"{args.mo_id}: back to queued; mo_planner re-reads it from Odoo before writing it")
            return EXIT_OK
        if origin not in RETRYABLE_ORIGINS:
            raise Refused(
                f"{row.mo_id} went to attention from {origin} (PLC side: {row.last_error or 'no detail'}); "
                "retry only resends Odoo reports"
            )
        previous = row.last_error
        move(s, row, origin, actor=ACTOR, reason="operator retry (edgectl)", previous_error=previous, user=_user())
        row.next_attempt_at = None  # due now; sync_attempts is kept so the history of attempts stays visible
        row.last_error = None
    print(f"{args.mo_id}: back to {origin}; odoo_sync reports it again")
    try:
        with Bus(broker) as bus:
            bus.publish(conn.topics.batch_events, dumps("edgectl", batch_event("retry", args.mo_id, None)))
    except (Unreachable, UsageError, Refused) as exc:
        # The row is committed: odoo_sync's periodic sweep finds it without the wake-up event.
        print(
            f"edgectl retry: wake-up event not sent ({exc}); odoo_sync retries on its next sweep", file=sys.stderr
        )
    return EXIT_OK
