"""The console's view models and the shared operator-action rules, without a server."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from services.console import views
from shared.db.operator_actions import batch_actions, weighing_actions
from shared.mqtt.snapshots import ReadSlotSnapshot
from shared.mqtt.topics import Topics
from shared.mqtt.wire import Envelope
from tests.support.messages import plc_link, read_slot, status

T = Topics("scada/t1")


def read(mo: str | None, consumption: dict[str, float], slot: int = 1, **flags: int) -> ReadSlotSnapshot:
    return read_slot(
        mo, slot, kg=consumption, mfg=flags.get("status_manufacturing", 0), op=flags.get("status_operation", 0)
    )


def raw(body: dict[str, object] | Envelope) -> bytes:
    return json.dumps(body.wire() if isinstance(body, Envelope) else body).encode()


def test_live_state_takes_statuses_and_snapshots_and_ignores_heartbeats() -> None:
    live = views.LiveState(T)
    assert live.apply("scada/t1/svc/mo_planner/status", raw(status(slots=1)))
    assert live.apply("scada/t1/gateway/status", raw(status(plc=plc_link())))
    assert not live.apply("scada/t1/gateway/status", raw(status(plc=plc_link())))  # only its ts is new
    assert live.apply("scada/t1/plc/read/2", raw(read("WH/MO/00001", {"silo101": 1.0}, slot=2)))
    # Same content, new ts/seq/heartbeat: nothing a page shows changed.
    again = read("WH/MO/00001", {"silo101": 1.0}, slot=2).model_copy(update={"seq": 2, "heartbeat": True})
    assert not live.apply("scada/t1/plc/read/2", raw(again))
    assert live.apply("scada/t1/plc/read/2", raw(read("WH/MO/00001", {"silo101": 2.0}, slot=2)))
    assert not live.apply("scada/other/svc/x/status", raw(status()))
    assert set(live.statuses) == {"mo_planner", "plc_gateway"} and set(live.reads) == {2}
    # Not a status (no envelope, no client id): refused, the service then has no status.
    assert live.apply("scada/t1/svc/mo_planner/status", raw({"state": "online"}))
    assert set(live.statuses) == {"plc_gateway"}


def test_a_message_that_is_not_a_snapshot_shows_as_invalid_data() -> None:
    live = views.LiveState(T)
    forged = read("WH/MO/00001", {"silo101": 1.0}).wire() | {"fields": {"mo_id": "WH/MO/00001"}}
    assert live.apply("scada/t1/plc/read/1", raw(forged))
    row = views.slot_rows([1], live.reads, {}, {})[0]
    assert (row.mo_id, row.phase, row.tone) == (None, "INVALID DATA", "bad")
    assert "malformed snapshot" in live.reads[1].errors[0]


def test_service_rows_name_missing_and_offline_services_in_words() -> None:
    rows = {r.name: r for r in views.service_rows({"mo_planner": status("offline"), "console": status()})}
    assert (rows["mo_planner"].state, rows["mo_planner"].tone) == ("OFFLINE", "bad")
    assert (rows["plc_gateway"].state, rows["plc_gateway"].tone) == ("NO STATUS", "bad")
    assert (rows["console"].state, rows["console"].tone) == ("online", "ok")
    assert list(rows)[:4] == list(views.EXPECTED_SERVICES)


def diag(mode: str = "RUN", offset: float = 0.4, **extra: object) -> dict[str, object]:
    """`plc.diagnostics` as plc_gateway publishes it (services/plc_gateway/diagnostics.py: status_view)."""
    return {"mode": mode, "running": True, "fatal_error": 0, "non_fatal_error": 0, "error_message": None,
            "cycle_ms": {"average": 10.2, "max": 14.0, "min": 9.8}, "plc_clock": "2026-03-04T10:00:00",
            "clock_offset_s": offset, "read_at": "2026-03-04T10:00:00+00:00", "error": None, **extra}  # fmt: skip


def test_plc_row() -> None:
    assert views.plc_row(None).state == "UNKNOWN"
    assert views.plc_row(status("offline", plc=plc_link())).tone == "bad"
    ok = views.plc_row(status(slots=2, plc=plc_link(rtt_ms=3.2, diagnostics=diag(), alarms=[])))
    assert (ok.state, ok.slots, ok.detail, ok.alarms) == ("reachable", 2, "rtt 3.2 ms", ())
    shown = {d.key: (d.value, d.tone) for d in ok.diagnostics}
    assert shown == {
        "plc-mode": ("RUN", "ok"),
        "plc-scan": ("10.2 ms avg, 14.0 ms max", "ok"),
        "plc-clock": ("+0.4 s vs gateway", "ok"),
    }
    down = views.plc_row(status(plc=plc_link(False, last_error="timeout")))
    assert (down.state, down.detail) == ("UNREACHABLE", "timeout")
    assert [(d.value, d.tone) for d in down.diagnostics] == [("off", "idle")]  # no diagnostics published


def test_plc_alarms_colour_their_value_and_keep_the_gateways_words() -> None:
    alarms = [
        {"kind": "plc_mode", "message": "PLC in PROGRAM mode: the program does not run", "since": "x"},
        {"kind": "plc_clock", "message": "PLC clock is +120.0 s off the gateway's (limit 10 s)", "since": "x"},
    ]
    plc = {"rtt_ms": 2, "diagnostics": diag("PROGRAM", 120.04), "alarms": alarms}
    row = views.plc_row(status(plc=plc_link(**plc)))
    shown = {d.key: (d.value, d.tone) for d in row.diagnostics}
    assert shown["plc-mode"] == ("PROGRAM: ALARM", "bad")
    assert shown["plc-clock"] == ("+120.0 s vs gateway: ALARM", "bad")
    assert shown["plc-scan"][1] == "ok"
    healthy = views.service_rows({n: status() for n in views.EXPECTED_SERVICES})
    texts = [b.text for b in views.banners([], 0, healthy, row, broker_connected=True)]
    assert texts == [f"PLC ALARM: {a['message']}" for a in alarms]
    # Only the clock alarm: the mode stays green; a stopped CPU says so in words.
    stopped = diag("RUN", running=False)
    row = views.plc_row(status(plc=plc_link(**{**plc, "diagnostics": stopped, "alarms": alarms[1:]})))
    shown = {d.key: (d.value, d.tone) for d in row.diagnostics}
    assert shown["plc-mode"] == ("RUN (stopped)", "ok") and shown["plc-clock"][1] == "bad"
    # Not read yet, and a failed round: said in words, never green.
    waiting = views.plc_row(status(plc=plc_link(diagnostics={"read_at": None, "error": "timeout"})))
    assert [(d.value, d.tone) for d in waiting.diagnostics] == [("NOT READ YET: timeout", "warn")]
    failed = views.plc_row(status(plc=plc_link(diagnostics=diag(error="end code"))))
    assert failed.diagnostics[-1].value == "FAILED: end code" and failed.diagnostics[-1].tone == "warn"


def test_weighing_states_in_words() -> None:
    kg = Decimal("2.50")
    assert views.weighing_status(False, False, None, None, kg) == ("stored, not acked on the PLC", "warn")
    assert views.weighing_status(True, False, None, None, kg) == ("waiting for Odoo", "warn")
    assert views.weighing_status(True, False, "MO done", None, kg) == ("ATTENTION", "bad")
    assert views.weighing_status(False, False, "ack unknown", None, kg) == (
        "ATTENTION: did the PLC take it?",
        "bad",
    )
    assert views.weighing_status(True, True, "short", Decimal("1.00"), kg) == ("ATTENTION: booked in part", "bad")
    assert views.weighing_status(True, True, None, Decimal("2.50"), kg) == ("booked", "ok")
    closed = views.weighing_status(True, True, None, Decimal("0.00"), kg)
    assert closed == ("closed: 0.00 of 2.50 kg booked by the gateway", "idle")


def test_weighing_actions_fit_the_state() -> None:
    kg = Decimal("2.50")
    parked = weighing_actions(7, "MO done", False, None, kg)
    assert parked["weighing_retry"] is None and parked["weighing_give_up"] is None
    assert "already acknowledged" in str(parked["weighing_acked"])
    unacked = weighing_actions(7, "acknowledgement unknown", False, None, kg, acked=False)
    assert unacked["weighing_retry"] is None and unacked["weighing_acked"] is None
    assert "still waits on the PLC" in str(unacked["weighing_give_up"])
    part = weighing_actions(7, "short", True, Decimal("1.00"), kg)
    assert part["weighing_give_up"] is None and "a retry would post it again" in str(part["weighing_retry"])
    done = weighing_actions(7, None, True, kg, kg)
    assert all("not in attention" in str(reason) for reason in done.values())


def test_slot_rows_progress_against_stored_targets() -> None:
    reads = {1: read("WH/MO/00001", {"silo101": 50.0, "silo102": 0.0, "lq114": 10.0}), 2: read(None, {}, slot=2)}
    targets = {"WH/MO/00001": {"silo101": 100.0, "silo102": 20.0, "silo103": 0.0, "lq114": 10.0}}
    rows = views.slot_rows([1, 2, 3], reads, targets, {"WH/MO/00001": "running"})
    one = rows[0]
    assert (one.mo_id, one.phase, one.db_state) == ("WH/MO/00001", "dosing", "running")
    assert {p.code: p.percent for p in one.silos} == {"silo101": 50, "silo102": 0, "lq114": 100}
    assert (rows[1].mo_id, rows[1].phase) == (None, "idle")
    assert rows[2].phase == "NO DATA" and rows[2].tone == "bad"
    failed = views.slot_rows([1], {1: read("WH/MO/00002", {}, status_operation=1)}, {}, {})[0]
    assert failed.phase == "FAILED on the PLC" and failed.tone == "bad"
    assert views.SiloProgress("x", 120.0, 100.0).percent == 100


def test_banners_put_attention_first_and_hide_service_noise_without_broker() -> None:
    services = views.service_rows({})
    plc = views.plc_row(None)
    offline = views.banners(["WH/MO/00001"], 0, services, plc, broker_connected=False)
    assert offline[0].text.startswith("CONSOLE NOT CONNECTED")
    assert not any("SERVICE DOWN" in b.text for b in offline)  # unknown, not down, while we cannot see
    online = views.banners(["WH/MO/00001"], 2, services, plc, broker_connected=True)
    texts = [b.text for b in online]
    assert texts[0].startswith("ATTENTION: 1 batch") and "WH/MO/00001" in texts[0]
    assert any("2 failure report" in t for t in texts) and any("SERVICE DOWN" in t for t in texts)
    healthy = views.service_rows({n: status() for n in views.EXPECTED_SERVICES})
    ok_plc = views.plc_row(status(plc=plc_link()))
    assert views.banners([], 0, healthy, ok_plc, broker_connected=True) == []
    [weighings] = views.banners([], 0, healthy, ok_plc, broker_connected=True, attention_weighings=3)
    assert weighings.text == "ATTENTION: 3 manual weighing(s) need an operator" and weighings.href.startswith(
        "/weighings"
    )


def test_history_query_validation_and_paging_params() -> None:
    q = views.parse_history_query(
        {"mo": " WH/MO ", "status": "completed", "from": "2026-01-02", "to": "2026-13-01", "page": "3"},
        ["completed", "failed"],
    )
    assert (q.mo, q.status, q.date_from, q.date_to, q.page) == ("WH/MO", "completed", dt.date(2026, 1, 2), None, 3)
    assert len(q.errors) == 1 and "to" in q.errors[0]
    assert q.params(4) == {"mo": "WH/MO", "status": "completed", "from": "2026-01-02", "page": "4"}
    bad = views.parse_history_query({"status": "x' OR 1=1", "page": "-5"}, ["completed"])
    assert bad.status == "" and bad.page == 1 and bad.errors
    assert views.pages(0, 50) == 1 and views.pages(101, 50) == 3


def test_csv_neutralises_formulas() -> None:
    text = views.csv_text(["mo_id", "note"], [{"mo_id": "WH/MO/1", "note": "=HYPERLINK(1)"}, {"mo_id": None}])
    assert text.splitlines() == ["mo_id,note", "WH/MO/1,'=HYPERLINK(1)", ","]


def test_operator_action_rules() -> None:
    def acts(
        state: str, origin: str | None = None, failed: bool = False, rid: str | None = None
    ) -> dict[str, bool]:
        return {k: v is None for k, v in batch_actions("M", state, origin, failed, rid).items()}

    assert acts("queued") == {"retry": False, "cancel": True}
    assert acts("queued", rid="wb-1") == {"retry": False, "cancel": False}  # may be on the PLC now
    for on_plc in ("written", "accepted", "running"):
        assert acts(on_plc) == {"retry": False, "cancel": False}
    for origin in ("finished", "failed", "reported"):  # ended on the PLC: its result must reach Odoo
        assert acts("attention", origin) == {"retry": True, "cancel": False}
    for origin in ("written", "running"):  # lost on the PLC: decide (give up, or declare it failed)
        assert acts("attention", origin) == {"retry": False, "cancel": True}
    # Refused before the PLC (e.g. scaled in Odoo): retry = back to the queue, re-read from Odoo first.
    assert acts("attention", "queued") == {"retry": True, "cancel": True}
    assert acts("attention", None, failed=True) == {"retry": True, "cancel": False}
    assert acts("finished") == {"retry": False, "cancel": False}
