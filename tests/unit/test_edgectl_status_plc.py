"""`edgectl status`'s PLC part: diagnostics and alarms from the gateway's retained status, as people read it."""

from __future__ import annotations

from typing import Any

from edgectl.commands.status import diagnostics_line, human, plc_view
from shared.mqtt.status import ServiceStatus
from shared.mqtt.topics import Topics
from tests.support.messages import plc_link, status

T = Topics("scada/plc01")
DIAG = {
    "mode": "RUN",
    "running": True,
    "fatal_error": 0,
    "non_fatal_error": 0,
    "error_message": None,
    "cycle_ms": {"average": 10.4, "max": 23.7, "min": 9.8},
    "plc_clock": "2026-12-01T19:00:03",
    "clock_offset_s": -0.4,
    "read_at": "2026-12-01T12:00:03+00:00",
    "error": None,
}


def gateway(diag: Any, alarms: list[dict[str, Any]]) -> dict[str, ServiceStatus]:
    plc = plc_link(rtt_ms=12.0, last_error=None, diagnostics=diag, alarms=alarms)
    return {T.gateway_status: status(slots=10, plc=plc)}


def test_diagnostics_line_shows_mode_scan_and_clock() -> None:
    line = diagnostics_line(DIAG)
    assert line is not None
    assert "mode RUN" in line and "scan 10.4 ms avg, 23.7 max, 9.8 min" in line and "clock -0.4 s" in line
    assert "errors" not in line and "(stopped)" not in line
    stopped = diagnostics_line({**DIAG, "mode": "PROGRAM", "running": False, "non_fatal_error": 0x0100})
    assert stopped is not None and "mode PROGRAM (stopped)" in stopped and "non-fatal 0x0100" in stopped
    assert diagnostics_line(None) is None  # diagnostics off
    pending = diagnostics_line({"read_at": None, "error": "command 0601: no reply"})
    assert pending == "PLC diag   not read yet: command 0601: no reply"


def test_alarms_become_problems_in_the_human_view() -> None:
    alarm = {"kind": "plc_clock", "message": "PLC clock is +90.5 s off", "since": "2026-12-01T12:00:00+00:00"}
    view = plc_view(gateway(DIAG, [alarm]), T)
    assert view["alarms"] == [alarm] and view["diagnostics"] == DIAG
    doc = {
        "broker": "mqtt://x:1883",
        "topic_root": T.root,
        "broker_reachable": True,
        "services": {},
        "plc": view,
        "ok": False,
        "problems": ["PLC alarm: PLC clock is +90.5 s off"],
    }
    text = human(doc)
    assert "PLC ALARM  PLC clock is +90.5 s off (since 2026-12-01T12:00:00+00:00)" in text
    assert "PLC diag   mode RUN" in text


def test_an_older_gateway_without_diagnostics() -> None:
    view = plc_view(gateway(None, []), T)
    assert view["diagnostics"] is None and view["alarms"] == []
