"""The gateway's PLC diagnostics round (I/O side of diagnostics.py): 0601, 0620 and 0701 every
PLC_DIAG_INTERVAL_S, beside the poll, then metrics, the status and alarm events.

Each diagnostics command is one FINS command through the same client as the poll and the batch commands. The
client serves one request at a time in arrival order, so a batch command waits behind at most the one
diagnostics command in flight (about one scan), never behind a whole round. Diagnostics are sent without
retries: a missed round is simply the next round's job, and a retry would only hold the PLC link longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Literal
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.fins.client import FinsClient
from shared.fins.errors import FinsError
from shared.fins.frames import MODE_NAMES
from shared.mqtt.events import GatewayEvent
from shared.mqtt.payloads import utc_now
from shared.mqtt.status import PlcAlarmStatus, PlcDiagnosticsStatus

from .diagnostics import ALARM_KINDS, Alarm, AlarmBook, Diagnosis, Reading, diagnose, status_view

log = logging.getLogger("plc_gateway.diagnostics")


class DiagnosticsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.rounds = Counter(
            "gateway_plc_diagnostics", "PLC diagnostics rounds by result", ["result"], registry=r
        )
        self.mode = Gauge("gateway_plc_mode", "1 for the PLC's current operating mode", ["mode"], registry=r)
        self.running = Gauge("gateway_plc_running", "1 when the PLC runs its program (0601 status)", registry=r)
        self.fatal = Gauge("gateway_plc_fatal_error_flags", "0601 fatal error flags (0 = none)", registry=r)
        self.non_fatal = Gauge("gateway_plc_non_fatal_error_flags", "0601 non-fatal error flags", registry=r)
        self.cycle = Gauge("gateway_plc_cycle_time_seconds", "PLC scan time (0620)", ["stat"], registry=r)
        self.clock_offset = Gauge(
            "gateway_plc_clock_offset_seconds", "PLC clock minus the gateway's clock (0701)", registry=r
        )
        self.alarm = Gauge("gateway_plc_alarm", "1 while a PLC alarm is active", ["kind"], registry=r)
        for kind in ALARM_KINDS:
            self.alarm.labels(kind).set(0)

    def observe(self, d: Diagnosis) -> None:
        s, c = d.reading.status, d.reading.cycle
        for name in MODE_NAMES.values():
            self.mode.labels(name).set(1 if name == s.mode_name else 0)
        self.running.set(1 if s.running else 0)
        self.fatal.set(s.fatal_error)
        self.non_fatal.set(s.non_fatal_error)
        for stat, ms in (("average", c.average_ms), ("max", c.max_ms), ("min", c.min_ms)):
            self.cycle.labels(stat).set(ms / 1000)
        self.clock_offset.set(d.clock_offset_s)
        active = {a.kind for a in d.alarms}
        for kind in ALARM_KINDS:
            self.alarm.labels(kind).set(1 if kind in active else 0)


class PlcDiagnostics:
    """Runs the rounds; `status()` is merged into the gateway status, events go out through `publish_event`."""

    def __init__(
        self,
        fins: FinsClient,
        registry: CollectorRegistry,
        *,
        interval_s: float,
        max_clock_offset_s: float,
        timezone: str,
        publish_event: Callable[[GatewayEvent], object],
        on_change: Callable[[], object],
        source: str,
        ready: Callable[[], bool] = lambda: True,
        wait_turn: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.fins = fins
        self.metrics = DiagnosticsMetrics(registry)
        self.interval_s = interval_s
        self.max_clock_offset_s = max_clock_offset_s
        self.zone = ZoneInfo(timezone)
        self.publish_event = publish_event
        self.source = source  # the sending service, named in every event
        self.on_change = on_change  # republish the gateway status
        self.ready = ready
        self.wait_turn = wait_turn  # commands first (turns.py): each read waits while a command runs
        self.alarms = AlarmBook()
        self.last: Diagnosis | None = None
        self.read_at: dt.datetime | None = None
        self.error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0

    async def _turn(self) -> None:
        if self.wait_turn is not None:
            await self.wait_turn()

    async def read(self) -> Reading:
        await self._turn()
        status = await self.fins.controller_status(retries=0)
        await self._turn()
        cycle = await self.fins.cycle_time(retries=0)
        await self._turn()
        before = dt.datetime.now(dt.UTC)
        clock = await self.fins.clock(retries=0)
        after = dt.datetime.now(dt.UTC)
        return Reading(status, cycle, clock, before + (after - before) / 2)

    async def round(self) -> Diagnosis | None:
        """One round: read, judge, publish. A FINS failure is recorded; the alarms stay as they were."""
        try:
            reading = await self.read()
        except FinsError as exc:
            self.metrics.rounds.labels("error").inc()
            changed = self.error is None
            self.error = str(exc)
            if changed:
                log.warning("PLC diagnostics failed", extra={"error": self.error})
                self.on_change()
            return None
        diagnosis = diagnose(reading, self.zone, self.max_clock_offset_s)
        self.metrics.rounds.labels("ok").inc()
        self.metrics.observe(diagnosis)
        now = dt.datetime.now(dt.UTC)
        raised, cleared = self.alarms.update(diagnosis.alarms, now)
        first = self.last is None
        mode_changed = self.last is not None and self.last.reading.status != reading.status
        self.last, self.read_at, self.error = diagnosis, now, None
        for alarm in raised:
            log.error("PLC alarm", extra={"alarm": alarm.kind, "detail": alarm.message})
            self.publish_event(self._event("alarm", alarm, diagnosis))
        for alarm in cleared:
            log.info("PLC alarm cleared", extra={"alarm": alarm.kind})
            self.publish_event(self._event("cleared", alarm, diagnosis))
        if first or raised or cleared or mode_changed:
            self.on_change()
        return diagnosis

    def _event(self, kind: Literal["alarm", "cleared"], alarm: Alarm, d: Diagnosis) -> GatewayEvent:
        return GatewayEvent(
            ts=utc_now(),
            source=self.source,
            event=kind,
            alarm=alarm.kind,
            message=alarm.message,
            mode=d.reading.status.mode_name,
            clock_offset_s=d.clock_offset_s,
        )

    async def loop(self, stop: asyncio.Event) -> None:
        if not self.enabled:
            return
        # An alarm is announced once, when raised: at start-up wait (bounded) for the broker connection, so the
        # first round's event (a PLC found in PROGRAM mode) does not go into a link still down, and for the
        # first poll's verdict on the PLC link, so the status the first round publishes does not call a PLC
        # "unreachable" that nobody has polled yet.
        for _ in range(200):
            if self.ready() or stop.is_set():
                break
            await asyncio.sleep(0.05)
        while not stop.is_set():
            await self.round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

    def status(self) -> tuple[PlcDiagnosticsStatus | None, list[PlcAlarmStatus]]:
        """`diagnostics` and `alarms` of the gateway status's PLC link (None: diagnostics are off)."""
        if not self.enabled:
            return None, []
        return status_view(self.last, self.read_at, self.error), self.alarms.as_list()
