"""The CJ2M's time: a scan cycle that serves FINS at its end, the cycle-time statistics (0620), the PLC clock
(0701) and the operating mode (0601). Kept apart from the FINS port and the program so each stays small.

A real CPU runs its program, refreshes I/O and then services peripherals (FINS among them) before the next scan
(docs/fins.md F10: one or two scans, 5-40 ms per command). Omron's own worst case for a host's command (W343
5-4, "maximum transfer delay": host + reception processing + CPU cycle time + CPU data processing) waits for
the CPU for at most ONE cycle: a command that reaches the CPU during scan N is served in the peripheral
servicing at the end of scan N. The model:

- Every `scan_ms` the program runs once (latching, dosing, flags, failures), then at most `commands_per_scan`
  queued commands are served, in arrival order.
- A command reaches the CPU `port_ms` after its datagram arrived (the Ethernet port's reception processing;
  W343's ETN21 figures: about 0.7 ms plus 0.003 ms a word, and the CPU Bus Unit service 0.4-1 ms) and is served
  at the end of the scan during which it reached the CPU; arriving later than that, at the end of the next one.
  A reply leaves `port_ms` after it was served (transmission processing). So a command waits between
  `port_ms` and one scan plus `port_ms`; commands sent back to back, each right after the previous reply, are
  served one scan apart, never faster: a command costs at least one scan of the link.
- Every command served at one end of scan sees the memory of that one scan: a read never mixes two scans (the
  program never runs while commands are served).
- `scan_ms = 0` keeps the instant replies of the old simulator (unit-speed tests): commands are served as they
  arrive, with no port time, and the program runs every 10 ms.

The default scan time comes from `PLC_SIM_SCAN_MS` (10 ms when unset), so a test run can switch the whole
simulated plant between "PLC time" and "instant" without touching each fixture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.fins import frames

log = logging.getLogger("plc_sim.scan")

DEFAULT_SCAN_MS = 10.0
DEFAULT_COMMANDS_PER_SCAN = 2
DEFAULT_PORT_MS = 1.0  # the Ethernet port's processing each way (see the module docstring)
INSTANT_PROGRAM_PERIOD_S = 0.010  # scan_ms = 0: the program still runs, commands do not wait for it
SCAN_MS_ENV = "PLC_SIM_SCAN_MS"
DEFAULT_TIMEZONE = "Asia/Jakarta"  # the plant's, as PLANT_TIMEZONE defaults in the services
MODES = {"RUN": frames.MODE_RUN, "MONITOR": frames.MODE_MONITOR, "PROGRAM": frames.MODE_PROGRAM}

Address = tuple[str, int]


def default_scan_ms() -> float:
    """`PLC_SIM_SCAN_MS` when set (0 = instant replies), else a CJ2M-like 10 ms."""
    text = os.environ.get(SCAN_MS_ENV, "").strip()
    if not text:
        return DEFAULT_SCAN_MS
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{SCAN_MS_ENV}={text!r} is not a number of milliseconds") from None
    if not 0 <= value <= 1000:
        raise ValueError(f"{SCAN_MS_ENV}={text!r} outside 0..1000 ms")
    return value


class CycleStats:
    """Measured scan times since start (or the last 0620 reset), as the CPU reports them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.min_s = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        self.min_s = seconds if self.count == 1 else min(self.min_s, seconds)

    def milliseconds(self) -> tuple[float, float, float]:
        """(average, max, min) in ms."""
        if not self.count:
            return 0.0, 0.0, 0.0
        return 1000 * self.total_s / self.count, 1000 * self.max_s, 1000 * self.min_s


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not an IANA timezone") from None


class PlcClock:
    """The PLC's battery clock: plant wall time (naive) plus a settable offset (drift, a wrong setting)."""

    def __init__(self, timezone: str | None = None, offset_s: float = 0.0) -> None:
        self.zone = _zone(timezone or os.environ.get("PLANT_TIMEZONE") or DEFAULT_TIMEZONE)
        self.offset_s = offset_s

    def now(self) -> dt.datetime:
        real = dt.datetime.now(self.zone)
        return real.replace(tzinfo=None, microsecond=0) + dt.timedelta(seconds=self.offset_s)

    def localtime(self) -> time.struct_time:
        return self.now().timetuple()


@dataclass
class PlcStatus:
    """What 0601 reports besides PROGRAM mode (which `Faults.program_mode` owns: it also stops the program)."""

    mode: str = "RUN"  # RUN or MONITOR while the program runs
    fatal_error: int = 0
    non_fatal_error: int = 0


