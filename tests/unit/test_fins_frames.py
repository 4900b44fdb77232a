"""Golden frames: every command we send and every reply we parse, bytes written out by hand from the FINS
spec (W342/W421 header layout, docs/fins.md F1-F5), plus W474's REAL example (F9)."""

from __future__ import annotations

import pytest

from shared.fins import frames
from shared.fins.endcodes import EndCode, EndCodeKind, classify
from shared.fins.errors import (
    FinsAddressError,
    FinsEndCodeError,
    FinsFormatError,
    FinsModeError,
    FinsProtocolError,
    FinsRetryableError,
    end_code_error,
)
from shared.fins.frames import Route
from shared.fins.stats import FinsStats
from shared.plc.codecs import decode_real

ROUTE = Route(dna=0, da1=1, da2=0, sna=0, sa1=10, sa2=0)
CMD_HEADER = "80 00 02 00 01 00 00 0A 00"  # ICF RSV GCT DNA DA1 DA2 SNA SA1 SA2 (SID follows)
REPLY_HEADER = "C0 00 02 00 0A 00 00 01 00"  # response: destination and source swapped


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# ----------------------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("request_", "sid", "golden"),
    [
        # 0101 MEMORY AREA READ, DM word 0x82, D6001 = 0x1771, bit 00, 77 = 0x004D items
        (frames.memory_area_read(6001, 77), 0x11, f"{CMD_HEADER} 11 01 01 82 17 71 00 00 4D"),
        # 0102 MEMORY AREA WRITE D7000 = 0x1B58, 2 items, 1000.00 kg as kg x100 high word first
        (
            frames.memory_area_write(7000, [0x0001, 0x86A0]),
            0x12,
            f"{CMD_HEADER} 12 01 02 82 1B 58 00 00 02 00 01 86 A0",
        ),
        # 0104 MULTIPLE MEMORY AREA READ of the two slot-1 flags D6076 = 0x17BC, D7076 = 0x1BA4
        (frames.multiple_memory_area_read([6076, 7076]), 0x13, f"{CMD_HEADER} 13 01 04 82 17 BC 00 82 1B A4 00"),
        # 0501 CONTROLLER DATA READ, parameter 00 = model and version
        (frames.controller_data_read(), 0x14, f"{CMD_HEADER} 14 05 01 00"),
        # 0601 CONTROLLER STATUS READ, no parameters
        (frames.controller_status_read(), 0x15, f"{CMD_HEADER} 15 06 01"),
        # the failure-area read D8000 = 0x1F40 x 23 with SID 0xFF (the last SID of the rotation)
        (frames.memory_area_read(8000, 23), 0xFF, f"{CMD_HEADER} FF 01 01 82 1F 40 00 00 17"),
    ],
)
def test_command_frames_match_golden_bytes(request_: frames.Request, sid: int, golden: str) -> None:
    assert frames.encode_command(ROUTE, sid, request_) == hx(golden)


def test_header_fields_follow_the_route() -> None:
    route = Route(dna=3, da1=0x21, da2=0x10, sna=1, sa1=0xFE, sa2=0xE1)
    frame = frames.encode_command(route, 7, frames.controller_status_read(), gct=7)
    assert frame == hx("80 00 07 03 21 10 01 FE E1 07 06 01")


def test_command_limits_are_enforced_before_sending() -> None:
    with pytest.raises(ValueError):
        frames.memory_area_read(0, 1000)
    with pytest.raises(ValueError):
        frames.memory_area_write(0, [0] * 997)
    with pytest.raises(ValueError):
        frames.memory_area_write(0, [0x10000])
    with pytest.raises(ValueError):
        frames.multiple_memory_area_read(list(range(168)))
    with pytest.raises(ValueError):
        frames.memory_area_read(0x10000, 1)
    with pytest.raises(ValueError):
        Route(da1=256)


def test_dm_address_parsing() -> None:
    assert frames.parse_dm_address("D6000") == 6000
    assert frames.parse_dm_address("dm6000") == 6000
    assert frames.parse_dm_address("6000") == 6000
    for bad in ("E6000", "D", "D-1", "D70000", "6000.1"):
        with pytest.raises(ValueError):
            frames.parse_dm_address(bad)


# ------------------------------------------------------------------------------------------- replies


