"""View models of the console, pure: MQTT state + database rows in, what a page shows out (no I/O, no clock
unless passed). Every status has a word as well as a colour class (`tone`), so nothing depends on colour alone.

`LiveState` is what the console knows from the broker: the retained status of every service (birth/LWT), the
gateway's status (PLC link), and the latest READ/WRITE snapshot of every slot (shared/mqtt/snapshots.py; a
message that is not one is held as an invalid snapshot).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.mqtt.payloads import iso
from shared.mqtt.snapshots import BatchSlotSnapshot, ReadSlotSnapshot, WriteSlotSnapshot
from shared.mqtt.status import PlcLinkStatus, ServiceStatus
from shared.mqtt.topics import Topics
from shared.mqtt.wire import receive

Tone = Literal["ok", "warn", "bad", "idle"]
# The services the line needs; others that publish a status (e.g. the console itself) are listed after them.
EXPECTED_SERVICES = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor")
log = logging.getLogger(__name__)
RECEIVER = "console"  # names the console as the source of a snapshot it refused
# What changes in a retained message without changing what a page shows.
UNSHOWN = frozenset({"ts", "seq", "heartbeat"})


@dataclass
class LiveState:
    topics: Topics
    statuses: dict[str, ServiceStatus] = field(default_factory=dict)  # service name -> its status
    reads: dict[int, ReadSlotSnapshot] = field(default_factory=dict)
    writes: dict[int, WriteSlotSnapshot] = field(default_factory=dict)
    broker_connected: bool = False

    def apply(self, topic: str, payload: bytes) -> bool:
        """Take one message; True when it changes what a page shows (heartbeats of unchanged snapshots don't)."""
        t = self.topics
        slot = t.slot_of(topic)
        if slot is not None:
            if topic == t.plc_read(slot):
                return _changed(self.reads, slot, ReadSlotSnapshot.received(payload, slot, RECEIVER))
            return _changed(self.writes, slot, WriteSlotSnapshot.received(payload, slot, RECEIVER))
        name: str | None = None
        if topic == t.gateway_status:
            name = "plc_gateway"
        prefix, suffix = f"{t.root}/svc/", "/status"
        if topic.startswith(prefix) and topic.endswith(suffix):
            name = topic.removeprefix(prefix).removesuffix(suffix)
        if not name or "/" in name:
            return False
        # A status that is not one is refused (logged): the service then shows as having no status.
        status = receive(ServiceStatus, payload, topic, log)
        if status is None:
            return self.statuses.pop(name, None) is not None
        return _changed(self.statuses, name, status)


def _shown(message: BatchSlotSnapshot | ServiceStatus) -> dict[str, Any]:
    body = message.model_dump(mode="json")
    return {k: v for k, v in body.items() if k not in UNSHOWN}


def _changed(store: dict[Any, Any], key: Any, message: BatchSlotSnapshot | ServiceStatus) -> bool:
    """Store the message; True when it differs from the one it replaces in what a page shows."""
    old = store.get(key)
    store[key] = message
    return old is None or _shown(old) != _shown(message)


# ---------------------------------------------------------------- overview pieces


@dataclass(frozen=True)
class ServiceRow:
    name: str
    state: str  # online / OFFLINE / NO STATUS
    tone: Tone
    since: str | None
    version: str | None


def service_rows(statuses: Mapping[str, ServiceStatus]) -> list[ServiceRow]:
    names = list(EXPECTED_SERVICES) + sorted(n for n in statuses if n not in EXPECTED_SERVICES)
    rows = []
    for name in names:
        body = statuses.get(name)
        if body is None:
            rows.append(ServiceRow(name, "NO STATUS", "bad", None, None))
            continue
        rows.append(
            ServiceRow(
                name,
                "online" if body.online else "OFFLINE",
                "ok" if body.online else "bad",
                iso(body.ts),
                body.version,
            )
        )
    return rows


@dataclass(frozen=True)
class DiagItem:
    """One PLC diagnostics value: label, the value as text, its tone, and the DOM id the tests look for."""

    key: str
    label: str
    value: str
    tone: Tone


@dataclass(frozen=True)
class PlcRow:
    state: str
    tone: Tone
    detail: str
    slots: int | None
    diagnostics: tuple[DiagItem, ...] = ()
    alarms: tuple[str, ...] = ()  # the gateway's active PLC alarms, as it words them


# The gateway decides the alarms (PLC_CLOCK_MAX_OFFSET_S is its setting); the console only says which value
# each alarm is about, so the value is coloured by the same verdict (kinds: docs/plc-diagnostics.md).
ALARM_OF_ITEM = {"plc-mode": "plc_mode", "plc-clock": "plc_clock"}


def plc_diagnostics(plc: PlcLinkStatus) -> tuple[tuple[DiagItem, ...], tuple[str, ...]]:
    """PLC mode, scan time and clock offset from the gateway status's `plc.diagnostics` and `plc.alarms`."""
    alarms = plc.alarms or []
    kinds = {a.kind for a in alarms}
    texts = tuple(a.message or a.kind for a in alarms)
    diag = plc.diagnostics
    if diag is None:
        # PLC_DIAG_INTERVAL_S=0, or a gateway from before the diagnostics: nothing to show, nothing alarming.
        return (DiagItem("plc-diag", "PLC diagnostics", "off", "idle"),), texts
    if diag.mode is None:
        error = f": {diag.error}" if diag.error else ""
        return (DiagItem("plc-diag", "PLC diagnostics", f"NOT READ YET{error}", "warn"),), texts

    def tone(key: str) -> Tone:
        return "bad" if ALARM_OF_ITEM[key] in kinds else "ok"

    mode = diag.mode + ("" if diag.running is not False else " (stopped)")
    cycle = diag.cycle_ms
    offset = diag.clock_offset_s
    items = [
        DiagItem(
            "plc-mode", "PLC mode", mode + (": ALARM" if tone("plc-mode") == "bad" else ""), tone("plc-mode")
        ),
        DiagItem(
            "plc-scan",
            "scan time",
            f"{cycle.average if cycle else None} ms avg, {cycle.max if cycle else None} ms max",
            "ok",
        ),
        DiagItem(
            "plc-clock",
            "PLC clock",
            (f"{offset:+.1f} s vs gateway" if offset is not None else "unknown")
            + (": ALARM" if tone("plc-clock") == "bad" else ""),
            tone("plc-clock"),
        ),
    ]
    if diag.error:
        items.append(DiagItem("plc-diag", "last diagnostics round", f"FAILED: {diag.error}", "warn"))
    return tuple(items), texts


def plc_row(gateway: ServiceStatus | None) -> PlcRow:
    if gateway is None or not gateway.online:
        return PlcRow("UNKNOWN", "bad", "no status from an online plc_gateway", None)
    plc = gateway.plc or PlcLinkStatus(host="", port=0, node=0, reachable=False)
    diagnostics, alarms = plc_diagnostics(plc)
    if plc.reachable:
        rtt = plc.rtt_ms
        return PlcRow(
            "reachable", "ok", f"rtt {rtt} ms" if rtt is not None else "rtt -", gateway.slots, diagnostics, alarms
        )
    return PlcRow("UNREACHABLE", "bad", plc.last_error or "no detail", gateway.slots, diagnostics, alarms)


@dataclass(frozen=True)
class SiloProgress:
    code: str
    actual: float
    target: float

    @property
    def percent(self) -> int:
        if self.target <= 0:
            return 100 if self.actual > 0 else 0
        return max(0, min(100, round(100 * self.actual / self.target)))


@dataclass(frozen=True)
class SlotRow:
    slot: int
    mo_id: str | None
    phase: str
    tone: Tone
    silos: list[SiloProgress]
    db_state: str | None


def phase_of(read: ReadSlotSnapshot | None) -> tuple[str, Tone]:
    if read is None:
        return "NO DATA", "bad"
    if not read.valid:
        return "INVALID DATA", "bad"
    held = read.batch
    if held is None:
        return "idle", "idle"
    if held.status_operation:
        return "FAILED on the PLC", "bad"
    if held.status_manufacturing:
        return "finished", "ok"
    return "dosing", "ok"


def slot_rows(
    slots: Iterable[int],
    reads: Mapping[int, ReadSlotSnapshot],
    targets: Mapping[str, Mapping[str, float]],
    db_states: Mapping[str, str],
) -> list[SlotRow]:
    """Per PLC slot: the MO it holds, its phase, and per silo/tank the PLC's actual against the stored target
    (only equipment with a target or an actual is listed)."""
    rows = []
    for slot in slots:
        read = reads.get(slot)
        phase, tone = phase_of(read)
        held = read.batch if read is not None else None
        mo_id = held.mo_id if held is not None else None
        actuals = dict(held.consumption) if held is not None else {}
        wanted = targets.get(mo_id, {}) if mo_id else {}
        codes = [c for c in dict.fromkeys([*wanted, *actuals]) if wanted.get(c) or actuals.get(c)]
        silos = [SiloProgress(c, actuals.get(c, 0.0), float(wanted.get(c, 0.0))) for c in codes]
        rows.append(SlotRow(slot, mo_id, phase, tone, silos, db_states.get(mo_id) if mo_id else None))
    return rows


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


STATE_TONE: Mapping[str, Tone] = {
    "queued": "idle",
    "written": "ok",
    "accepted": "ok",
    "running": "ok",
    "finished": "ok",
    "reported": "ok",
    "failed": "warn",
    "cancelled": "idle",
    "attention": "bad",
    "completed": "ok",
}


def tone_of_state(state: str | None) -> Tone:
    return STATE_TONE.get(state or "", "idle")


@dataclass(frozen=True)
class Banner:
    text: str
    href: str


def banners(
    attention_batches: Sequence[str],
    attention_failures: int,
    services: Sequence[ServiceRow],
    plc: PlcRow,
    broker_connected: bool,
    attention_weighings: int = 0,
) -> list[Banner]:
    """Everything that needs a person, most urgent first; empty when all is well."""
    out = []
    if not broker_connected:
        out.append(Banner("CONSOLE NOT CONNECTED TO THE BROKER: live data is stale", "/"))
    if attention_batches:
        names = ", ".join(attention_batches[:5]) + (" ..." if len(attention_batches) > 5 else "")
        out.append(
            Banner(f"ATTENTION: {len(attention_batches)} batch(es) need an operator: {names}", "/attention")
        )
    if attention_failures:
        out.append(
            Banner(f"ATTENTION: {attention_failures} failure report(s) Odoo cannot accept", "/attention#failures")
        )
    if attention_weighings:
        out.append(
            Banner(
                f"ATTENTION: {attention_weighings} manual weighing(s) need an operator", "/weighings?attention=1"
            )
        )
    if broker_connected:
        down = [s.name for s in services if s.tone == "bad" and s.name in EXPECTED_SERVICES]
        if down:
            out.append(Banner(f"SERVICE DOWN: {', '.join(down)}", "/"))
        if plc.tone == "bad":
            out.append(Banner(f"PLC {plc.state}: {plc.detail}", "/"))
        out.extend(Banner(f"PLC ALARM: {text}", "/#plc") for text in plc.alarms)
    return out


# ---------------------------------------------------------------- manual weighings


def weighing_status(
    acked: bool, reported: bool, attention_reason: str | None, applied_kg: Any, kg: Any
) -> tuple[str, Tone]:
    """One manual weighing's state as a word and a tone (the row's columns in, no I/O)."""
    if attention_reason is not None:
        if not acked:
            return "ATTENTION: did the PLC take it?", "bad"
        return ("ATTENTION: booked in part" if reported else "ATTENTION"), "bad"
    if not acked:
        return "stored, not acked on the PLC", "warn"
    if not reported:
        return "waiting for Odoo", "warn"
    if applied_kg == kg:
        return "booked", "ok"
    return f"closed: {applied_kg} of {kg} kg booked by the gateway", "idle"


# ---------------------------------------------------------------- history search


@dataclass(frozen=True)
class HistoryQuery:
    mo: str = ""
    status: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    page: int = 1
    errors: tuple[str, ...] = ()

    def params(self, page: int | None = None) -> dict[str, str]:
        """Query-string parameters reproducing this search (for paging and the CSV link)."""
        out = {
            "mo": self.mo,
            "status": self.status,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        if page is not None:
            out["page"] = str(page)
        return {k: v for k, v in out.items() if v}


def parse_history_query(args: Mapping[str, str], statuses: Iterable[str]) -> HistoryQuery:
    """Form input -> a validated query; bad fields are dropped and named in `errors`, never passed to SQL."""
    errors = []
    mo = args.get("mo", "").strip()[:64]
    status = args.get("status", "").strip()
    if status and status not in set(statuses):
        errors.append(f"unknown status {status!r}")
        status = ""
    dates: list[dt.date | None] = []
    for key in ("from", "to"):
        text = args.get(key, "").strip()
        try:
            dates.append(dt.date.fromisoformat(text) if text else None)
        except ValueError:
            errors.append(f"{key}: {text!r} is not a date (YYYY-MM-DD)")
            dates.append(None)
    try:
        page = max(1, int(args.get("page", "1") or "1"))
    except ValueError:
        page = 1
    return HistoryQuery(mo, status, dates[0], dates[1], page, tuple(errors))


def pages(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV with a header; cells that a spreadsheet would run as a formula are prefixed with a quote."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
