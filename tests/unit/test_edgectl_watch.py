"""`edgectl watch` line formatting and `edgectl plc read` address checks, without a broker or a PLC."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgectl.bus import Received
from edgectl.commands.plc import resolve_read
from edgectl.commands.watch import Formatter
from edgectl.output import table
from shared.mqtt.events import BatchEvent, WeighingEvent
from shared.mqtt.payloads import utc_now
from shared.mqtt.snapshots import ReadSlotSnapshot
from shared.mqtt.topics import Topics
from shared.mqtt.wire import Envelope
from tests.support.messages import invalid_read_slot, plc_link, read_slot, status, weighing_area, write_slot

T = Topics("scada/plc01")


def msg(topic: str, body: dict[str, Any] | Envelope, at: float = 1000.0) -> Received:
    data = body.wire() if isinstance(body, Envelope) else body
    return Received(topic, json.dumps(data).encode(), False, at)


def read_snap(mo: str, kg: float, finished: int = 0, heartbeat: bool = False) -> ReadSlotSnapshot:
    consumption = {"silo101": kg, "silo102": 0.0, "silo103": 1.0, "silo104": 2.0, "lq114": 3.0}
    return read_slot(mo, kg=consumption, mfg=finished, weight=570.0, heartbeat=heartbeat)


def event(**details: Any) -> BatchEvent:
    return BatchEvent(ts=utc_now(), source="test", **details)


def test_events_and_snapshots_one_line_each() -> None:
    f = Formatter(T)
    written = f.line(msg(T.batch_events, event(event="written", mo_id="WH/MO/00014", slot=1, weight=1.23456)))
    assert written is not None and written.endswith("WH/MO/00014 written slot 1 weight=1.23")
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
    invalid = f.line(msg(T.plc_read(2), invalid_read_slot(2)))
    assert invalid is not None and "plc/read/2 INVALID batch word 3 != slot 2" in invalid
    forged = f.line(msg(T.plc_read(3), {"valid": True, "fields": {"mo_id": 5}}))
    assert forged is not None and "plc/read/3 INVALID malformed snapshot: " in forged
    w = f.line(msg(T.plc_write(1), write_slot("WH/MO/00001", w=0)))
    assert w is not None and w.endswith("plc/write/1 WH/MO/00001 W=0 (waiting for the PLC)")
    svc = f.line(msg(T.svc_status("odoo_sync"), status("offline")))
    assert svc is not None and svc.endswith("svc odoo_sync offline")
    assert f.line(msg(T.svc_status("odoo_sync"), status("offline"), at=1010)) is None
    gw = f.line(msg(T.gateway_status, status(plc=plc_link(False, last_error="timeout: x"))))
    assert gw is not None and "PLC UNREACHABLE timeout: x" in gw
    forged = f.line(msg(T.svc_status("mo_planner"), {"state": "online"}))
    assert forged is not None and "svc mo_planner MALFORMED" in forged
    assert f.line(Received(T.batch_events, b"not json", False, 1.0)) is None
    bad_event = f.line(msg(T.batch_events, {"event": "exploded", "mo_id": "WH/MO/00014"}))
    assert bad_event is not None and "events/batch MALFORMED" in bad_event


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
    from tests.unit.test_plc_manual_weighing import GOLDEN

    body = weighing_area(list(GOLDEN))
    f = Formatter(T)
    line = f.line(msg(T.plc_weighing, body))
    assert line is not None
    assert "plc/weighing WH/MO/00011 item 1 61 832.00 kg pending, item 6 64 380.69 kg pending" in line
    assert "item 3 REJECTED product_id 0 is below 1" in line
    assert f.line(msg(T.plc_weighing, body, at=1000.5)) is None  # unchanged: not printed again
    reported = WeighingEvent(ts=utc_now(), source="test", event="reported", weighing_id=7, event_id="ab", kg=2.35)
    line = f.line(msg(T.weighing_events, reported))
    assert line is not None and line.endswith("weighing 7 reported kg=2.35")