@dataclass
class _Queued:
    data: bytes
    addr: Address
    ready_at: float  # when it reaches the CPU (arrival + port time), on the cycle's clock


class ScanCycle:
    """Runs the program once per scan and serves the FINS commands that reached the CPU during the scan."""

    def __init__(
        self,
        scan_ms: float,
        commands_per_scan: int,
        run_program: Callable[[float], None],
        serve: Callable[[bytes, Address], None],
        port_ms: float = DEFAULT_PORT_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scan_ms < 0:
            raise ValueError(f"scan time {scan_ms} ms must be >= 0")
        if commands_per_scan < 1:
            raise ValueError(f"commands per scan {commands_per_scan} must be >= 1")
        if port_ms < 0:
            raise ValueError(f"port time {port_ms} ms must be >= 0")
        self.scan_ms = scan_ms
        self.commands_per_scan = commands_per_scan
        self.port_ms = port_ms
        self._clock = clock
        self._run_program = run_program
        self._serve = serve
        self.scans = 0
        self.served = 0
        self.deferred = 0  # commands that waited an extra scan because the per-scan limit was reached
        self.max_queue = 0
        self.stats = CycleStats()
        self._queue: deque[_Queued] = deque()
        self.hooks: list[Callable[[int], None]] = []  # called after each scan's program (tests, benchmarks)
        # Observers of the FINS port (benchmarks): ("arrived" | "served", datagram, scan counter at that moment).
        self.tracers: list[Callable[[str, bytes, int], None]] = []

    @property
    def instant(self) -> bool:
        return self.scan_ms == 0

    @property
    def reply_delay_s(self) -> float:
        """How long a served command's reply takes to leave (the port's transmission processing)."""
        return 0.0 if self.instant else self.port_ms / 1000

    @property
    def period_s(self) -> float:
        return INSTANT_PROGRAM_PERIOD_S if self.instant else self.scan_ms / 1000

    def submit(self, data: bytes, addr: Address) -> None:
        """A datagram arrived: serve it now (instant mode) or at the end of the scan during which it reaches
        the CPU."""
        for trace in self.tracers:
            trace("arrived", data, self.scans)
        if self.instant:
            self._trace_served(data)
            self._serve(data, addr)
            return
        self._queue.append(_Queued(data, addr, self._clock() + self.port_ms / 1000))
        self.max_queue = max(self.max_queue, len(self._queue))

    def end_of_scan(self, dt_s: float) -> None:
        """One scan: program, hooks, then peripheral servicing of every command that reached the CPU during
        the scan (up to the per-scan limit). Synchronous: nothing interleaves with it."""
        self.scans += 1
        self.stats.observe(dt_s)
        self._run_program(dt_s)
        for hook in self.hooks:
            hook(self.scans)
        now = self._clock()  # peripheral servicing starts: what reached the CPU by now is served
        served = 0
        while self._queue and self._queue[0].ready_at <= now:
            if served >= self.commands_per_scan:
                self.deferred += len([q for q in self._queue if q.ready_at <= now])
                break
            item = self._queue.popleft()
            self._trace_served(item.data)
            self._serve(item.data, item.addr)
            served += 1
        self.served += served

    def _trace_served(self, data: bytes) -> None:
        for trace in self.tracers:
            trace("served", data, self.scans)

    async def run(self) -> None:
        """The scan loop; scans keep their period on average (a late wake-up runs the next scan sooner)."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        deadline = last
        while True:
            deadline += self.period_s
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            now = loop.time()
            if now - deadline > 10 * self.period_s:
                deadline = now  # the host stalled: do not replay the lost scans in a burst
            dt_s, last = now - last, now
            try:
                self.end_of_scan(dt_s)
            except Exception:  # a bug in one scan must not stop the PLC
                log.exception("PLC scan failed")

    def state(self) -> dict[str, object]:
        avg, mx, mn = self.stats.milliseconds()
        return {
            "scan_ms": self.scan_ms,
            "commands_per_scan": self.commands_per_scan,
            "port_ms": self.port_ms,
            "scans": self.scans,
            "served": self.served,
            "deferred": self.deferred,
            "queued": len(self._queue),
            "max_queue": self.max_queue,
            "cycle_ms": {"average": round(avg, 2), "max": round(mx, 2), "min": round(mn, 2)},
        }
