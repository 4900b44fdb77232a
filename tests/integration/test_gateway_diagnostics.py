"""PLC diagnostics end to end: plc-sim (scan model on) over UDP, the real plc_gateway process, a real Mosquitto,
and `edgectl status` as an operator runs it. The PLC's mode and clock are changed through the simulator's
control API; what must follow is the gateway status, the alarm events, /metrics and edgectl's view."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_gateway import ROOT, Plant
from tests.support.procs import console, wait_until
from tests.support.servers import Broker

STATUS = f"{ROOT}/gateway/status"
EVENTS = f"{ROOT}/events/gateway"
MAX_OFFSET_S = 5


@pytest.fixture
def plant(broker: Broker, tmp_path: Path) -> Iterator[Plant]:
    env = {
        "PLC_DIAG_INTERVAL_S": "0.3",
        "PLC_CLOCK_MAX_OFFSET_S": str(MAX_OFFSET_S),
        "PLANT_TIMEZONE": "Asia/Jakarta",
    }
    p = Plant(broker, tmp_path, ["--scan-ms", "10", "--timezone", "Asia/Jakarta"], env=env)
    yield p
    p.stop()


def diag_of(body: dict[str, Any]) -> dict[str, Any]:
    plc = body.get("plc") or {}
    return plc.get("diagnostics") or {}


def alarm_kinds(body: dict[str, Any]) -> set[str]:
    return {a["kind"] for a in (body.get("plc") or {}).get("alarms") or ()}


def metrics(plant: Plant) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{plant.health_port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("gateway_plc_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def edgectl_status(plant: Plant) -> tuple[int, dict[str, Any]]:
    # The database is deliberately unreachable: status still prints what the broker told it (exit 3).
    run = subprocess.run(
        [
            console("edgectl"),
            "status",
            "--json",
            "--timeout",
            "3",
            "--mqtt-url",
            plant.broker.url,
            "--topic-root",
            ROOT,
            "--database-url",
            "postgresql://nobody@127.0.0.1:1/none",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    return run.returncode, json.loads(run.stdout)


def test_diagnostics_in_status_metrics_and_edgectl(plant: Plant) -> None:
    _, body = plant.watch.wait_for(lambda t, b: t == STATUS and diag_of(b).get("mode") == "RUN", 15)
    diag = diag_of(body)
    assert diag["running"] is True and diag["fatal_error"] == 0 and diag["error"] is None
    assert abs(diag["clock_offset_s"]) <= 1.5, diag  # simulator and gateway share the host's clock
    # The simulator's 10 ms scans as 0620 reports them (generous bounds: 2 shared cores). The minimum may read 0:
    # the simulated scan loop catches up on a late wake-up with a near-instant scan.
    cycle = diag["cycle_ms"]
    assert 5 <= cycle["average"] <= 50 and cycle["max"] >= cycle["average"] >= cycle["min"] >= 0, diag
    assert alarm_kinds(body) == set()

    m = metrics(plant)
    assert m['gateway_plc_mode{mode="RUN"}'] == 1 and m['gateway_plc_mode{mode="PROGRAM"}'] == 0
    assert m["gateway_plc_running"] == 1 and m['gateway_plc_alarm{kind="plc_mode"}'] == 0
    assert 0.005 <= m['gateway_plc_cycle_time_seconds{stat="average"}'] <= 0.05
    assert m['gateway_plc_diagnostics_total{result="ok"}'] >= 1

    rc, doc = edgectl_status(plant)
    assert rc == 3  # the database did not answer; the PLC part is still there
    assert doc["plc"]["diagnostics"]["mode"] == "RUN" and doc["plc"]["alarms"] == []
    assert not any(p.startswith("PLC alarm") for p in doc["problems"])


def test_program_mode_raises_one_alarm_and_clears_it(plant: Plant) -> None:
    plant.watch.wait_for(lambda t, b: t == STATUS and diag_of(b).get("mode") == "RUN", 15)
    start = plant.watch.mark()
    plant.control("POST", "/plc", {"mode": "PROGRAM"})
    _, event = plant.watch.wait_for(lambda t, b: t == EVENTS and b.get("event") == "alarm", 10, since=start)
    assert event["alarm"] == "plc_mode" and event["mode"] == "PROGRAM" and "PROGRAM" in event["message"]
    assert event["source"] == "plc_gateway"
    _, body = plant.watch.wait_for(lambda t, b: t == STATUS and "plc_mode" in alarm_kinds(b), 10, since=start)
    assert diag_of(body)["mode"] == "PROGRAM" and diag_of(body)["running"] is False
    assert metrics(plant)['gateway_plc_alarm{kind="plc_mode"}'] == 1

    _, doc = edgectl_status(plant)
    assert doc["plc"]["diagnostics"]["mode"] == "PROGRAM"
    assert any(p.startswith("PLC alarm: PLC in PROGRAM mode") for p in doc["problems"]), doc["problems"]

    # Several more rounds in PROGRAM mode: the alarm is not announced again.
    rounds = metrics(plant)['gateway_plc_diagnostics_total{result="ok"}']
    wait_until(
        lambda: metrics(plant)['gateway_plc_diagnostics_total{result="ok"}'] >= rounds + 3, 10, what="rounds"
    )
    plant.control("POST", "/plc", {"mode": "MONITOR"})
    _, cleared = plant.watch.wait_for(lambda t, b: t == EVENTS and b.get("event") == "cleared", 10, since=start)
    assert cleared["alarm"] == "plc_mode" and cleared["mode"] == "MONITOR"
    alarms = [b for _, t, b, _ in plant.watch.messages[start:] if t == EVENTS and b and b.get("event") == "alarm"]
    assert len(alarms) == 1, alarms
    _, body = plant.watch.wait_for(
        lambda t, b: t == STATUS and diag_of(b).get("mode") == "MONITOR", 10, since=start
    )
    assert alarm_kinds(body) == set()
    assert metrics(plant)['gateway_plc_alarm{kind="plc_mode"}'] == 0


def test_clock_offset_beyond_the_limit_is_an_alarm(plant: Plant) -> None:
    plant.watch.wait_for(lambda t, b: t == STATUS and diag_of(b).get("mode") == "RUN", 15)
    start = plant.watch.mark()
    # Within the limit: no alarm, and the offset shows.
    plant.control("POST", "/plc", {"clock_offset_s": MAX_OFFSET_S - 2})
    _, body = plant.watch.wait_for(
        lambda t, b: t == STATUS and abs(diag_of(b).get("clock_offset_s", 0) - (MAX_OFFSET_S - 2)) <= 1.5,
        10,
        since=start,
    )
    assert alarm_kinds(body) == set()
    plant.control("POST", "/plc", {"clock_offset_s": -90})
    _, event = plant.watch.wait_for(lambda t, b: t == EVENTS and b.get("event") == "alarm", 10, since=start)
    assert event["alarm"] == "plc_clock" and -91.5 <= event["clock_offset_s"] <= -88.5, event
    _, body = plant.watch.wait_for(lambda t, b: t == STATUS and "plc_clock" in alarm_kinds(b), 10, since=start)
    assert -91.5 <= diag_of(body)["clock_offset_s"] <= -88.5
    assert metrics(plant)["gateway_plc_clock_offset_seconds"] == pytest.approx(-90, abs=1.5)
    plant.control("POST", "/plc", {"clock_offset_s": 0})
    _, cleared = plant.watch.wait_for(lambda t, b: t == EVENTS and b.get("event") == "cleared", 10, since=start)
    assert cleared["alarm"] == "plc_clock"
    # The alarm never fired for the mode: the PLC stayed in RUN throughout.
    events = [b for _, t, b, _ in plant.watch.messages[start:] if t == EVENTS and b]
    assert {e["alarm"] for e in events} == {"plc_clock"}


def test_diagnostics_with_the_scan_model_off(broker: Broker, tmp_path: Path) -> None:
    """Instant replies (--scan-ms 0, the unit-speed mode): 0620 still reports the program's 10 ms period."""
    p = Plant(broker, tmp_path, ["--scan-ms", "0"], env={"PLC_DIAG_INTERVAL_S": "0.3"})
    try:
        _, body = p.watch.wait_for(lambda t, b: t == STATUS and diag_of(b).get("mode") == "RUN", 15)
        assert 5 <= diag_of(body)["cycle_ms"]["average"] <= 50 and abs(diag_of(body)["clock_offset_s"]) <= 1.5
        start = p.watch.mark()
        p.control("POST", "/plc", {"mode": "PROGRAM"})
        _, event = p.watch.wait_for(lambda t, b: t == EVENTS and b.get("event") == "alarm", 10, since=start)
        assert event["alarm"] == "plc_mode"
    finally:
        p.stop()
