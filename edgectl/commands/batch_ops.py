"""Operator actions on one batch: ``edgectl cancel MO`` and ``edgectl retry MO``.

The rules and the row changes live in shared.db.operator_actions (the console calls the same code); here
only the arguments, the exit codes and the wake-up event. Audited with actor `operator`, the OS user in the
detail.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from edgectl import connection
from edgectl.commands import EXIT_OK
from edgectl.db import session_factory
from edgectl.errors import Refused
from edgectl.operator import ACTOR, os_user, wake
from shared.db.operator_actions import ActionRefused, ActionResult, cancel_batch, retry_batch
from shared.db.session import transaction
from shared.mqtt.events import BatchEvent
from shared.mqtt.payloads import utc_now


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
        help="hand a batch in attention back to odoo_sync (after fixing the cause in Odoo)",
        description="For a batch in `attention` after Odoo refused its report or cancel: put it back to the "
        "state it came from (finished, failed or reported) with the retry due now, and wake odoo_sync.",
    )
    r.add_argument("mo_id", metavar="MO", help="MO name, e.g. WH/MO/00014")
    connection.add_arguments(r)
    r.set_defaults(func=run_retry)


def _act(args: argparse.Namespace, action: Callable[..., ActionResult]) -> ActionResult:
    conn = connection.resolve(args)
    with session_factory(conn) as factory, transaction(factory) as s:
        try:
            return action(s, args.mo_id, actor=ACTOR, via="edgectl", user=os_user())
        except ActionRefused as exc:
            raise Refused(str(exc)) from None


def run_cancel(args: argparse.Namespace) -> int:
    print(_act(args, cancel_batch).message)
    return EXIT_OK


def run_retry(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    broker = conn.broker()  # settings checked before the database is changed
    result = _act(args, retry_batch)
    print(result.message)
    event = BatchEvent(ts=utc_now(), source="edgectl", event="retry", mo_id=args.mo_id)
    wake(broker, conn.topics.batch_events, event.wire(), "retry", "odoo_sync")
    return EXIT_OK
