"""``edgectl status``: every service's retained status, the PLC link, and the database's view of the work.

Exit 0 all online and the PLC reachable; 1 degraded (a service offline, the PLC unreachable, a PLC alarm: mode
left RUN/MONITOR or clock off, batches waiting for an operator); 3 the broker or the database did not answer
(what could be read is still printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import func, select

from edgectl import connection
from edgectl.bus import Bus
from edgectl.commands import EXIT_DEGRADED, EXIT_OK, EXIT_UNREACHABLE
from edgectl.db import session_factory
from edgectl.errors import Unreachable
from edgectl.output import to_json, when
from shared.db.models import EquipmentFailure, ManualWeighing, MoBatch, MoHistory
from shared.mqtt.payloads import iso
from shared.mqtt.status import ServiceStatus
from shared.mqtt.topics import Topics
from shared.mqtt.wire import receive

SERVICES = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor")
log = logging.getLogger("edgectl")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="services, PLC link, queue, attention and failures at a glance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--timeout", type=float, default=1.5, help="seconds to wait for the retained status messages (1.5)"
    )
    connection.add_arguments(p)
    p.set_defaults(func=run)


def _service_topic(topics: Topics, name: str) -> str:
    # The gateway's status lives on gateway/status (it carries the PLC link); the others on svc/<name>/status.
    return topics.gateway_status if name == "plc_gateway" else topics.svc_status(name)


def read_statuses(conn: connection.Connection, wait_s: float) -> dict[str, ServiceStatus]:
    """Retained status per topic (a message that is not a status is refused and logged, as if absent).
    Returns early once every expected topic has answered."""
    topics = conn.topics
    wanted = {_service_topic(topics, n) for n in SERVICES}
    seen: dict[str, ServiceStatus] = {}
    with Bus(conn.broker(), [topics.svc_status("+"), topics.gateway_status]) as bus:
        deadline = time.monotonic() + wait_s
        while not wanted <= seen.keys() and (left := deadline - time.monotonic()) > 0:
            msg = bus.get(left)
            if msg is not None and (status := receive(ServiceStatus, msg.payload, msg.topic, log)) is not None:
                seen[msg.topic] = status
    return seen


def services_view(topics: Topics, seen: dict[str, ServiceStatus]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in SERVICES:
        status = seen.get(_service_topic(topics, name))
        if status is None:
            out[name] = {"online": False}
            continue
        out[name] = {"online": status.online, "since": iso(status.ts), **status.details()}
    # Services the system does not know yet (a replica, a future service) are shown too.
    prefix, suffix = f"{topics.root}/svc/", "/status"
    for topic, status in seen.items():
        name = topic.removeprefix(prefix).removesuffix(suffix)
        if topic.startswith(prefix) and name not in out:
            out[name] = {"online": status.online, "since": iso(status.ts)}
    return out


def plc_view(seen: dict[str, ServiceStatus], topics: Topics) -> dict[str, Any]:
    gw = seen.get(topics.gateway_status)
    plc = gw.plc if gw else None
    if plc is None or gw is None or not gw.online:
        return {"reachable": False, "rtt_ms": None, "last_error": "no status from an online plc_gateway"}
    return {
        "reachable": plc.reachable,
        "rtt_ms": plc.rtt_ms,
        "last_error": plc.last_error,
        "host": plc.host,
        "port": plc.port,
        "node": plc.node,
        "slots": gw.slots,
        "map_version": gw.map_version,
        "poll_interval_ms": gw.poll_interval_ms,
        # None: PLC_DIAG_INTERVAL_S=0 or an older gateway
        "diagnostics": plc.diagnostics.model_dump(mode="json") if plc.diagnostics else None,
        "alarms": [a.model_dump(mode="json") for a in plc.alarms or ()],
    }


def diagnostics_line(diag: Any) -> str | None:
    """PLC mode, scan time and clock offset for people, from the gateway's last diagnostics round."""
    if not isinstance(diag, dict):
        return None
    if diag.get("mode") is None:
        return f"PLC diag   not read yet{': ' + str(diag['error']) if diag.get('error') else ''}"
    cycle = diag.get("cycle_ms") or {}
    parts = [
        f"mode {diag['mode']}" + ("" if diag.get("running") else " (stopped)"),
        f"scan {cycle.get('average')} ms avg, {cycle.get('max')} max, {cycle.get('min')} min",
        f"clock {diag.get('clock_offset_s'):+} s vs gateway",
    ]
    if diag.get("fatal_error") or diag.get("non_fatal_error"):
        parts.append(
            f"errors fatal 0x{diag.get('fatal_error', 0):04X} non-fatal 0x{diag.get('non_fatal_error', 0):04X}"
        )
    line = "PLC diag   " + ", ".join(parts) + f" (read {diag.get('read_at')})"
    if diag.get("error"):
        line += f"; last round failed: {diag['error']}"
    return line


