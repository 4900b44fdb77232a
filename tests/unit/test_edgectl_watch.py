"""`edgectl watch` line formatting and `edgectl plc read` address checks, without a broker or a PLC."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgectl.bus import Received
from edgectl.commands.plc import resolve_read
from edgectl.commands.watch import Formatter
from edgectl.output import table
from shared.mqtt.topics import Topics

T = Topics("scada/plc01")


def msg(topic: str, body: dict[str, Any], at: float = 1000.0) -> Received:
    return Received(topic, json.dumps(body).encode(), False, at)


def read_snap(mo: str, kg: float, finished: int = 0, heartbeat: bool = False) -> dict[str, Any]:
    fields = {
        "mo_id": mo,
        "consumption": {"silo101": kg, "silo102": 0.0, "silo103": 1.0, "silo104": 2.0, "lq114": 3.0},
        "status_manufacturing": finished,
        "status_operation": 0,
        "status_read_data": 0,
        "weight_finished_good": 570.0,
    }
    return {"valid": True, "empty": False, "errors": [], "fields": fields, "heartbeat": heartbeat}


def test_events_and_snapshots_one_line_each() -> None:
    f = Formatter(T)
    event = f.line(msg(T.batch_events, {"event": "written", "mo_id": "WH/MO/00014", "slot": 1, "weight": 1.23456}))
    assert event is not None and event.endswith("WH/MO/00014 written slot 1 weight=1.23")
    line = f.line(msg(T.plc_read(1), read_snap("WH/MO/00014", 12.34)))
    assert line is not None
    assert line.endswith(
        "plc/read/1 WH/MO/00014 running silo101 12.3 kg, silo103 1.0 kg, silo104 2.0 kg, +1 more, total 18.3 kg"
    )
    assert f.line(msg(T.plc_read(1), read_snap("WH/MO/00014", 13.0), at=1000.5)) is None  # < 1 s, same state
    assert f.line(msg(T.plc_read(1), read_snap("WH/MO/00014", 14.0), at=1001.2)) is not None
    assert f.line(msg(T.plc_read(1), read_snap("WH/MO/00014", 14.0, heartbeat=True), at=1003)) is None
    done = f.line(msg(T.plc_read(1), read_snap("WH/MO/00014", 15.0, finished=1), at=1003.1))
    assert done is not None and "finished 570.0 kg" in done
    invalid = f.line(msg(T.plc_read(2), {"valid": False, "errors": ["mo_id: not printable"], "fields": {}}))
    assert invalid is not None and "plc/read/2 INVALID mo_id: not printable" in invalid
    w = f.line(
        msg(T.plc_write(1), {"valid": True, "empty": False, "fields": {"mo_id": "WH/MO/1", "status_read_data": 0}})
    )
    assert w is not None and w.endswith("plc/write/1 WH/MO/1 W=0 (waiting for the PLC)")
    svc = f.line(msg(T.svc_status("odoo_sync"), {"state": "offline"}))
    assert svc is not None and svc.endswith("svc odoo_sync offline")
    assert f.line(msg(T.svc_status("odoo_sync"), {"state": "offline"}, at=1010)) is None
    gw = f.line(
        msg(T.gateway_status, {"state": "online", "plc": {"reachable": False, "last_error": "timeout: x"}})
    )
    assert gw is not None and "PLC UNREACHABLE timeout: x" in gw
    assert f.line(Received(T.batch_events, b"not json", False, 1.0)) is None


def plc_args(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {"area": None, "address": None, "count": None, "slot": 1, "map": None, "decode": False}
    return argparse.Namespace(**{**base, **kw})


def test_plc_read_only_inside_mapped_areas() -> None:
    a = plc_args(area="write-slot", slot=2)
    assert resolve_read(a) is None and (a.address, a.count) == (7100, 77)
    a = plc_args(area="failure", slot=5)
    assert resolve_read(a) is None and (a.address, a.count, a.slot) == (8000, 23, 1)
    assert resolve_read(plc_args(address=6000, count=77)) is None
    assert resolve_read(plc_args(address=6976, count=1)) is None  # slot 10's flag word
    assert "not inside one mapped area" in str(resolve_read(plc_args(address=6070, count=30)))
    assert "not inside one mapped area" in str(resolve_read(plc_args(address=9100, count=1)))
    assert "needs --count" in str(resolve_read(plc_args(address=6000)))
    assert "outside 1..10" in str(resolve_read(plc_args(area="read-slot", slot=11)))
    assert "--count goes with --address" in str(resolve_read(plc_args(area="read-slot", count=3)))
    assert "--decode needs --area" in str(resolve_read(plc_args(address=6000, count=1, decode=True)))


def test_table_keeps_rows_on_one_line() -> None:
    out = table(("mo_id", "last_error"), [["WH/MO/1", "line one\nline two"], ["WH/MO/22", None]])
    assert out.splitlines() == ["MO_ID     LAST_ERROR", "WH/MO/1   line one line two", "WH/MO/22  -"]


def test_weighing_area_and_events_one_line_each() -> None:
    from shared.plc.memory_map import load_memory_map
    from shared.plc.snapshot import decode_manual_weighing
    from tests.unit.test_plc_manual_weighing import GOLDEN

    snap = decode_manual_weighing(load_memory_map(), GOLDEN)
    body = {"area": snap.area, "valid": snap.valid, "errors": list(snap.errors), "fields": snap.fields}
    f = Formatter(T)
    line = f.line(msg(T.plc_weighing, body))
    assert line is not None
    assert "plc/weighing WH/MO/00011 item 1 61 832.00 kg pending, item 6 64 380.69 kg pending" in line
    assert "item 3 REJECTED product_id 0 is below 1" in line
    assert f.line(msg(T.plc_weighing, body, at=1000.5)) is None  # unchanged: not printed again
    event = f.line(msg(T.weighing_events, {"event": "reported", "weighing_id": 7, "event_id": "ab", "kg": 2.35}))
    assert event is not None and event.endswith("weighing 7 reported kg=2.35")
