"""The diagnostics frames (0601 with error flags, 0620, 0701) as the simulator answers them, read back by
Wireshark's `omron` dissector: an independent check of field positions, units and the BCD clock."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.fins import frames
from simulators.plc.fins_handler import CommandHandler
from simulators.plc.memory import DataMemory
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