def database_view(conn: connection.Connection) -> dict[str, Any]:
    with session_factory(conn, timeout_s=3) as factory, factory() as s:
        states = {k: int(v) for k, v in s.execute(select(MoBatch.state, func.count()).group_by(MoBatch.state))}
        completed = s.scalar(select(func.count()).select_from(MoHistory).where(MoHistory.status == "completed"))
        attention = s.execute(
            select(MoBatch.mo_id, MoBatch.attention_from, MoBatch.last_error, MoBatch.attention_at)
            .where(MoBatch.state == "attention")
            .order_by(MoBatch.attention_at, MoBatch.id)
        ).all()
        stored = s.scalar(select(func.count()).select_from(EquipmentFailure))
        unreported = s.scalar(
            select(func.count()).select_from(EquipmentFailure).where(EquipmentFailure.reported_at.is_(None))
        )
        failure_attention = s.scalar(
            select(func.count())
            .select_from(EquipmentFailure)
            .where(EquipmentFailure.attention_reason.is_not(None))
        )
        weighings = s.execute(
            select(
                func.count(),
                func.count().filter(ManualWeighing.acked_at.is_(None)),
                func.count().filter(ManualWeighing.reported_at.is_(None)),
                func.count().filter(ManualWeighing.attention_reason.is_not(None)),
            ).select_from(ManualWeighing)
        ).one()
    return {
        "queue": sum(states.values()),
        "queue_states": dict(sorted(states.items())),
        "completed": int(completed or 0),
        "attention": len(attention),
        "attention_items": [
            {"mo_id": r.mo_id, "from": r.attention_from, "reason": r.last_error, "since": r.attention_at}
            for r in attention
        ],
        "failures": {
            "stored": int(stored or 0),
            "unreported": int(unreported or 0),
            "attention": int(failure_attention or 0),
        },
        "weighings": {
            "stored": int(weighings[0]),
            "unacked": int(weighings[1]),
            "unreported": int(weighings[2]),
            "attention": int(weighings[3]),
        },
    }


def health_urls(environ: dict[str, str] | None = None) -> dict[str, str]:
    """EDGECTL_HEALTH_URLS: `service=http://host:port/healthz` pairs, comma-separated (docker-compose sets it
    for its `edgectl` service; elsewhere it is optional)."""
    text = (environ if environ is not None else dict(os.environ)).get("EDGECTL_HEALTH_URLS", "")
    urls: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        name, sep, url = item.strip().partition("=")
        if sep and name.strip() and url.strip():
            urls[name.strip()] = url.strip()
    return urls


def readiness_view(urls: dict[str, str], timeout: float = 3.0) -> dict[str, dict[str, Any]]:
    """Each service's own /healthz: ready or not, and the problems it names (broker, database, odoo, plc)."""
    view: dict[str, dict[str, Any]] = {}
    for name, url in urls.items():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:  # 503 = not ready; the body says why
            body = json.loads(exc.read() or b"{}")
        except (OSError, ValueError) as exc:
            view[name] = {"ready": False, "problems": [f"/healthz unreachable ({type(exc).__name__})"]}
            continue
        problems = [str(p) for p in body.get("problems", [])] if isinstance(body, dict) else []
        ready = bool(body.get("healthy")) if isinstance(body, dict) else False
        if not ready and not problems:
            problems = ["not healthy"]
        view[name] = {"ready": ready, "problems": problems}
    return view


