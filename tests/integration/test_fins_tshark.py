"""Our frames, written into a pcap (UDP/IPv4 on port 9600), decoded by Wireshark's `omron` dissector: an
independent reading of command, address, item count, SID and end code (docs/fins.md F11)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from shared.fins import frames
from shared.fins.frames import Route
from simulators.plc.fins_handler import CommandHandler
from simulators.plc.memory import DataMemory

ROUTE = Route(da1=1, sa1=10)
CLIENT_IP, PLC_IP = bytes([192, 168, 250, 10]), bytes([192, 168, 250, 1])
CLIENT_PORT, FINS_PORT = 50123, 9600
FIELDS = ["omron.sid", "omron.command", "omron.memory.address", "omron.memory.numitems", "omron.response.code"]


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet_udp(payload: bytes, src: tuple[bytes, int], dst: tuple[bytes, int], ident: int) -> bytes:
    udp = struct.pack(">HHHH", src[1], dst[1], 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, 64, 17, 0, src[0], dst[0])
    ip = ip[:10] + struct.pack(">H", _ipv4_checksum(ip)) + ip[12:]
    return bytes.fromhex("0200000000010200000000020800") + ip + udp  # dst MAC, src MAC, IPv4


def write_pcap(path: Path, packets: list[bytes]) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET
        for i, pkt in enumerate(packets):
            f.write(struct.pack("<IIII", 1_770_000_000 + i, 0, len(pkt), len(pkt)))
            f.write(pkt)


def exchange(handler: CommandHandler, sid: int, request: frames.Request) -> tuple[bytes, bytes]:
    """Our command frame and the simulator's reply frame to it."""
    command = frames.encode_command(ROUTE, sid, request)
    header, code, params = frames.parse_command(command)
    result = handler.execute(code, params)
    return command, frames.encode_reply(header.reply_header(1), code, result.end_code, result.data)


def test_tshark_decodes_our_frames(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (./scripts/test installs it with apt)")
    memory = DataMemory()
    memory.write(6001, list(range(1, 78)))
    handler = CommandHandler(memory)
    requests = [
        (0x11, frames.memory_area_read(6001, 77)),
        (0x12, frames.memory_area_write(7000, [0x0001, 0x86A0])),
        (0x13, frames.memory_area_read(40000, 1)),  # -> 1103
        (0x14, frames.memory_area_read(32760, 20)),  # -> 1104
        (0x15, frames.controller_status_read()),
        (0x16, frames.controller_data_read()),
        (0x17, frames.multiple_memory_area_read([6076, 7076])),
        # 0501 without parameter: model, version, system use and the 12-byte area data (the dissector's layout)
        (0x18, frames.Request(frames.CONTROLLER_DATA_READ, b"", frames.CONTROLLER_DATA_LEN + 12)),
    ]
    packets: list[bytes] = []
    for i, (sid, req) in enumerate(requests):
        command, reply = exchange(handler, sid, req)
        packets.append(ethernet_udp(command, (CLIENT_IP, CLIENT_PORT), (PLC_IP, FINS_PORT), 2 * i))
        packets.append(ethernet_udp(reply, (PLC_IP, FINS_PORT), (CLIENT_IP, CLIENT_PORT), 2 * i + 1))
    pcap = tmp_path / "fins.pcap"
    write_pcap(pcap, packets)
    args = [tshark, "-r", str(pcap), "-T", "fields", *(a for f in FIELDS for a in ("-e", f))]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == len(packets), out
    for row in rows:
        row.extend([""] * (len(FIELDS) - len(row)))
    got = [tuple(row) for row in rows]
    assert got[0] == ("0x11", "0x0101", "0x1771", "77", "")  # read D6001 x 77
    assert got[1][:2] == ("0x11", "0x0101") and got[1][4] == "0x0000"
    assert got[2] == ("0x12", "0x0102", "0x1b58", "2", "")  # write D7000 x 2
    assert got[3][:2] == ("0x12", "0x0102") and got[3][4] == "0x0000"
    assert got[4][:4] == ("0x13", "0x0101", "0x9c40", "1")  # D40000
    assert got[5][4] == "0x1103"
    assert got[7][4] == "0x1104"
    assert got[8][:2] == ("0x15", "0x0601") and got[9][:2] == ("0x15", "0x0601")
    assert got[10][:2] == ("0x16", "0x0501") and got[11][:2] == ("0x16", "0x0501")
    assert got[12][:2] == ("0x17", "0x0104") and got[13][:2] == ("0x17", "0x0104")

    model = subprocess.run(
        [tshark, "-r", str(pcap), "-Y", "omron.sid == 0x18", "-T", "fields", "-e", "omron.controller.model"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert model.split("\n")[1].strip() == "CJ2M-CPU33", model  # the reply (the command has no model)
