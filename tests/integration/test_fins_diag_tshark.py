"""The diagnostics frames (0601 with error flags, 0620, 0701) as the simulator answers them, and the frames
`edgectl plc probe` sends, read back by Wireshark's `omron` dissector: an independent check of field positions,
units, the BCD clock and the FINS addressing."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from edgectl.commands.plc_probe import probe_one
from edgectl.probe import Combo
from shared.fins import frames
from simulators.plc.fins_handler import CommandHandler
from simulators.plc.memory import DataMemory
from simulators.plc.server import run_in_thread
from tests.integration.test_fins_tshark import (
    CLIENT_IP,
    CLIENT_PORT,
    FINS_PORT,
    PLC_IP,
    ethernet_udp,
    exchange,
    write_pcap,
)

FIELDS = [
    "omron.sid",
    "omron.command",
    "omron.avg_cycle_time",
    "omron.max_cycle_time",
    "omron.min_cycle_time",
    "omron.year",
    "omron.month",
    "omron.date",
    "omron.hour",
    "omron.minute",
    "omron.second",
    "omron.day",
    "omron.mode_code",
    "omron.fatal_error_data",
    "omron.non_fatal.cpu_bus_unit_error",
]


class FixedDiagnostics:
    def status_words(self) -> tuple[int, int, int]:
        return frames.MODE_MONITOR, 0, 0x0100

    def cycle_times_ms(self) -> tuple[float, float, float]:
        return 10.4, 23.7, 9.8

    def reset_cycle_times(self) -> None:
        return

    def clock_now(self) -> dt.datetime:
        return dt.datetime(2026, 12, 1, 19, 5, 59)  # a Tuesday


def test_tshark_decodes_the_diagnostics(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (./scripts/test installs it with apt)")
    handler = CommandHandler(DataMemory(), diagnostics=FixedDiagnostics())
    requests = [
        (0x21, frames.cycle_time_read()),
        (0x22, frames.clock_read()),
        (0x23, frames.controller_status_read()),
    ]
    packets: list[bytes] = []
    for i, (sid, req) in enumerate(requests):
        command, reply = exchange(handler, sid, req)
        packets.append(ethernet_udp(command, (CLIENT_IP, CLIENT_PORT), (PLC_IP, FINS_PORT), 2 * i))
        packets.append(ethernet_udp(reply, (PLC_IP, FINS_PORT), (CLIENT_IP, CLIENT_PORT), 2 * i + 1))
    pcap = tmp_path / "diag.pcap"
    write_pcap(pcap, packets)
    args = [tshark, "-r", str(pcap), "-T", "fields", *(a for f in FIELDS for a in ("-e", f))]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(FIELDS, line.split("\t"), strict=False)) for line in out.splitlines()]
    assert len(rows) == len(packets), out
    assert [r["omron.command"] for r in rows] == ["0x0620", "0x0620", "0x0701", "0x0701", "0x0601", "0x0601"]
    cycle = rows[1]
    # the dissector shows the raw counts: 0.1 ms units
    assert (cycle["omron.avg_cycle_time"], cycle["omron.max_cycle_time"], cycle["omron.min_cycle_time"]) == (
        "0x00000068",
        "0x000000ed",
        "0x00000062",
    )
    clock = rows[3]
    # the dissector prints each BCD byte as a plain number: 0x26 = 38 is year 26, 0x19 = 25 is hour 19
    raw = [
        int(clock[f])
        for f in ("omron.year", "omron.month", "omron.date", "omron.hour", "omron.minute", "omron.second")
    ]
    assert raw == [0x26, 0x12, 0x01, 0x19, 0x05, 0x59]
    assert clock["omron.day"] == "2"  # Tuesday, 0 = Sunday
    status = rows[5]
    assert status["omron.mode_code"] == "0x02"  # MONITOR
    assert status["omron.fatal_error_data"] == "0x0000,0x0100"  # fatal, then non-fatal (one field name)
    assert status["omron.non_fatal.cpu_bus_unit_error"] in ("1", "True")


class _Relay(asyncio.DatagramProtocol):
    """Between the probe and plc-sim on loopback: forwards both ways and keeps every frame, so the pcap holds
    exactly the bytes the probe sent and the simulator answered."""

    def __init__(self, plc: tuple[str, int]) -> None:
        self.plc = plc
        self.client: tuple[str, int] | None = None
        self.frames: list[tuple[str, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        peer = (str(addr[0]), int(addr[1]))
        if peer == self.plc:
            self.frames.append(("reply", data))
            if self.client is not None:
                self.transport.sendto(data, self.client)
        else:
            self.client = peer
            self.frames.append(("command", data))
            self.transport.sendto(data, self.plc)


def test_tshark_decodes_the_probe_addressing(tmp_path: Path) -> None:
    """`edgectl plc probe` frames on the wire: a read-only 0101 with the DA1/SA1/DA2 it claims to try, and the
    simulator's 0202 (unit missing) for a DA2 that is not the CPU."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (./scripts/test installs it with apt)")
    sim = run_in_thread(node=7, scan_ms=0)
    try:

        async def go() -> list[tuple[str, bytes]]:
            loop = asyncio.get_running_loop()
            transport, relay = await loop.create_datagram_endpoint(
                lambda: _Relay(("127.0.0.1", sim.port)), local_addr=("127.0.0.1", 0)
            )
            peer = ("127.0.0.1", int(transport.get_extra_info("sockname")[1]))
            try:
                ok = await probe_one(peer, Combo(0, 251, 0, 0), 0, 8000, 0x31, 1.0)
                unit = await probe_one(peer, Combo(7, 20, 3, 0), 0, 8000, 0x32, 1.0)
            finally:
                transport.close()
            assert (ok.kind, ok.plc_node) == ("ok", 7)
            assert (unit.kind, unit.end_code) == ("end_code", 0x0202)
            return relay.frames

        captured = asyncio.run(go())
    finally:
        sim.stop()
    assert [kind for kind, _ in captured] == ["command", "reply", "command", "reply"]
    packets = [
        ethernet_udp(data, (CLIENT_IP, CLIENT_PORT), (PLC_IP, FINS_PORT), i)
        if kind == "command"
        else ethernet_udp(data, (PLC_IP, FINS_PORT), (CLIENT_IP, CLIENT_PORT), i)
        for i, (kind, data) in enumerate(captured)
    ]
    pcap = tmp_path / "probe.pcap"
    write_pcap(pcap, packets)
    fields = ["omron.sid", "omron.command", "omron.da1", "omron.sa1", "omron.da2", "omron.response.code"]
    args = [tshark, "-r", str(pcap), "-T", "fields", *(a for f in fields for a in ("-e", f))]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(fields, line.split("\t"), strict=False)) for line in out.splitlines()]
    assert [r["omron.command"] for r in rows] == ["0x0101"] * 4  # memory area read, never a write
    assert [tuple(int(r[f], 16) for f in ("omron.da1", "omron.sa1", "omron.da2")) for r in rows] == [
        (0, 251, 0),  # DA1 = 0: "the PLC I am talking to"
        (251, 7, 0),  # the reply names the PLC's real node as its source
        (7, 20, 3),
        (20, 7, 0),  # back to our unit 0
    ]
    assert rows[1]["omron.response.code"] == "0x0000" and rows[3]["omron.response.code"] == "0x0202"