def run(args: argparse.Namespace) -> int:
    conn = connection.resolve(args)
    broker = conn.broker()  # bad settings are exit 2 before anything is tried
    conn.sqlalchemy_url()
    doc: dict[str, Any] = {"topic_root": conn.topics.root, "broker": broker.redacted()}
    unreachable: list[str] = []
    broker_ok = True
    try:
        seen = read_statuses(conn, args.timeout)
    except Unreachable as exc:
        unreachable.append(str(exc))
        seen, broker_ok = {}, False
    doc["services"] = services_view(conn.topics, seen)
    doc["plc"] = plc_view(seen, conn.topics)
    try:
        doc.update(database_view(conn))
    except Unreachable as exc:
        unreachable.append(str(exc))
    doc["broker_reachable"] = broker_ok
    doc["readiness"] = readiness_view(health_urls())
    # Without the broker nothing is known about the services: say that once instead of "offline" five times.
    problems = [f"{name} offline" for name, s in doc["services"].items() if broker_ok and not s["online"]]
    for name, ready in doc["readiness"].items():
        problems.extend(f"{name} not ready: {problem}" for problem in ready["problems"])
    if broker_ok and not doc["plc"]["reachable"]:
        problems.append(f"PLC unreachable ({doc['plc'].get('last_error') or 'no detail'})")
    problems += [f"PLC alarm: {a.get('message') or a.get('kind')}" for a in doc["plc"].get("alarms") or ()]
    if doc.get("attention"):
        problems.append(f"{doc['attention']} batch(es) need an operator (edgectl retry/cancel)")
    if doc.get("failures", {}).get("attention"):
        problems.append(
            f"{doc['failures']['attention']} failure event(s) Odoo cannot accept (edgectl failures --attention)"
        )
    if doc.get("weighings", {}).get("attention"):
        problems.append(
            f"{doc['weighings']['attention']} manual weighing(s) need a person (edgectl weighings --attention)"
        )
    doc["problems"] = unreachable + problems
    doc["ok"] = not doc["problems"]
    print(to_json(doc) if args.json else human(doc))
    if unreachable:
        return EXIT_UNREACHABLE
    return EXIT_DEGRADED if problems else EXIT_OK


def human(doc: dict[str, Any]) -> str:
    lines = [f"broker     {doc['broker']}  root {doc['topic_root']}"]
    if not doc["broker_reachable"]:
        lines.append("services   unknown (broker unreachable)")
    for name, s in doc["services"].items() if doc["broker_reachable"] else ():
        state = "online " if s["online"] else "OFFLINE"
        version = f"v{s['version']}" if s.get("version") else ""
        ready = doc.get("readiness", {}).get(name)
        verdict = (
            ""
            if ready is None
            else "  ready"
            if ready["ready"]
            else "  NOT READY: " + "; ".join(ready["problems"])
        )
        lines.append(f"{name:<16} {state} {version}{verdict}".rstrip())
    plc = doc["plc"]
    if not doc["broker_reachable"]:
        pass  # nothing known about the PLC either: the line above says why
    elif plc["reachable"]:
        rtt = f"rtt {plc['rtt_ms']} ms" if plc.get("rtt_ms") is not None else "rtt -"
        lines.append(f"PLC        reachable, {rtt}, {plc.get('host')}:{plc.get('port')} node {plc.get('node')}")
    else:
        lines.append(f"PLC        UNREACHABLE: {plc.get('last_error') or '-'}")
    if doc["broker_reachable"] and (diag := diagnostics_line(plc.get("diagnostics"))):
        lines.append(diag)
    for alarm in plc.get("alarms") or () if doc["broker_reachable"] else ():
        lines.append(f"PLC ALARM  {alarm.get('message') or alarm.get('kind')} (since {alarm.get('since')})")
    if "queue" in doc:
        states = ", ".join(f"{k} {v}" for k, v in doc["queue_states"].items()) or "empty"
        lines.append(f"queue      {doc['queue']} batch(es): {states}")
        lines.append(f"completed  {doc['completed']}")
        f = doc["failures"]
        lines.append(
            f"failures   {f['stored']} stored, {f['unreported']} not yet reported to Odoo, "
            f"{f['attention']} in ATTENTION (edgectl failures --attention)"
        )
        w = doc["weighings"]
        lines.append(
            f"weighings  {w['stored']} stored, {w['unacked']} not yet acked on the PLC, {w['unreported']} not yet "
            f"booked in Odoo, {w['attention']} in ATTENTION (edgectl weighings --attention)"
        )
        lines.append(f"attention  {doc['attention']}")
        for item in doc["attention_items"]:
            lines.append(f"  {item['mo_id']}  since {when(item['since'])}  from {item['from']}: {item['reason']}")
    lines.append("status     OK" if doc["ok"] else "status     " + "; ".join(doc["problems"]))
    return "\n".join(lines)
