"""Operator action on a manual weighing parked for a person: ``edgectl weighing-retry ID``.

A weighing goes to attention when Odoo cannot take it as it is (MO done or cancelled, product not a component of
the MO, a refusal) or when the outcome of an earlier post cannot be read from Odoo. After the cause is fixed in
Odoo the operator hands it back to failure_monitor, which decides an unknown earlier post first (from the
consumption stored before it) and posts only if that post was not applied. A weighing Odoo booked only in part
is already reported and is never handed back (a re-post would double the booked part): the rest is booked in
Odoo by hand. Every change is audited (actor `operator`, the OS user in the detail).
"""

from __future__ import annotations

import argparse
from typing import Any

from edgectl import connection
from edgectl.commands import EXIT_OK
from edgectl.db import session_factory
from edgectl.errors import Refused
from edgectl.operator import ACTOR, os_user, wake
from shared.db.models import ManualWeighing
from shared.db.repo import audit
from shared.db.session import transaction
from shared.mqtt.events import weighing_event


def register(sub: Any) -> None:
    r: argparse.ArgumentParser = sub.add_parser(
        "weighing-retry",
        help="hand a manual weighing in attention back to failure_monitor (after fixing the cause in Odoo)",
    )
    r.add_argument("weighing_id", metavar="ID", type=int, help="the weighing's id (see `edgectl weighings`)")
    connection.add_arguments(r)
    r.set_defaults(func=run_retry)


def run_retry(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    broker = conn.broker()  # settings checked before the database is changed
    with session_factory(conn) as factory, transaction(factory) as s:
        row = s.get(ManualWeighing, args.weighing_id, with_for_update=True)
        if row is None:
            raise Refused(f"weighing {args.weighing_id} does not exist")
        if row.attention_reason is None:
            raise Refused(f"weighing {row.id} is not in attention (reported: {row.reported_at is not None})")
        if row.reported_at is not None:
            raise Refused(
                f"weighing {row.id} is booked in Odoo ({row.applied_kg} of {row.kg} kg): a retry would post it "
                "again; book the rest in Odoo by hand"
            )
        audit(
            s,
            actor=ACTOR,
            action="weighing_retry",
            mo_id=row.mo_id,
            event_id=row.event_id,
            weighing_id=row.id,
            previous=row.attention_reason,
            user=os_user(),
        )
        row.attention_reason, row.attention_at, row.next_attempt_at = None, None, None
        weighing_id, event_id = row.id, row.event_id
    print(f"weighing {weighing_id}: back to failure_monitor; it reports it again (an unknown earlier post first)")
    event = weighing_event("retry", weighing_id, event_id)
    wake(broker, conn.topics.weighing_events, event, "weighing-retry", "failure_monitor")
    return EXIT_OK
