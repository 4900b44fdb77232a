"""Operator action on a failure event parked for a person: ``edgectl failure-retry EVENT``.

A failure event goes to attention when Odoo can never accept it as it is (an equipment code outside the memory
map's list, an empty description, or a clean refusal by Odoo). It is stored and acknowledged on the PLC like any
other; after the cause is fixed (e.g. the equipment added in Odoo) the operator hands it back to
failure_monitor, which reports it again. Every change is audited (actor `operator`, the OS user in the detail).
"""

from __future__ import annotations

import argparse
from typing import Any

from edgectl import connection
from edgectl.commands import EXIT_OK
from edgectl.db import session_factory
from edgectl.errors import Refused, UsageError
from edgectl.operator import ACTOR, os_user, wake
from shared.db.operator_actions import MIN_EVENT_PREFIX, ActionRefused, retry_failure
from shared.db.session import transaction
from shared.mqtt.events import FailureEvent
from shared.mqtt.payloads import utc_now


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
    if len(args.event_id) < MIN_EVENT_PREFIX:
        raise UsageError(f"give at least {MIN_EVENT_PREFIX} hex digits of the event id")
    with session_factory(conn) as factory, transaction(factory) as s:
        try:
            result = retry_failure(s, args.event_id, actor=ACTOR, via="edgectl", user=os_user())
        except ActionRefused as exc:
            raise Refused(str(exc)) from None
    print(result.message)
    event = FailureEvent(ts=utc_now(), source="edgectl", event="retry", event_id=result.subject)
    wake(broker, conn.topics.failure_events, event.wire(), "failure-retry", "failure_monitor")
    return EXIT_OK
