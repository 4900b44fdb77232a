"""Operator actions on a manual weighing parked for a person: ``edgectl weighing-retry ID`` and
``edgectl weighing-acked ID`` and ``edgectl weighing-give-up ID`` (the rules and row changes are shared.db.operator_actions, which the console runs
too).

A weighing goes to attention when Odoo cannot take it as it is (MO done or cancelled, product not a component of
the MO, a refusal) or when the outcome of an earlier post cannot be read from Odoo. After the cause is fixed in
Odoo the operator hands it back to failure_monitor, which decides an unknown earlier post first (from the
consumption stored before it) and posts only if that post was not applied. A weighing Odoo booked only in part
is already reported and is never handed back (a re-post would double the booked part): the rest is booked in
Odoo by hand, then the weighing is given up (closed). Giving up an unbooked weighing means the gateway never
posts it. A weighing parked before its acknowledgement (the gateway cannot know whether its flag write landed
and the item shows the same content again) is decided from the scale's log: one weighing -> weighing-retry
(acknowledged again), two identical ones -> weighing-acked (the next one is stored from the item). Every change
is audited (actor `operator`, the OS user in the detail).
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
from shared.db.operator_actions import (
    ActionRefused,
    ActionResult,
    acked_weighing,
    give_up_weighing,
    retry_weighing,
)
from shared.db.session import transaction
from shared.mqtt.events import WeighingEvent
from shared.mqtt.payloads import utc_now


def register(sub: Any) -> None:
    for name, help_text, func in (
        (
            "weighing-retry",
            "hand a manual weighing in attention back to failure_monitor (after fixing the cause in Odoo)",
            run_retry,
        ),
        (
            "weighing-acked",
            "a weighing parked with an unknown acknowledgement was taken by the PLC (the scale shows two)",
            run_acked,
        ),
        (
            "weighing-give-up",
            "close a manual weighing in attention for good (never posted again; book the rest in Odoo by hand)",
            run_give_up,
        ),
    ):
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument("weighing_id", metavar="ID", type=int, help="the weighing's id (see `edgectl weighings`)")
        connection.add_arguments(p)
        p.set_defaults(func=func)


def _act(
    conn: connection.Connection, args: argparse.Namespace, action: Callable[..., ActionResult]
) -> ActionResult:
    with session_factory(conn) as factory, transaction(factory) as s:
        try:
            result = action(s, args.weighing_id, actor=ACTOR, via="edgectl", user=os_user())
        except ActionRefused as exc:
            raise Refused(str(exc)) from None
    print(result.message)
    return result


def run_retry(args: argparse.Namespace) -> int:
    return _act_and_wake(args, retry_weighing, "weighing-retry")


def run_acked(args: argparse.Namespace) -> int:
    return _act_and_wake(args, acked_weighing, "weighing-acked")


def _act_and_wake(args: argparse.Namespace, action: Callable[..., ActionResult], name: str) -> int:
    conn = connection.resolve(args)
    broker = conn.broker()  # settings checked before the database is changed
    result = _act(conn, args, action)
    assert result.event_id is not None
    event = WeighingEvent(
        ts=utc_now(), source="edgectl", event="retry", weighing_id=int(result.subject), event_id=result.event_id
    )
    wake(broker, conn.topics.weighing_events, event.wire(), name, "failure_monitor")
    return EXIT_OK


def run_give_up(args: argparse.Namespace) -> int:
    _act(connection.resolve(args), args, give_up_weighing)  # nothing to wake: no service works on it any more
    return EXIT_OK
