"""Golden frames of the PLC diagnostics: 0601 CPU status with error flags, 0620 cycle time, 0701 clock.

Bytes written out by hand from W342 (5-3-x): 0620's parameter 01 reads average, maximum and minimum cycle time,
each 4 bytes binary in 0.1 ms; 0701 answers year, month, day, hour, minute, second in BCD and the day of week
(00 = Sunday).
"""

from __future__ import annotations

import datetime as dt

import pytest

from shared.fins import frames
from shared.fins.errors import FinsProtocolError
from shared.fins.frames import Route

ROUTE = Route(dna=0, da1=1, da2=0, sna=0, sa1=10, sa2=0)
CMD_HEADER = "80 00 02 00 01 00 00 0A 00"
REPLY_HEADER = "C0 00 02 00 0A 00 00 01 00"


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_command_frames_match_golden_bytes() -> None:
    assert frames.encode_command(ROUTE, 0x21, frames.cycle_time_read()) == hx(f"{CMD_HEADER} 21 06 20 01")
    assert frames.encode_command(ROUTE, 0x22, frames.clock_read()) == hx(f"{CMD_HEADER} 22 07 01")


def test_cycle_time_reply() -> None:
    # average 10.4 ms = 104 = 0x68, max 23.7 ms = 237 = 0xED, min 9.8 ms = 98 = 0x62
    frame = hx(f"{REPLY_HEADER} 21 06 20 00 00 00000068 000000ED 00000062")
    reply = frames.validate_reply(frame, ROUTE, 0x21, frames.cycle_time_read())
    assert frames.decode_cycle_time(reply.data) == frames.CycleTime(10.4, 23.7, 9.8)
    assert frames.encode_cycle_time(10.4, 23.7, 9.8) == reply.data
    with pytest.raises(FinsProtocolError, match="12"):
        frames.decode_cycle_time(hx("00000068 000000ED"))


def test_clock_reply_is_bcd_with_day_of_week() -> None:
    # 2026-12-01 19:05:59, a Tuesday (02)
    frame = hx(f"{REPLY_HEADER} 22 07 01 00 00 26 12 01 19 05 59 02")
    reply = frames.validate_reply(frame, ROUTE, 0x22, frames.clock_read())
    assert frames.decode_clock(reply.data) == dt.datetime(2026, 12, 1, 19, 5, 59)
    assert frames.encode_clock(dt.datetime(2026, 12, 1, 19, 5, 59)) == reply.data
    assert frames.encode_clock(dt.datetime(2026, 11, 29, 0, 0, 0))[6] == 0  # Sunday
    assert frames.decode_clock(hx("99 01 01 00 00 00 05")).year == 1999  # 98/99: the 1900s


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("26 1A 01 19 05 59 02", "not BCD"),
        ("26 13 01 19 05 59 02", "impossible date"),
        ("26 02 30 19 05 59 02", "impossible date"),
        ("26 12 01 19 05 59 07", "day of week"),
        ("26 12 01 19 05 59", "7"),
    ],
)
def test_clock_reply_rejects_garbage(data: str, reason: str) -> None:
    with pytest.raises(FinsProtocolError, match=reason):
        frames.decode_clock(hx(data))


def test_controller_status_error_flags() -> None:
    # MONITOR (02), running, one non-fatal flag (0x0100), no fatal flag
    frame = hx(f"{REPLY_HEADER} 15 06 01 00 00 01 02 0000 0100 0000 0000") + bytes(16)
    status = frames.decode_controller_status(
        frames.validate_reply(frame, ROUTE, 0x15, frames.controller_status_read()).data
    )
    assert status.running and status.mode_name == "MONITOR"
    assert (status.fatal_error, status.non_fatal_error) == (0, 0x0100)
    assert frames.encode_controller_status(1, 2, non_fatal_error=0x0100) == frame[14:]


def test_clock_encode_refuses_years_the_plc_cannot_hold() -> None:
    with pytest.raises(ValueError, match=r"1998\.\.2097"):
        frames.encode_clock(dt.datetime(2100, 1, 1))
