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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgectl import connection
from edgectl.bus import Bus, Received
from edgectl.commands import EXIT_OK
from shared.mqtt.client import json_object
from shared.mqtt.events import BatchEvent, WeighingEvent
from shared.mqtt.payloads import PayloadError
from shared.mqtt.snapshots import (
    FailureSnapshot,
    ReadSlotSnapshot,
    WeighingFields,
    WeighingSnapshot,
    WriteSlotSnapshot,
)
from shared.mqtt.status import ServiceStatus
from shared.mqtt.topics import Topics
from shared.mqtt.wire import Envelope, parse_message

REPEAT_S = 1.0
SHOWN_SILOS = 3


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


@dataclass(frozen=True)
class Seen:
    text: str
    key: Any = None  # state topics: what must change for the line to be printed again
    settled: bool = False  # a heartbeat, or a snapshot with nothing running: never repeated


@dataclass
class Formatter:
    """Turns messages into lines; remembers what it printed per topic to drop repeats."""

    topics: Topics
    last: dict[str, tuple[Any, float]] = field(default_factory=dict)

    def line(self, msg: Received) -> str | None:
        if json_object(msg.payload) is None:
            return None
        seen = self._describe(msg.topic, msg.payload)
        if seen is None:
            return None
        if seen.key is not None:  # a state topic: print changes, and a running one at most once a second
            previous = self.last.get(msg.topic)
            if (
                previous is not None
                and previous[0] == seen.key
                and (seen.settled or msg.at - previous[1] < REPEAT_S)
            ):
                return None
            self.last[msg.topic] = (seen.key, msg.at)
        stamp = dt.datetime.fromtimestamp(msg.at).strftime("%H:%M:%S")
        return f"{stamp} {seen.text}"

    def _describe(self, topic: str, raw: bytes) -> Seen | None:
        t = self.topics
        rel = topic.removeprefix(t.root + "/")
        slot = t.slot_of(topic)
        if slot is not None and topic == t.plc_read(slot):
            return _read_slot(rel, ReadSlotSnapshot.received(raw, slot, "edgectl"))
        if slot is not None and topic == t.plc_write(slot):
            return _write_slot(rel, WriteSlotSnapshot.received(raw, slot, "edgectl"))
        typed: dict[str, tuple[type[Envelope], Callable[[str, Any], Seen]]] = {
            t.batch_events: (BatchEvent, _batch_event),
            t.plc_failure: (FailureSnapshot, _failure),
            t.plc_weighing: (WeighingSnapshot, _weighing_area),
            t.weighing_events: (WeighingEvent, _weighing_event),
        }
        if topic in typed:
            model, describe = typed[topic]
            try:
                return describe(rel, parse_message(model, raw))
            except PayloadError as exc:
                return Seen(f"{rel} MALFORMED {exc}")
        if topic == t.gateway_status or rel.startswith("svc/"):
            name = "plc_gateway" if topic == t.gateway_status else rel.split("/")[1]
            try:
                status = parse_message(ServiceStatus, raw)
            except PayloadError as exc:
                return Seen(f"svc {name} MALFORMED {exc}")
            plc, extra = status.plc, ""
            if plc is not None:
                extra = " plc reachable" if plc.reachable else f" PLC UNREACHABLE {plc.last_error or ''}"
            return Seen(f"svc {name} {status.state}{extra}".rstrip(), (status.state, extra), settled=True)
        return None


def _details(event: Envelope, shown: Sequence[str]) -> list[str]:
    return [f"{key}={_value(value)}" for key in shown if (value := getattr(event, key)) not in (None, "", [], {})]


def _batch_event(_rel: str, event: BatchEvent) -> Seen:
    parts = [event.mo_id or "-", event.event]
    if event.slot is not None:
        parts.append(f"slot {event.slot}")
    parts += _details(event, ("reason", "code", "weight", "warnings", "status"))
    return Seen(" ".join(parts))


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _read_slot(rel: str, snap: ReadSlotSnapshot) -> Seen:
    if not snap.valid:
        errors = "; ".join(snap.errors[:2])
        return Seen(f"{rel} INVALID {errors}", ("invalid", errors), settled=True)
    f = snap.batch
    if f is None:
        return Seen(f"{rel} empty", ("empty",))
    if f.status_operation:
        status = "failed"
    elif f.status_manufacturing:
        status = f"finished {f.weight_finished_good:.1f} kg"
    else:
        status = "running"
    if f.status_read_data:
        status += " acked"
    dosed = [(code, kg) for code, kg in f.consumption.items() if kg]
    # One line per snapshot stays readable: the first silos by name, then the total (full data: --json).
    kg = ", ".join(f"{code} {v:.1f} kg" for code, v in dosed[:SHOWN_SILOS])
    if len(dosed) > SHOWN_SILOS:
        kg += f", +{len(dosed) - SHOWN_SILOS} more, total {sum(v for _, v in dosed):.1f} kg"
    return Seen(f"{rel} {f.mo_id} {status} {kg}".rstrip(), (f.mo_id, status), settled=snap.heartbeat)


def _write_slot(rel: str, snap: WriteSlotSnapshot) -> Seen:
    if not snap.valid:
        return Seen(f"{rel} INVALID", ("invalid",), settled=True)
    w = snap.flag
    meaning = "taken by the PLC" if w == 1 else "waiting for the PLC"
    mo = "empty" if snap.empty else snap.mo_id
    return Seen(f"{rel} {mo} W={w} ({meaning})", (mo, w), settled=snap.heartbeat)


def _failure(rel: str, snap: FailureSnapshot) -> Seen:
    shown = snap.failure
    if not snap.pending or shown is None:
        return Seen(f"{rel} no failure pending", ("none",), settled=snap.heartbeat or not snap.valid)
    event = shown.event_id[:12]
    return Seen(
        f"{rel} {shown.equipment_code} {shown.description} pending (event {event})", event, settled=snap.heartbeat
    )


def _weighing_area(rel: str, snap: WeighingSnapshot) -> Seen:
    header = snap.fields
    mo_id = header.mo_id if isinstance(header, WeighingFields) else None
    parts = [f"{rel} {mo_id or '-'}"]
    parts += [f"item {it.item} {it.product_id} {it.kg or 0:.2f} kg pending" for it in snap.items if it.pending]
    parts += [f"item {it.item} REJECTED {'; '.join(it.errors)}" for it in snap.items if not it.valid]
    if len(parts) == 1:
        parts.append("nothing pending")
    if not snap.items and snap.errors:
        parts.append("INVALID " + "; ".join(snap.errors[:2]))
    return Seen(f"{parts[0]} {', '.join(parts[1:])}", tuple(parts), settled=snap.heartbeat)


def _weighing_event(_rel: str, event: WeighingEvent) -> Seen:
    parts = [f"weighing {event.weighing_id}", event.event]
    parts += _details(event, ("item", "mo_id", "product_id", "kg", "applied_kg", "code", "reason"))
    return Seen(" ".join(parts))


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
