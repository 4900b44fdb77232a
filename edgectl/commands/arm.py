"""``edgectl arm SLOT``: ask plc_gateway to arm a WRITE slot (W = 1 once the slot is confirmed empty).

A fresh PLC holds W = 0 and writes nothing until an operator arms the slot. The command goes over MQTT
(`cmd/arm`) like any other; the reply comes on a private `{root}/reply/edgectl/<uuid>` topic.
Exit 0 armed or already armed, 4 refused (e.g. slot_not_empty), 3 no reply or the PLC did not answer.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from edgectl import connection
from edgectl.bus import Bus
from edgectl.commands import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from edgectl.errors import Unreachable
from edgectl.output import to_json
from shared.mqtt.client import json_object
from shared.mqtt.payloads import dumps
from shared.mqtt.requests import UNREACHABLE_CODES, command_request


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("arm", help="arm a PLC WRITE slot (sets W=1 if the slot is empty)")
    p.add_argument("slot", type=_slot, help="slot number, 1..99")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the gateway's reply (5)")
    p.add_argument("--json", action="store_true", help="print the gateway's reply as JSON")
    connection.add_arguments(p)
    p.set_defaults(func=run)


def _slot(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 99:
        raise argparse.ArgumentTypeError(f"slot must be a number 1..99, not {text!r}")
    return int(text)


def request(conn: connection.Connection, command: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send a gateway command with request_id and reply_to; return the reply or raise Unreachable."""
    req = command_request(conn.topics, "edgectl", command, args, timeout)
    with Bus(conn.broker(), [req.reply_to], timeout=min(timeout, 5.0)) as bus:
        bus.publish(req.topic, dumps("edgectl", req.body))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = bus.get(left)
            reply = json_object(msg.payload) if msg else None
            if reply is not None and req.answered_by(reply):
                return reply
    # The broker drops a publish the ACL denies without telling an MQTT 3.1.1 client, so "no reply" is also
    # what a wrong broker user looks like: name the user, since only `operator` may send these commands.
    user = conn.broker().username
    hint = (
        f"; broker user {user!r} may not send cmd/{command} (mosquitto/acl allows only 'operator':"
        " under docker-compose use `docker-compose run --rm edgectl ...`)"
        if user != "operator"
        else ""
    )
    raise Unreachable(
        f"no reply from plc_gateway to {command} within {timeout:g} s (is it running? see `edgectl status`){hint}"
    )


def run(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    reply = request(conn, "arm", {"slot": args.slot}, args.timeout)
    if args.json:
        print(to_json({k: v for k, v in reply.items() if k not in ("schema", "source")}))
    else:
        verdict = "ok" if reply.get("ok") else "REFUSED"
        print(f"slot {args.slot}: {verdict} {reply.get('code')}: {reply.get('message')}")
    if reply.get("ok") is True:
        return EXIT_OK
    return EXIT_UNREACHABLE if reply.get("code") in UNREACHABLE_CODES else EXIT_REFUSED
