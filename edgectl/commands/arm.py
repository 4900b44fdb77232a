"""``edgectl arm SLOT``: ask plc_gateway to arm a WRITE slot (W = 1 once the slot is confirmed empty).

A fresh PLC holds W = 0 and writes nothing until an operator arms the slot. The command goes over MQTT
(`cmd/arm`) like any other; the reply comes on a private `{root}/reply/edgectl/<uuid>` topic.
Exit 0 armed or already armed, 4 refused (e.g. slot_not_empty), 3 no reply or the PLC did not answer.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgectl import connection
from edgectl.bus import gateway_command
from edgectl.commands import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from edgectl.output import to_json
from shared.mqtt.commands import UNREACHABLE_CODES
from shared.mqtt.payloads import Arm


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


def run(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    reply = gateway_command(conn, lambda request_id: Arm(request_id=request_id, slot=args.slot), args.timeout)
    if args.json:
        print(to_json({k: v for k, v in reply.model_dump().items() if k not in ("schema", "source")}))
    else:
        verdict = "ok" if reply.ok else "REFUSED"
        print(f"slot {args.slot}: {verdict} {reply.code}: {reply.message}")
    if reply.ok:
        return EXIT_OK
    return EXIT_UNREACHABLE if reply.code in UNREACHABLE_CODES else EXIT_REFUSED
