"""The simulated PLC: FINS/UDP port with fault injection, the PLC program's scan loop, the control API.

In-process use (tests, benchmarks): `await start_simulator(...)` on a running loop, or `run_in_thread(...)`,
which runs the simulator's own event loop in a daemon thread and returns a handle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from shared.fins import frames
from shared.fins.errors import FinsProtocolError
from shared.plc.memory_map import MemoryMap, load_memory_map
from simulators.plc.faults import Faults
from simulators.plc.fins_handler import CPU_UNIT, UNIT_MISSING, CommandHandler, Result
from simulators.plc.memory import DataMemory
from simulators.plc.program import PlcProgram, ProgramConfig
from simulators.plc.scan import (
    DEFAULT_COMMANDS_PER_SCAN,
    DEFAULT_PORT_MS,
    MODES,
    PlcClock,
    PlcStatus,
    ScanCycle,
    default_scan_ms,
)

log = logging.getLogger("plc_sim")
T = TypeVar("T")


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 9600  # 0 = ephemeral (read `Simulator.port`)
    node: int = 1
    slots: int | None = None  # overrides the map's active_slots
    map_path: Path | None = None
    program: ProgramConfig = field(default_factory=ProgramConfig)
    faults: Faults = field(default_factory=Faults)
    control_host: str = "127.0.0.1"
    control_port: int | None = None  # None = no control server, 0 = ephemeral
    armed: bool = True
    seed: int | None = None
    scan_ms: float = field(default_factory=default_scan_ms)  # 0 = instant replies (see scan.py)
    commands_per_scan: int = DEFAULT_COMMANDS_PER_SCAN
    port_ms: float = DEFAULT_PORT_MS  # the Ethernet port's processing each way (with scan_ms > 0; see scan.py)
    timezone: str | None = None  # the PLC clock's zone (None: PLANT_TIMEZONE, else Asia/Jakarta)
    clock_offset_s: float = 0.0
    # None: reply to the port a request came from (the Ethernet unit's dynamic conversion). A port: reply to that
    # port of the requesting host whatever the source port (static conversion: replies go to the FINS port).
    reply_port: int | None = None


@dataclass
class FinsCounters:
    datagrams: int = 0
    requests: int = 0  # well-formed commands for our node
    replies: int = 0  # datagrams sent (duplicates included)
    error_replies: int = 0
    malformed: int = 0
    wrong_node: int = 0
    unit_missing: int = 0
    dropped_requests: int = 0
    dropped_replies: int = 0
    duplicates: int = 0
    wrong_sid: int = 0
    forced_end_codes: int = 0


def _load_map(config: SimConfig) -> MemoryMap:
    m = load_memory_map(config.map_path)
    if config.slots is not None and config.slots != m.active_slots:
        capacity = min(m.areas["read_slot"].slot_capacity, m.areas["write_slot"].slot_capacity)
        if not 1 <= config.slots <= capacity:
            raise ValueError(f"--slots {config.slots} outside 1..{capacity}")
        m = m.model_copy(update={"active_slots": config.slots})
    return m


class _FinsPort(asyncio.DatagramProtocol):
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.sim.on_datagram(data, (str(addr[0]), int(addr[1])))


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        if config.reply_port is not None and not 1 <= config.reply_port <= 65535:
            raise ValueError(f"reply port {config.reply_port} outside 1..65535")
        self.map = _load_map(config)
        seed = config.seed
        self.memory = DataMemory()
        self.faults = config.faults
        self.counters = FinsCounters()
        self.clock = PlcClock(config.timezone, config.clock_offset_s)
        self.status = PlcStatus()
        self.handler = CommandHandler(self.memory, diagnostics=self)
        self.program = PlcProgram(self.memory, self.map, config.program, random.Random(seed))
        self.program.clock = self.clock.localtime  # failure times come from the PLC clock
        self.scan = ScanCycle(
            config.scan_ms, config.commands_per_scan, self._program_scan, self._process, port_ms=config.port_ms
        )
        self._fault_rng = random.Random(None if seed is None else seed + 1)
        self._transport: asyncio.DatagramTransport | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control: Any = None
        if config.armed:
            self.program.arm()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _FinsPort(self), local_addr=(self.config.host, self.config.port)
        )
        self._transport = transport
        self._scan_task = asyncio.create_task(self.scan.run(), name="plc-sim-scan")
        if self.config.control_port is not None:
            from simulators.plc.control import ControlServer

            self._control = ControlServer(self, self.config.control_host, self.config.control_port)
            self._control.start()
        log.info("PLC simulator listening", extra={"port": self.port, "node": self.config.node})

    async def stop(self) -> None:
        if self._control is not None:
            self._control.stop()
            self._control = None
        if self._scan_task is not None:
            self._scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan_task
            self._scan_task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def port(self) -> int:
        assert self._transport is not None, "simulator not started"
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def control_port(self) -> int | None:
        return None if self._control is None else int(self._control.port)

    @property
    def control_url(self) -> str | None:
        port = self.control_port
        return None if port is None else f"http://{self.config.control_host}:{port}"

    def run_on_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `fn` on the simulator's loop from another thread: all state stays single-threaded."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator not started")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(job)
        return fut.result(timeout)

    # ------------------------------------------------------------------ the scan

    def _program_scan(self, dt: float) -> None:
        if self.faults.program_mode:
            return  # PROGRAM mode: the ladder does not run
        self.program.scan(dt)

    # ------------------------------------------------------------------ diagnostics (0601, 0620, 0701)

    @property
    def mode(self) -> str:
        return "PROGRAM" if self.faults.program_mode else self.status.mode

    def status_words(self) -> tuple[int, int, int]:
        return MODES[self.mode], self.status.fatal_error, self.status.non_fatal_error

    def cycle_times_ms(self) -> tuple[float, float, float]:
        return self.scan.stats.milliseconds()

    def reset_cycle_times(self) -> None:
        self.scan.stats.reset()

    def clock_now(self) -> dt.datetime:
        return self.clock.now()

    def set_plc(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Operator view of the CPU (control API): mode RUN/MONITOR/PROGRAM, clock offset, error flags."""
        unknown = set(doc) - {"mode", "clock_offset_s", "fatal_error", "non_fatal_error"}
        if unknown:
            raise ValueError(f"unknown PLC fields: {sorted(unknown)}")
        mode = doc.get("mode")
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}")
        offset = doc.get("clock_offset_s")
        if offset is not None and (not isinstance(offset, int | float) or isinstance(offset, bool)):
            raise ValueError("clock_offset_s must be a number of seconds")
        flags = {k: doc[k] for k in ("fatal_error", "non_fatal_error") if k in doc}
        for name, value in flags.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} must be a 16-bit integer")
        if mode is not None:
            self.faults.program_mode = mode == "PROGRAM"
            if mode != "PROGRAM":
                self.status.mode = mode
        if offset is not None:
            self.clock.offset_s = float(offset)
        for name, value in flags.items():
            setattr(self.status, name, value)
        return self.plc_state()

    def plc_state(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "clock": self.clock.now().isoformat(),
            "clock_offset_s": self.clock.offset_s,
            "fatal_error": self.status.fatal_error,
            "non_fatal_error": self.status.non_fatal_error,
            **self.scan.state(),
        }

    # ------------------------------------------------------------------ the FINS port

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        self.counters.datagrams += 1
        self.scan.submit(data, addr)

    def _process(self, data: bytes, addr: tuple[str, int]) -> None:
        """Serve one datagram (at the end of a scan, or at once when the scan model is off)."""
        c = self.counters
        try:
            header, command, params = frames.parse_command(data)
        except FinsProtocolError:
            c.malformed += 1
            return
        if header.da1 not in (0, self.config.node):
            c.wrong_node += 1
            return
        if self.config.reply_port is not None:
            addr = (addr[0], self.config.reply_port)
        rng, faults = self._fault_rng, self.faults
        if faults.drop and rng.random() < faults.drop:
            c.dropped_requests += 1
            return
        c.requests += 1
        forced = faults.take_end_code(write=command == frames.MEMORY_AREA_WRITE)
        if forced is not None:
            c.forced_end_codes += 1
            result = Result(forced)
        elif header.da2 != CPU_UNIT:
            c.unit_missing += 1  # this PLC is a CPU alone: no other unit to route to
            result = Result(UNIT_MISSING)
        else:
            result = self.handler.execute(
                command, params, program_mode=faults.program_mode, on_write=self.program.on_fins_write
            )
        if result.end_code & 0x7F3F:
            c.error_replies += 1
        if not header.wants_response:
            return
        if faults.drop_reply and rng.random() < faults.drop_reply:
            c.dropped_replies += 1
            return
        if (
            faults.drop_write_reply
            and command == frames.MEMORY_AREA_WRITE
            and rng.random() < faults.drop_write_reply
        ):
            c.dropped_replies += 1
            return
        reply_header = header.reply_header(self.config.node)
        reply_data = result.data
        if faults.wrong_sid and rng.random() < faults.wrong_sid:
            c.wrong_sid += 1
            wrong = (header.sid + rng.randint(1, 255)) % 256
            reply_header = replace(reply_header, sid=wrong)
            reply_data = bytes(b ^ 0x5A for b in reply_data)  # never the right data under a wrong SID
        reply = frames.encode_reply(reply_header, command, result.end_code, reply_data)
        copies = 1
        if faults.duplicate and rng.random() < faults.duplicate:
            c.duplicates += 1
            copies = 2
        delay = faults.delay_ms / 1000 + self.scan.reply_delay_s  # a fault's delay, the port's transmission
        for _ in range(copies):
            if delay > 0 and self._loop is not None:
                self._loop.call_later(delay, self._send, reply, addr)
            else:
                self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(reply, addr)
            self.counters.replies += 1

    # ------------------------------------------------------------------ control operations (loop thread)

    def state(self) -> dict[str, Any]:
        return {
            "node": self.config.node,
            "port": self.port,
            "mode": self.mode,
            "plc": self.plc_state(),
            "map_version": self.map.version,
            "active_slots": self.map.active_slots,
            **self.program.state(),
            "fins": asdict(self.counters),
            "faults": self.faults.as_dict(),
        }

    def write_words(self, address: int, words: list[int]) -> None:
        """Plant words directly (tests): bypasses FINS and the program's write checks."""
        self.memory.write(address, words)

    def reboot(self, armed: bool = False) -> None:
        self.program.reboot(armed)


