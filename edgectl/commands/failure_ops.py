"""Operator action on a failure event parked for a person: ``edgectl failure-retry EVENT``.

A failure event goes to attention when Odoo can never accept it as it is (an equipment code outside the memory
map's list, an empty description, or a clean refusal by Odoo). It is stored and acknowledged on the PLC like any
other; after the cause is fixed (e.g. the equipment added in Odoo) the operator hands it back to
failure_monitor, which reports it again. Every change is audited (actor `operator`, the OS user in the detail).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy import select

from edgectl import connection
from edgectl.bus import Bus
from edgectl.commands import EXIT_OK
from edgectl.db import session_factory
from edgectl.errors import Refused, Unreachable, UsageError
from shared.db.models import EquipmentFailure
from shared.db.repo import audit
from shared.db.session import transaction
from shared.mqtt.events import failure_event
from shared.mqtt.payloads import dumps

ACTOR = "operator"


def register(sub: Any) -> None:
    r: argparse.ArgumentParser = sub.add_parser(
        "failure-retry",
        help="hand a failure event in attention back to failure_monitor (after fixing the cause in Odoo)",
    )
    r.add_argument("event_id", metavar="EVENT", help="event id, or a unique prefix of it (see `edgectl failures`)")
    connection.add_arguments(r)
    r.set_defaults(func=run_retry)


def run_retry(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    broker = conn.broker()  # settings checked before the database is changed
    if len(args.event_id) < 6:
        raise UsageError("give at least 6 hex digits of the event id")
    with session_factory(conn) as factory, transaction(factory) as s:
        rows = s.scalars(
            select(EquipmentFailure).where(EquipmentFailure.event_id.startswith(args.event_id)).with_for_update()
        ).all()
        if len(rows) != 1:
            raise Refused(f"{args.event_id}: {len(rows)} failure events match; give a longer prefix")
        row = rows[0]
        if row.attention_reason is None:
            raise Refused(f"{row.event_id} is not in attention (reported: {row.reported_at is not None})")
        audit(
            s,
            actor=ACTOR,
            action="failure_retry",
            event_id=row.event_id,
            previous=row.attention_reason,
            user=_user(),
        )
        row.attention_reason, row.attention_at, row.next_attempt_at = None, None, None
        event_id = row.event_id
    print(f"{event_id}: back to failure_monitor; it reports it again")
    try:
        with Bus(broker) as bus:
            bus.publish(conn.topics.failure_events, dumps("edgectl", failure_event("retry", event_id)))
    except (Unreachable, UsageError, Refused) as exc:
        print(
            f"edgectl failure-retry: wake-up not sent ({exc}); failure_monitor finds it on its sweep",
            file=sys.stderr,
        )
    return EXIT_OK


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
