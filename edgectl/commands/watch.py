"""``edgectl watch``: batch lifecycle events, PLC snapshots and service status, one readable line each.

Snapshots change every poll while a batch doses, so a slot's line is repeated at most once a second unless
its MO or status changes; heartbeats that change nothing are not shown. `--json` prints every message
unfiltered, one JSON object per line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from edgectl import connection
from edgectl.bus import Bus, Received
from edgectl.commands import EXIT_OK
from shared.mqtt.client import json_object
from shared.mqtt.topics import Topics

REPEAT_S = 1.0
SHOWN_SILOS = 3
_EVENT_KEYS = {"schema", "ts", "source", "event", "mo_id", "slot"}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("watch", help="follow batch events and PLC snapshots live")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="one JSON object per message: {at, topic, retained, body}")
    connection.add_arguments(p)
    p.set_defaults(func=run)


def subscriptions(topics: Topics) -> list[str]:
    return [
        topics.batch_events,
        topics.plc_read("+"),
        topics.plc_write("+"),
        topics.plc_failure,
        topics.plc_weighing,
        topics.weighing_events,
        topics.gateway_status,
        topics.svc_status("+"),
    ]


@dataclass
class Formatter:
    """Turns messages into lines; remembers what it printed per topic to drop repeats."""

    topics: Topics
    last: dict[str, tuple[Any, float]] = field(default_factory=dict)

    def line(self, msg: Received) -> str | None:
        body = json_object(msg.payload)
        if body is None:
            return None
        text, key = self._describe(msg.topic, body)
        if text is None:
            return None
        if key is not None:  # a state topic: print changes, and a running one at most once a second
            previous = self.last.get(msg.topic)
            if (
                previous is not None
                and previous[0] == key
                and (body.get("heartbeat") or msg.at - previous[1] < REPEAT_S or not body.get("fields"))
            ):
                return None
            self.last[msg.topic] = (key, msg.at)
        stamp = dt.datetime.fromtimestamp(msg.at).strftime("%H:%M:%S")
        return f"{stamp} {text}"

    def _describe(self, topic: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        t = self.topics
        rel = topic.removeprefix(t.root + "/")
        if topic == t.batch_events:
            return _event(body), None
        if topic.startswith(f"{t.root}/plc/read/"):
            return _read_slot(rel, body)
        if topic.startswith(f"{t.root}/plc/write/"):
            return _write_slot(rel, body)
        if topic == t.plc_failure:
            return _failure(rel, body)
        if topic == t.plc_weighing:
            return _weighing_area(rel, body)
        if topic == t.weighing_events:
            return _weighing_event(body), None
        if topic == t.gateway_status or rel.startswith("svc/"):
            name = "plc_gateway" if topic == t.gateway_status else rel.split("/")[1]
            state = str(body.get("state", "?"))
            plc = body.get("plc")
            extra = ""
            if isinstance(plc, dict):
                extra = (
                    " plc reachable" if plc.get("reachable") else f" PLC UNREACHABLE {plc.get('last_error') or ''}"
                )
            return f"svc {name} {state}{extra}".rstrip(), (state, extra)
        return None, None


def _event(body: dict[str, Any]) -> str:
    parts = [str(body.get("mo_id") or "-"), str(body.get("event", "?"))]
    if body.get("slot") is not None:
        parts.append(f"slot {body['slot']}")
    for key, value in body.items():
        if key not in _EVENT_KEYS and value not in (None, "", [], {}):
            parts.append(f"{key}={_value(value)}")
    return " ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _read_slot(rel: str, body: dict[str, Any]) -> tuple[str, Any]:
    if not body.get("valid", False):
        errors = "; ".join(str(e) for e in (body.get("errors") or [])[:2])
        return f"{rel} INVALID {errors}", ("invalid", errors)
    if body.get("empty"):
        return f"{rel} empty", ("empty",)
    f = body.get("fields") or {}
    if f.get("status_operation"):
        status = "failed"
    elif f.get("status_manufacturing"):
        status = f"finished {float(f.get('weight_finished_good') or 0):.1f} kg"
    else:
        status = "running"
    if f.get("status_read_data"):
        status += " acked"
    dosed = [(code, float(v)) for code, v in (f.get("consumption") or {}).items() if v]
    # One line per snapshot stays readable: the first silos by name, then the total (full data: --json).
    kg = ", ".join(f"{code} {v:.1f} kg" for code, v in dosed[:SHOWN_SILOS])
    if len(dosed) > SHOWN_SILOS:
        kg += f", +{len(dosed) - SHOWN_SILOS} more, total {sum(v for _, v in dosed):.1f} kg"
    return f"{rel} {f.get('mo_id')} {status} {kg}".rstrip(), (f.get("mo_id"), status)


def _write_slot(rel: str, body: dict[str, Any]) -> tuple[str, Any]:
    if not body.get("valid", False):
        return f"{rel} INVALID", ("invalid",)
    f = body.get("fields") or {}
    w = f.get("status_read_data")
    meaning = "taken by the PLC" if w == 1 else "waiting for the PLC"
    mo = "empty" if body.get("empty") else f.get("mo_id")
    return f"{rel} {mo} W={w} ({meaning})", (mo, w)


def _failure(rel: str, body: dict[str, Any]) -> tuple[str, Any]:
    if not body.get("pending"):
        return f"{rel} no failure pending", ("none",)
    f = body.get("fields") or {}
    event = str(body.get("event_id") or "")[:12]
    return f"{rel} {f.get('equipment_code')} {f.get('description')} pending (event {event})", event


def _weighing_area(rel: str, body: dict[str, Any]) -> tuple[str, Any]:
    f = body.get("fields") or {}
    items = [it for it in (f.get("items") or []) if isinstance(it, dict)]
    pending = [it for it in items if it.get("pending")]
    rejected = [it for it in items if not it.get("valid")]
    parts = [f"{rel} {f.get('mo_id') or '-'}"]
    parts += [
        f"item {it.get('item')} {it.get('product_id')} {float(it.get('kg') or 0):.2f} kg pending" for it in pending
    ]
    parts += [f"item {it.get('item')} REJECTED {'; '.join(map(str, it.get('errors') or []))}" for it in rejected]
    if len(parts) == 1:
        parts.append("nothing pending")
    if not items and body.get("errors"):
        parts.append("INVALID " + "; ".join(str(e) for e in body["errors"][:2]))
    return f"{parts[0]} {', '.join(parts[1:])}", tuple(parts)


def _weighing_event(body: dict[str, Any]) -> str:
    parts = [f"weighing {body.get('weighing_id')}", str(body.get("event", "?"))]
    for key in ("item", "mo_id", "product_id", "kg", "applied_kg", "code", "reason"):
        if body.get(key) not in (None, ""):
            parts.append(f"{key}={_value(body[key])}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    fmt = Formatter(conn.topics)
    deadline = time.monotonic() + args.duration if args.duration is not None else None
    try:
        with Bus(conn.broker(), subscriptions(conn.topics)) as bus:
            while deadline is None or (left := deadline - time.monotonic()) > 0:
                msg = bus.get(1.0 if deadline is None else min(1.0, left))
                if msg is None:
                    continue
                if args.json:
                    out = {
                        "at": msg.at,
                        "topic": msg.topic,
                        "retained": msg.retain,
                        "body": json_object(msg.payload),
                    }
                    print(json.dumps(out), flush=True)
                elif (line := fmt.line(msg)) is not None:
                    print(line, flush=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `edgectl watch | head`
        sys.stderr.close()
    return EXIT_OK
