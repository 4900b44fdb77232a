"""The simulator's scan-cycle model over real UDP: a read never mixes two scans, a command is served at the end
of the scan during which it reached the CPU (so commands sent back to back cost one scan each, as on a CJ2M,
never less), at most `commands_per_scan` commands are served per scan, and the diagnostics (0601/0620/0701)
follow the settable mode and clock offset. Scan numbers, not wall time, are the evidence (no timed
assertions)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest

from shared.fins import frames
from shared.fins.client import FinsClient
from shared.fins.frames import Route
from simulators.plc.scan import ScanCycle, default_scan_ms
from simulators.plc.server import SimConfig, SimHandle, run_in_thread

SPAN = 977  # the whole READ area of 10 slots: D6000 .. D6976


def stamp_scans(handle: SimHandle, first: int = 100, count: int = SPAN) -> None:
    """Every scan writes its own number into D<first> .. (the program runs once per scan: so does this)."""

    def install() -> None:
        memory = handle.sim.memory

        def hook(scan: int) -> None:
            memory.write(first, [scan & 0xFFFF] * count)

        handle.sim.scan.hooks.append(hook)

    handle.call(install)


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    handle = run_in_thread(SimConfig(port=0, seed=3, scan_ms=5, commands_per_scan=2, timezone="Asia/Jakarta"))
    stamp_scans(handle)
    yield handle
    handle.stop()


def client(handle: SimHandle, node: int = 20) -> FinsClient:
    return FinsClient(port=handle.port, dest_node=1, source_node=node, timeout=1.0)


def test_a_read_never_mixes_two_scans(sim: SimHandle) -> None:
    async def reader(node: int) -> list[list[int]]:
        async with client(sim, node) as c:
            return [await c.read_words(100, SPAN) for _ in range(15)]

    async def main() -> list[list[list[int]]]:
        return await asyncio.gather(*(reader(n) for n in (21, 22, 23, 24)))

    reads = [words for per_client in asyncio.run(main()) for words in per_client]
    assert len(reads) == 60
    for words in reads:
        assert len(set(words)) == 1, f"one read saw scans {sorted(set(words))}"


def test_a_command_is_served_at_the_end_of_the_scan_it_arrived_in() -> None:
    """Each read goes out right after the previous reply, so it reaches the CPU early in the next scan: a CJ2M
    serves it at the end of that scan (W343: at most one cycle time waiting for the CPU), one scan after the
    previous one, never in the same scan. The old model served it a whole scan later (2 scans apart)."""
    # A 20 ms scan (a CJ2M's upper range): a reply and the next request take 1 ms of port time each way and
    # well under a ms on loopback, so only a thread stalled for most of a scan on this shared host makes a gap 2.
    handle = run_in_thread(SimConfig(port=0, seed=3, scan_ms=20, commands_per_scan=2, timezone="Asia/Jakarta"))
    stamp_scans(handle)

    async def main() -> list[int]:
        async with client(handle) as c:
            return [(await c.read_words(100, 1))[0] for _ in range(25)]

    try:
        seen = asyncio.run(main())
    finally:
        handle.stop()
    gaps = Counter(b - a for a, b in itertools.pairwise(seen))
    assert min(gaps) >= 1, gaps  # a command costs at least one scan: never two replies from one scan
    assert gaps[1] >= 2 / 3 * sum(gaps.values()), gaps  # the old model: Counter({2: 24}), never 1


def fake_clock() -> tuple[list[float], Callable[[], float]]:
    now = [0.0]
    return now, lambda: now[0]


def test_served_at_the_end_of_the_scan_the_command_reached_the_cpu_in() -> None:
    now, clock = fake_clock()
    served: list[bytes] = []
    cycle = ScanCycle(10, 2, lambda dt_s: None, lambda data, addr: served.append(data), port_ms=1.0, clock=clock)
    now[0] = 0.0005  # scan 1 runs 0 .. 0.010
    cycle.submit(b"a", ("127.0.0.1", 1))  # reaches the CPU at 0.0015, during scan 1
    now[0] = 0.0095
    cycle.submit(b"b", ("127.0.0.1", 1))  # reaches the CPU at 0.0105: after scan 1's servicing began
    now[0] = 0.010
    cycle.end_of_scan(0.010)
    assert served == [b"a"]  # in the scan it arrived in: at most one scan of waiting
    now[0] = 0.020
    cycle.end_of_scan(0.010)
    assert served == [b"a", b"b"]
    assert cycle.reply_delay_s == 0.001  # and its reply leaves after the port's transmission time


def test_at_most_commands_per_scan_are_served_per_scan(sim: SimHandle) -> None:
    route = Route(da1=1, sa1=30)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        for sid in range(1, 9):
            s.sendto(frames.encode_command(route, sid, frames.memory_area_read(100, 1)), ("127.0.0.1", sim.port))
        scans = [frames.decode_words(frames.parse_reply(s.recv(2048)).data)[0] for _ in range(8)]
    per_scan = Counter(scans)
    assert max(per_scan.values()) <= 2, per_scan
    assert len(per_scan) >= 4
    assert sim.state()["plc"]["deferred"] > 0


def test_instant_mode_serves_on_arrival() -> None:
    served: list[bytes] = []
    cycle = ScanCycle(0, 1, lambda dt_s: None, lambda data, addr: served.append(data))
    cycle.submit(b"x", ("127.0.0.1", 1))
    assert served == [b"x"]
    assert cycle.reply_delay_s == 0  # no port time either


def test_scan_time_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLC_SIM_SCAN_MS", "0")
    assert default_scan_ms() == 0
    monkeypatch.setenv("PLC_SIM_SCAN_MS", "20")
    assert SimConfig().scan_ms == 20
    monkeypatch.delenv("PLC_SIM_SCAN_MS")
    assert default_scan_ms() == 10
    monkeypatch.setenv("PLC_SIM_SCAN_MS", "fast")
    with pytest.raises(ValueError, match="PLC_SIM_SCAN_MS"):
        default_scan_ms()


def test_diagnostics_follow_mode_and_clock_offset(sim: SimHandle) -> None:
    async def diag() -> tuple[frames.ControllerStatus, frames.CycleTime, dt.datetime]:
        async with client(sim) as c:
            return await c.controller_status(), await c.cycle_time(), await c.clock()

    status, cycle, clock = asyncio.run(diag())
    assert status.mode_name == "RUN" and status.running
    assert 0 < cycle.min_ms <= cycle.average_ms <= cycle.max_ms
    now = dt.datetime.now(ZoneInfo("Asia/Jakarta")).replace(tzinfo=None)
    assert abs((clock - now).total_seconds()) < 60

    sim.set_plc(mode="MONITOR", clock_offset_s=-3600, non_fatal_error=0x0800)
    status, _, clock = asyncio.run(diag())
    assert status.mode_name == "MONITOR" and status.running and status.non_fatal_error == 0x0800
    assert abs((clock - now).total_seconds() + 3600) < 60

    sim.set_plc(mode="PROGRAM")
    status, _, _ = asyncio.run(diag())
    assert status.mode_name == "PROGRAM" and not status.running
    assert sim.state()["faults"]["program_mode"] is True  # PROGRAM also stops the program and refuses writes

    with pytest.raises(ValueError, match="mode"):
        sim.set_plc(mode="STOP")