def test_read_reply_w474_real_example() -> None:
    """W474 FLT example: -123.456 stored as D = 0xE979 (low word), D+1 = 0xC2F6 (high word)."""
    req = frames.memory_area_read(100, 2)
    reply = frames.validate_reply(hx(f"{REPLY_HEADER} 21 01 01 00 00 E9 79 C2 F6"), ROUTE, 0x21, req)
    words = frames.decode_words(reply.data)
    assert words == [0xE979, 0xC2F6]
    assert decode_real(words) == pytest.approx(-123.456, abs=1e-4)
    assert reply.end_code.ok and reply.end_code.code == 0


def test_write_reply_carries_no_data() -> None:
    req = frames.memory_area_write(7000, [1, 2])
    reply = frames.validate_reply(hx(f"{REPLY_HEADER} 12 01 02 00 00"), ROUTE, 0x12, req)
    assert reply.end_code.ok and reply.data == b""


def test_multiple_read_reply_echoes_area_codes() -> None:
    req = frames.multiple_memory_area_read([6076, 7076])
    reply = frames.validate_reply(hx(f"{REPLY_HEADER} 13 01 04 00 00 82 00 01 82 00 00"), ROUTE, 0x13, req)
    assert frames.decode_multiple_read(reply.data, 2) == [1, 0]
    with pytest.raises(FinsProtocolError, match="area code"):
        frames.decode_multiple_read(hx("82 00 01 B0 00 00"), 2)


def test_controller_data_reply() -> None:
    data = b"CJ2M-CPU33".ljust(20, b" ") + b"02.01".ljust(20, b" ") + bytes(40)
    req = frames.controller_data_read()
    reply = frames.validate_reply(hx(f"{REPLY_HEADER} 14 05 01 00 00") + data, ROUTE, 0x14, req)
    assert frames.decode_controller_data(reply.data) == frames.ControllerData("CJ2M-CPU33", "02.01")


def test_controller_status_reply_run_and_program() -> None:
    req = frames.controller_status_read()
    run = hx(f"{REPLY_HEADER} 15 06 01 00 00 01 04 0000 0000 0000 0000") + bytes(16)
    status = frames.decode_controller_status(frames.validate_reply(run, ROUTE, 0x15, req).data)
    assert status.running and status.mode_name == "RUN"
    program = hx(f"{REPLY_HEADER} 15 06 01 00 00 00 00 0000 0000 0000 0000") + bytes(16)
    status = frames.decode_controller_status(frames.validate_reply(program, ROUTE, 0x15, req).data)
    assert not status.running and status.mode_name == "PROGRAM"


def test_error_reply_address_range() -> None:
    req = frames.memory_area_read(40000, 1)
    reply = frames.validate_reply(hx(f"{REPLY_HEADER} 11 01 01 11 03"), ROUTE, 0x11, req)
    assert not reply.end_code.ok
    assert reply.end_code.code == 0x1103 and reply.end_code.kind is EndCodeKind.ADDRESS
    err = end_code_error(reply.end_code, command=req.command)
    assert isinstance(err, FinsAddressError) and err.code == 0x1103


def test_non_fatal_flag_0040_is_success_with_warning() -> None:
    req = frames.memory_area_read(6076, 1)
    reply = frames.validate_reply(hx(f"{REPLY_HEADER} 11 01 01 00 40 00 01"), ROUTE, 0x11, req)
    assert reply.end_code.ok and reply.end_code.non_fatal_error
    assert frames.decode_words(reply.data) == [1]


