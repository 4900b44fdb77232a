"""PLC diagnostics as data: what 0601 (CPU status), 0620 (cycle time) and 0701 (clock) mean for the plant, which
alarms they raise, and how they read in the gateway's status. Pure: no sockets, no clock of its own (callers
pass the gateway's time), so every rule here is unit-tested (tests/unit/test_gateway_diagnostics.py).

Two alarms, both about data going wrong without any error on the wire:
- `plc_mode`: the CPU left RUN/MONITOR (PROGRAM: the ladder stops, batches stop) or reports itself stopped in
  RUN/MONITOR (a fatal error stops the program without changing the mode).
- `plc_clock`: the PLC clock differs from the gateway's by more than the configured limit. failure_monitor
  takes failure times from the PLC clock, so a drifted clock puts wrong times into Odoo.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from shared.fins.frames import ControllerStatus, CycleTime
from shared.mqtt.status import CycleTimes, PlcAlarmStatus, PlcDiagnosticsStatus

AlarmKind = Literal["plc_mode", "plc_clock"]
ALARM_KINDS: tuple[AlarmKind, ...] = ("plc_mode", "plc_clock")
HEALTHY_MODES = frozenset({"RUN", "MONITOR"})
# The PLC clock counts whole seconds and truncates: a PLC exactly in step reads on average half a second behind
# the instant it was sampled. Adding it back centres the offset on 0 (resolution stays +/- 0.5 s).
CLOCK_RESOLUTION_S = 1.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One round of the three diagnostics commands."""

    status: ControllerStatus
    cycle: CycleTime
    plc_clock: dt.datetime  # naive: the plant's wall time as the PLC keeps it
    gateway_time: dt.datetime  # aware: the gateway's clock half-way through the 0701 exchange


@dataclass(frozen=True, slots=True)
class Alarm:
    kind: AlarmKind
    message: str


@dataclass(frozen=True, slots=True)
class Diagnosis:
    reading: Reading
    clock_offset_s: float
    alarms: tuple[Alarm, ...]


def clock_offset_s(plc_clock: dt.datetime, gateway_time: dt.datetime, zone: ZoneInfo) -> float:
    """PLC clock minus the gateway's, in seconds (positive: the PLC is ahead), rounded to 0.1 s.

    The PLC's naive wall time is placed in the plant's zone before subtracting, so a daylight-saving zone compares
    instants, not wall times. In the hour a daylight-saving change repeats, the wall time names two instants: the
    one nearer the gateway's clock is taken (the other would read as an hour's drift).
    """
    if plc_clock.tzinfo is not None:
        raise ValueError("the PLC clock is naive (plant wall time)")
    if gateway_time.tzinfo is None:
        raise ValueError("the gateway time must carry its timezone")
    gateway_utc = gateway_time.astimezone(dt.UTC)
    # Different tzinfo objects on both sides: Python subtracts in UTC (same object would subtract wall times).
    deltas = [(plc_clock.replace(tzinfo=zone, fold=fold) - gateway_utc).total_seconds() for fold in (0, 1)]
    delta = min(deltas, key=abs)
    return round(delta + CLOCK_RESOLUTION_S / 2, 1)


def alarms_of(status: ControllerStatus, offset_s: float, max_offset_s: float) -> tuple[Alarm, ...]:
    out: list[Alarm] = []
    mode = status.mode_name
    if mode not in HEALTHY_MODES:
        out.append(Alarm("plc_mode", f"PLC in {mode} mode: the program does not run, batches stop"))
    elif not status.running:
        out.append(
            Alarm(
                "plc_mode",
                f"PLC in {mode} mode but stopped (fatal error flags 0x{status.fatal_error:04X}"
                + (f", {status.error_message!r}" if status.error_message else "")
                + ")",
            )
        )
    if abs(offset_s) > max_offset_s:
        out.append(
            Alarm(
                "plc_clock",
                f"PLC clock is {offset_s:+.1f} s off the gateway's (limit {max_offset_s:g} s): "
                "failure times reported to Odoo are off by as much",
            )
        )
    return tuple(out)


def diagnose(reading: Reading, zone: ZoneInfo, max_offset_s: float) -> Diagnosis:
    offset = clock_offset_s(reading.plc_clock, reading.gateway_time, zone)
    return Diagnosis(reading, offset, alarms_of(reading.status, offset, max_offset_s))


@dataclass
class AlarmBook:
    """The alarms in force, with the time each was raised. `update` says what is new and what has cleared, so
    an alarm is announced once when it starts and once when it ends, not at every diagnostics round."""

    active: dict[AlarmKind, tuple[Alarm, dt.datetime]] = field(default_factory=dict)

    def update(self, current: tuple[Alarm, ...], now: dt.datetime) -> tuple[list[Alarm], list[Alarm]]:
        """(raised, cleared). A still-active alarm keeps its start time and takes the newest message."""
        now_kinds = {a.kind for a in current}
        cleared = [alarm for kind, (alarm, _) in self.active.items() if kind not in now_kinds]
        for alarm in cleared:
            del self.active[alarm.kind]
        raised: list[Alarm] = []
        for alarm in current:
            held = self.active.get(alarm.kind)
            if held is None:
                raised.append(alarm)
                self.active[alarm.kind] = (alarm, now)
            else:
                self.active[alarm.kind] = (alarm, held[1])
        return raised, cleared

    def as_list(self) -> list[PlcAlarmStatus]:
        return [
            PlcAlarmStatus(kind=alarm.kind, message=alarm.message, since=since.isoformat(timespec="seconds"))
            for alarm, since in self.active.values()
        ]


def status_view(
    diagnosis: Diagnosis | None, read_at: dt.datetime | None, error: str | None
) -> PlcDiagnosticsStatus:
    """The `diagnostics` of the gateway status (shared/mqtt/status.py; also what edgectl status prints)."""
    if diagnosis is None:
        return PlcDiagnosticsStatus(read_at=None, error=error)
    r = diagnosis.reading
    return PlcDiagnosticsStatus(
        mode=r.status.mode_name,
        running=r.status.running,
        fatal_error=r.status.fatal_error,
        non_fatal_error=r.status.non_fatal_error,
        error_message=r.status.error_message or None,
        cycle_ms=CycleTimes(average=r.cycle.average_ms, max=r.cycle.max_ms, min=r.cycle.min_ms),
        plc_clock=r.plc_clock.isoformat(timespec="seconds"),
        clock_offset_s=diagnosis.clock_offset_s,
        read_at=read_at.isoformat(timespec="seconds") if read_at else None,
        error=error,  # the last round's failure; the values above are then from the round before
    )
