"""The gateway's PLC diagnostics rules (services/plc_gateway/diagnostics.py): clock offset, alarms, alarm book,
status view. The frames themselves are checked in test_fins_diag_frames.py."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.plc_gateway.diagnostics import (
    Alarm,
    AlarmBook,
    Reading,
    alarms_of,
    clock_offset_s,
    diagnose,
    status_view,
)
from shared.fins import frames
from shared.fins.frames import ControllerStatus, CycleTime

JAKARTA = ZoneInfo("Asia/Jakarta")  # UTC+7, no daylight saving
BERLIN = ZoneInfo("Europe/Berlin")


def status(
    mode: int = frames.MODE_RUN, running: bool = True, fatal: int = 0, message: str = ""
) -> ControllerStatus:
    return ControllerStatus(0x01 if running else 0x00, mode, fatal, 0, 0, 0, message)


def utc(*args: int, micro: int = 0) -> dt.datetime:
    return dt.datetime(*args, microsecond=micro, tzinfo=dt.UTC)


def test_offset_zero_when_the_plc_is_in_step() -> None:
    # 12:00:00.4 UTC is 19:00:00.4 in Jakarta; the PLC shows the truncated 19:00:00.
    assert (
        clock_offset_s(dt.datetime(2026, 12, 1, 19, 0, 0), utc(2026, 12, 1, 12, 0, 0, micro=400_000), JAKARTA)
        == 0.1
    )
    assert (
        clock_offset_s(dt.datetime(2026, 12, 1, 19, 0, 0), utc(2026, 12, 1, 12, 0, 0, micro=900_000), JAKARTA)
        == -0.4
    )


def test_offset_sign_positive_when_the_plc_is_ahead() -> None:
    gw = utc(2026, 12, 1, 12, 0, 0)
    assert clock_offset_s(dt.datetime(2026, 12, 1, 19, 1, 30), gw, JAKARTA) == 90.5
    assert clock_offset_s(dt.datetime(2026, 12, 1, 18, 58, 0), gw, JAKARTA) == -119.5


def test_offset_compares_instants_across_a_daylight_saving_change() -> None:
    # Summer: 10:00 UTC is 12:00 CEST.
    assert clock_offset_s(dt.datetime(2026, 7, 1, 12, 0, 0), utc(2026, 7, 1, 10, 0, 0), BERLIN) == 0.5
    # 02:30 happens twice on 2026-10-25 (CEST at 00:30 UTC, CET at 01:30 UTC): both read as in step.
    assert clock_offset_s(dt.datetime(2026, 10, 25, 2, 30, 0), utc(2026, 10, 25, 0, 30, 0), BERLIN) == 0.5
    assert clock_offset_s(dt.datetime(2026, 10, 25, 2, 30, 0), utc(2026, 10, 25, 1, 30, 0), BERLIN) == 0.5
    # Outside the repeated hour a wall time an hour off is an hour off.
    assert clock_offset_s(dt.datetime(2026, 10, 25, 5, 0, 0), utc(2026, 10, 25, 3, 0, 0), BERLIN) == 3600.5


def test_offset_refuses_ambiguous_inputs() -> None:
    with pytest.raises(ValueError, match="naive"):
        clock_offset_s(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), utc(2026, 1, 1), JAKARTA)
    with pytest.raises(ValueError, match="timezone"):
        clock_offset_s(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1), JAKARTA)


@pytest.mark.parametrize("mode", [frames.MODE_RUN, frames.MODE_MONITOR])
def test_run_and_monitor_in_step_raise_nothing(mode: int) -> None:
    assert alarms_of(status(mode), 0.3, 10) == ()


@pytest.mark.parametrize("mode", [frames.MODE_PROGRAM, frames.MODE_DEBUG])
def test_leaving_run_monitor_is_an_alarm(mode: int) -> None:
    (alarm,) = alarms_of(status(mode, running=False), 0.0, 10)
    assert alarm.kind == "plc_mode" and frames.MODE_NAMES[mode] in alarm.message


def test_stopped_in_run_mode_by_a_fatal_error_is_an_alarm() -> None:
    (alarm,) = alarms_of(status(running=False, fatal=0x4000, message="MEMORY ERR"), 0.0, 10)
    assert alarm.kind == "plc_mode" and "0x4000" in alarm.message and "MEMORY ERR" in alarm.message


def test_clock_alarm_only_beyond_the_limit() -> None:
    assert alarms_of(status(), 10.0, 10) == ()
    assert alarms_of(status(), -10.0, 10) == ()
    (ahead,) = alarms_of(status(), 10.1, 10)
    (behind,) = alarms_of(status(), -300.0, 10)
    assert ahead.kind == behind.kind == "plc_clock"
    assert "+10.1 s" in ahead.message and "-300.0 s" in behind.message


def test_both_alarms_at_once() -> None:
    kinds = [a.kind for a in alarms_of(status(frames.MODE_PROGRAM, running=False), 60, 10)]
    assert kinds == ["plc_mode", "plc_clock"]


def test_diagnose_combines_offset_and_alarms() -> None:
    reading = Reading(
        status(frames.MODE_PROGRAM, running=False),
        CycleTime(10.2, 14.0, 9.9),
        dt.datetime(2026, 12, 1, 19, 0, 20),
        utc(2026, 12, 1, 12, 0, 0),
    )
    d = diagnose(reading, JAKARTA, max_offset_s=5)
    assert d.clock_offset_s == 20.5
    assert [a.kind for a in d.alarms] == ["plc_mode", "plc_clock"]


def test_alarm_book_announces_each_alarm_once_and_its_end_once() -> None:
    book = AlarmBook()
    t0, t1, t2 = utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 1, 0)
    mode = Alarm("plc_mode", "PLC in PROGRAM mode")
    clock1, clock2 = Alarm("plc_clock", "off by 20 s"), Alarm("plc_clock", "off by 25 s")
    assert book.update((mode, clock1), t0) == ([mode, clock1], [])
    # Still both: nothing new, the clock message is refreshed, the start time is kept.
    assert book.update((mode, clock2), t1) == ([], [])
    assert [(a.kind, a.message, a.since) for a in book.as_list()] == [
        ("plc_mode", "PLC in PROGRAM mode", t0.isoformat()),
        ("plc_clock", "off by 25 s", t0.isoformat()),
    ]
    assert book.update((clock2,), t2) == ([], [mode])
    assert book.update((), t2) == ([], [clock2])
    assert book.as_list() == []


def test_status_view() -> None:
    assert status_view(None, None, "timeout").model_dump(mode="json") == {"read_at": None, "error": "timeout"}
    reading = Reading(
        status(frames.MODE_MONITOR),
        CycleTime(10.4, 23.7, 9.8),
        dt.datetime(2026, 12, 1, 19, 0, 3),
        utc(2026, 12, 1, 12),
    )
    view = status_view(diagnose(reading, JAKARTA, 10), utc(2026, 12, 1, 12), None).model_dump(mode="json")
    assert view["mode"] == "MONITOR" and view["running"] is True
    assert view["cycle_ms"] == {"average": 10.4, "max": 23.7, "min": 9.8}
    assert view["clock_offset_s"] == 3.5 and view["plc_clock"] == "2026-12-01T19:00:03"
    assert view["error"] is None and view["error_message"] is None