def test_end_code_masking_keeps_flags_out_of_the_code() -> None:
    end = EndCode(0x9183)  # relay error bit + 0x1103 + fatal CPU error flag
    assert end.code == 0x1103 and end.relay_error and end.fatal_error and not end.non_fatal_error
    assert EndCode(0x22C3).code == 0x2203  # both CPU flags set: still "PROGRAM mode"
    assert EndCode(0x0010).code == 0x0010  # bit 4 of SRES belongs to the code (node-omron-fins masks it off)
    assert "address range error" in str(end)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (0x0000, EndCodeKind.OK),
        (0x0001, EndCodeKind.RETRYABLE),
        (0x0204, EndCodeKind.RETRYABLE),
        (0x0205, EndCodeKind.RETRYABLE),
        (0x0101, EndCodeKind.NETWORK),
        (0x0201, EndCodeKind.CONFIG),
        (0x0503, EndCodeKind.CONFIG),
        (0x0302, EndCodeKind.CONTROLLER),
        (0x0401, EndCodeKind.UNSUPPORTED),
        (0x1001, EndCodeKind.FORMAT),
        (0x1004, EndCodeKind.FORMAT),
        (0x1101, EndCodeKind.ADDRESS),
        (0x1104, EndCodeKind.ADDRESS),
        (0x110B, EndCodeKind.ADDRESS),
        (0x2101, EndCodeKind.ACCESS),
        (0x2108, EndCodeKind.ACCESS),
        (0x2203, EndCodeKind.MODE),
        (0x2301, EndCodeKind.DEVICE),
        (0x4001, EndCodeKind.ABORTED),
        (0x7F3F, EndCodeKind.UNKNOWN),
    ],
)
def test_end_code_classes(code: int, kind: EndCodeKind) -> None:
    assert classify(code) is kind


def test_end_code_errors_are_specific() -> None:
    assert isinstance(end_code_error(EndCode(0x2203), command=0x0102), FinsModeError)
    assert isinstance(end_code_error(EndCode(0x1003), command=0x0102), FinsFormatError)
    assert isinstance(end_code_error(EndCode(0x0204), command=0x0101), FinsRetryableError)
    plain = end_code_error(EndCode(0x4001), command=0x0101)
    assert type(plain) is FinsEndCodeError and plain.kind is EndCodeKind.ABORTED


# --------------------------------------------------------------------------------- strict validation

GOOD_READ = f"{REPLY_HEADER} 11 01 01 00 00 00 01"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (f"{CMD_HEADER} 11 01 01 00 00 00 01", "not a response"),  # ICF 0x80: a command echoed back
        (f"{REPLY_HEADER} 12 01 01 00 00 00 01", "SID"),
        (f"{REPLY_HEADER} 11 01 02 00 00 00 01", "command"),
        ("C0 00 02 00 0B 00 00 01 00 11 01 01 00 00 00 01", "addressed to node"),  # DA1 11, we are 10
        ("C0 00 02 00 0A 00 00 02 00 11 01 01 00 00 00 01", "from node"),  # SA1 2, the PLC is 1
        (f"{REPLY_HEADER} 11 01 01 00 00 00", "data bytes"),  # 1 byte for 1 word
        (f"{REPLY_HEADER} 11 01 01 00 00 00 01 00 02", "data bytes"),  # 2 words for 1
        (f"{REPLY_HEADER} 11 01 01 00", "shorter"),
    ],
)
def test_mismatched_replies_are_rejected(frame: str, reason: str) -> None:
    with pytest.raises(FinsProtocolError, match=reason):
        frames.validate_reply(hx(frame), ROUTE, 0x11, frames.memory_area_read(6076, 1))


def test_good_reference_reply_passes() -> None:
    reply = frames.validate_reply(hx(GOOD_READ), ROUTE, 0x11, frames.memory_area_read(6076, 1))
    assert frames.decode_words(reply.data) == [1]


def test_node_zero_destination_accepts_the_plcs_real_node() -> None:
    route = Route(da1=0, sa1=10)
    reply = frames.validate_reply(hx(GOOD_READ), route, 0x11, frames.memory_area_read(6076, 1))
    assert reply.header.sa1 == 1


def test_simulator_side_command_parsing_and_reply_header() -> None:
    header, command, params = frames.parse_command(hx(f"{CMD_HEADER} 11 01 01 82 17 71 00 00 4D"))
    assert command == 0x0101 and params == hx("82 17 71 00 00 4D")
    assert header.reply_header(own_node=1).pack() == hx(f"{REPLY_HEADER} 11")
    with pytest.raises(FinsProtocolError):
        frames.parse_command(hx(f"{REPLY_HEADER} 11 01 01"))


def test_stats_percentiles() -> None:
    stats = FinsStats()
    assert stats.rtt_avg is None and stats.rtt_p50 is None
    for ms in range(1, 101):
        stats.observe_rtt(ms / 1000)
    assert stats.rtt_min == 0.001 and stats.rtt_max == 0.1
    assert stats.rtt_avg == pytest.approx(0.0505)
    assert stats.rtt_p50 == 0.05
    assert stats.rtt_p99 == 0.099
    assert stats.as_dict()["requests"] == 0