async def start_simulator(config: SimConfig | None = None, **overrides: Any) -> Simulator:
    """Start on the running loop. `overrides` set SimConfig fields (e.g. port=0, seed=1)."""
    cfg = config or SimConfig()
    for name, value in overrides.items():
        if not hasattr(cfg, name):
            raise TypeError(f"unknown simulator setting {name!r}")
        setattr(cfg, name, value)
    sim = Simulator(cfg)
    await sim.start()
    return sim


class SimHandle:
    """A simulator running in its own thread and event loop. Every helper is thread-safe."""

    def __init__(self, sim: Simulator, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.sim = sim
        self.loop = loop
        self.thread = thread
        self.port = sim.port
        self.host = sim.config.host
        self.node = sim.config.node
        self.control_url = sim.control_url

    def call(self, fn: Callable[[], T]) -> T:
        return self.sim.run_on_loop(fn)

    def read_memory(self, address: int, count: int) -> list[int]:
        return self.call(lambda: self.sim.memory.read(address, count))

    def write_memory(self, address: int, words: list[int]) -> None:
        self.call(lambda: self.sim.write_words(address, words))

    def set_faults(self, **values: Any) -> dict[str, Any]:
        def apply() -> dict[str, Any]:
            self.sim.faults.update(values)
            return self.sim.faults.as_dict()

        return self.call(apply)

    def clear_faults(self) -> None:
        self.call(lambda: self.sim.faults.update(asdict(Faults())))

    def state(self) -> dict[str, Any]:
        return self.call(self.sim.state)

    def trigger_failure(self, equipment: str | None = None, description: str | None = None) -> None:
        self.call(lambda: self.sim.program.trigger_failure(equipment, description))

    def reboot(self, armed: bool = False) -> None:
        self.call(lambda: self.sim.reboot(armed))

    def post_weighing(self, **doc: Any) -> dict[str, Any]:
        """Queue a manual weighing ({mo_id, product_id, kg, batch?, item?}), as POST /weighing does."""
        return self.call(lambda: (self.sim.program.weighing.request(doc), self.sim.program.weighing.as_dict())[1])

    def set_plc(self, **doc: Any) -> dict[str, Any]:
        return self.call(lambda: self.sim.set_plc(doc))

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop)
        fut.result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def run_in_thread(config: SimConfig | None = None, **overrides: Any) -> SimHandle:
    """Start a simulator in a daemon thread (default: ephemeral UDP port, no control server unless asked)."""
    cfg = config or SimConfig(port=0)
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[Simulator] = concurrent.futures.Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            sim = loop.run_until_complete(start_simulator(cfg, **overrides))
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(sim)
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="plc-sim", daemon=True)
    thread.start()
    sim = started.result(10)
    return SimHandle(sim, loop, thread)
