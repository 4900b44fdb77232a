"""mo_planner's rules with the whole system running: duplicate, reordered and bogus MQTT snapshots are never
applied; a failed batch (status_operation = 1) is cancelled in Odoo and archived; an Odoo outage delays the
reports but loses nothing."""

from __future__ import annotations

import copy
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db.columns import ACTUAL_COLUMNS
from tests.support.messages import invalid_read_slot, read_slot
from tests.support.procs import console, wait_until
from tests.support.system import ROOT, System


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[System]:
    """A running plant with no confirmed MOs in Odoo: the database changes only because of what we inject."""
    s = System(tmp_path, batch_seconds=0.8, extra_mos=0, odoo_args=["--seed", "none"])
    try:
        s.wait_healthy()
        yield s
    finally:  # also when the start failed: never leave its processes behind
        s.stop()


def table_counts(s: System) -> tuple[Any, ...]:
    return tuple(
        s.sql(
            "SELECT (SELECT count(*) FROM mo_batch), (SELECT count(*) FROM mo_histories), "
            "(SELECT count(*) FROM audit_event), (SELECT count(*) FROM equipment_failure)"
        )[0]
    )


def test_unexpected_and_invalid_snapshots_raise_alarms_and_change_nothing(idle: System) -> None:
    time.sleep(1.0)  # let start-up writes (births) settle
    before = table_counts(idle)
    start = idle.watch.mark()
    idle.watch.publish(f"{ROOT}/plc/read/1", invalid_read_slot(1).wire())
    _, alarm = idle.watch.wait_for(
        lambda t, b: t.endswith("/events/batch") and b.get("event") == "alarm", 10, since=start
    )
    assert "invalid" in alarm["reason"]
    start = idle.watch.mark()
    unexpected = read_slot("WH/MO/77777", mfg=1, kg={"silo101": 10.0}, weight=10.0)
    idle.watch.publish(f"{ROOT}/plc/read/1", unexpected.wire())
    _, alarm = idle.watch.wait_for(
        lambda t, b: t.endswith("/events/batch") and b.get("event") == "alarm", 10, since=start
    )
    assert alarm["mo_id"] == "WH/MO/77777" and "does not expect" in alarm["reason"]
    time.sleep(1.0)
    assert table_counts(idle) == before
    acks = [b for _, t, b, _ in idle.watch.messages if t.endswith("/cmd/ack_slot")]
    assert acks == []  # never acknowledged to the PLC


def test_duplicate_and_reordered_snapshots_do_not_regress_a_batch(idle: System) -> None:
    idle.odoo("POST", "/_sim/mos", {"count": 2})
    wait_until(lambda: idle.completed() >= 1, 60, what="first batch archived")
    first = idle.sql("SELECT mo_id FROM mo_histories WHERE status='completed' ORDER BY archived_at LIMIT 1")[0][0]
    finished = [
        b
        for _, t, b, _ in idle.watch.messages
        if t == f"{ROOT}/plc/read/1"
        and b
        and (b.get("fields") or {}).get("mo_id") == first
        and b["fields"]["status_manufacturing"] == 1
    ]
    running = [
        b
        for _, t, b, _ in idle.watch.messages
        if t == f"{ROOT}/plc/read/1"
        and b
        and (b.get("fields") or {}).get("mo_id") == first
        and b["fields"]["status_manufacturing"] == 0
    ]
    assert finished and running
    history_before = idle.sql("SELECT * FROM mo_histories WHERE mo_id = :m", m=first)
    # Replay: the finished snapshot twice, then an older running one (reordered delivery).
    for body in (finished[0], finished[-1], running[0], copy.deepcopy(running[-1])):
        idle.watch.publish(f"{ROOT}/plc/read/1", body)
    wait_until(lambda: idle.completed() >= 2, 60, what="second batch archived")
    assert idle.sql("SELECT * FROM mo_histories WHERE mo_id = :m", m=first) == history_before
    assert idle.sql("SELECT count(*) FROM mo_batch WHERE mo_id = :m", m=first)[0][0] == 0
    writes = idle.sql("SELECT mo_id, count(*) FROM audit_event WHERE to_state='written' GROUP BY mo_id")
    assert all(n == 1 for _, n in writes) and len(writes) == 2
    assert idle.plc_state()["slots"][0]["violations"] == 0


def test_failed_batch_is_cancelled_in_odoo_and_archived(tmp_path: Path) -> None:
    s = System(
        tmp_path,
        batch_seconds=0.6,
        extra_mos=3,
        odoo_args=["--seed", "none"],
        sim_args=["--op-failure-rate", "1.0"],
    )
    try:
        wait_until(
            lambda: len(s.sql("SELECT 1 FROM mo_histories WHERE status='cancelled'")) >= 2,
            60,
            what="failed batches archived as cancelled",
        )
        odoo = {m["mo_id"]: m["state"] for m in s.odoo_state()["mos"]}
        for mo_id, status_operation in s.sql(
            "SELECT mo_id, status_operation FROM mo_histories WHERE status='cancelled'"
        ):
            assert odoo[mo_id] == "cancel" and status_operation is True
        assert s.completed() == 0
        # Each failure is acked after storage; archiving (after Odoo) may overtake the ack's round trip.
        wait_until(lambda: s.plc_state()["slots"][0]["batches_acked"] >= 2, 10, what="both failures acked")
    finally:
        s.stop()


def test_odoo_outage_delays_reports_but_loses_nothing(tmp_path: Path) -> None:
    s = System(tmp_path, batch_seconds=0.5, extra_mos=6, odoo_args=["--seed", "none"], env={"SYNC_SWEEP_S": "2"})
    try:
        s.wait_healthy()
        wait_until(lambda: len(s.sql("SELECT 1 FROM mo_batch WHERE state='queued'")) >= 2, 30, what="queue filled")
        # Odoo goes away: every call fails for a while (502 from the proxy, as when the worker is killed).
        s.odoo("POST", "/_sim/faults", {"kind": "http_error", "status": 502, "times": None})
        time.sleep(6)
        finished = s.sql("SELECT count(*) FROM mo_batch WHERE state = 'finished'")[0][0]
        retried = s.sql("SELECT count(*) FROM mo_batch WHERE sync_attempts > 0")[0][0]
        assert finished >= 1 and retried >= 1, "dosing must go on and reports must be pending during the outage"
        s.odoo("DELETE", "/_sim/faults")
        wait_until(lambda: s.completed() >= 4, 60, what="reports caught up after the outage")
        odoo = {m["mo_id"]: m for m in s.odoo_state()["mos"]}
        for mo_id, weight in s.sql("SELECT mo_id, actual_weight_quantity_finished_goods FROM mo_histories"):
            assert odoo[mo_id]["qty_producing"] == pytest.approx(float(weight), abs=0.005)
    finally:
        s.stop()


def test_write_reply_lost_in_a_planner_crash_is_adopted_not_rewritten(idle: System) -> None:
    """The planner dies after sending write_batch; the gateway executes it later. On restart the planner sees
    its MO on the PLC, records it as written (no second write), and the batch completes normally."""
    idle.procs["plc_gateway"].terminate()  # commands now wait in the broker for the gateway's session
    start = idle.watch.mark()
    idle.odoo("POST", "/_sim/mos", {"count": 1})
    _, cmd = idle.watch.wait_for(lambda t, b: t.endswith("/cmd/write_batch"), 30, since=start)
    idle.procs["mo_planner"].kill9()
    idle.start_service("plc_gateway")
    wait_until(lambda: idle.plc_state()["slots"][0]["batches_started"] == 1, 20, what="PLC took the batch")
    assert idle.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=cmd["batch"]["mo_id"])[0][0] == "queued"
    idle.start_service("mo_planner")
    wait_until(lambda: idle.completed() == 1, 40, what="adopted batch archived")
    written = idle.sql(
        "SELECT count(*) FROM audit_event WHERE to_state = 'written' AND mo_id = :m", m=cmd["batch"]["mo_id"]
    )[0][0]
    assert written == 1
    slot = idle.plc_state()["slots"][0]
    assert slot["batches_started"] == 1 and slot["violations"] == 0


def test_plc_reboot_puts_the_lost_batch_in_attention_and_nothing_is_redosed(tmp_path: Path) -> None:
    s = System(tmp_path, batch_seconds=60, extra_mos=3, odoo_args=["--seed", "none"])
    try:
        active = "SELECT mo_id FROM mo_batch WHERE state IN ('written','accepted','running')"
        wait_until(lambda: s.plc_state()["slots"][0]["phase"] == "running", 30, what="first batch dosing")
        # The PLC may latch a batch before the write's reply reaches the planner: wait for its bookkeeping.
        wait_until(lambda: s.sql(active), 10, what="the first batch recorded as written")
        [(lost_mo,)] = s.sql(active)
        s.plc("POST", "/reboot", {"armed": False})  # memory cleared, W = 0: a fresh PLC
        wait_until(
            lambda: s.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=lost_mo)[0][0] == "attention",
            30,
            what="lost batch in attention",
        )
        time.sleep(1.0)
        assert s.plc_state()["slots"][0]["batches_started"] == 1  # nothing written to the unarmed PLC since
        # The operator arms the slot: the next MO is written, the lost one is not re-dosed.
        reply = s.watch.request(f"{ROOT}/cmd/arm", {"slot": 1})
        assert reply["ok"], reply
        wait_until(lambda: s.plc_state()["slots"][0]["batches_started"] == 2, 20, what="next batch after arm")
        wait_until(lambda: s.sql(active), 10, what="the next batch recorded as written")
        assert s.sql(active)[0][0] != lost_mo
        assert s.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=lost_mo)[0][0] == "attention"
        # The operator gives up on the lost batch: archived as cancelled, never re-dosed.
        conf = tmp_path / "edgectl.env"
        conf.write_text(
            f"MQTT_URL={s.env['MQTT_URL']}\nDATABASE_URL={s.env['DATABASE_URL']}\nMQTT_TOPIC_ROOT={ROOT}\n"
        )
        out = subprocess.run(
            [console("edgectl"), "cancel", lost_mo],
            env={**os.environ, "EDGECTL_CONFIG": str(conf)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert s.sql("SELECT status FROM mo_histories WHERE mo_id = :m", m=lost_mo) == [("cancelled",)]
    finally:
        s.stop()


def test_a_plc_that_writes_the_weight_after_the_status_gets_its_weight_stored(tmp_path: Path) -> None:
    """Issue 10.10: the program raises status_manufacturing 400 ms (several polls) before it writes the
    finished weight. Final values are taken only with the weight: 0 kg is never stored nor acknowledged."""
    s = System(
        tmp_path, batch_seconds=0.5, extra_mos=2, odoo_args=["--seed", "none"], sim_args=["--weight-lag-ms", "400"]
    )
    try:
        wait_until(lambda: s.completed() == 2, 60, what="both batches archived")
        actual_cols = " + ".join(f"coalesce({c}, 0)" for c in ACTUAL_COLUMNS)
        for weight, dosed in s.sql(
            f"SELECT actual_weight_quantity_finished_goods, {actual_cols} FROM mo_histories"
        ):
            assert weight is not None and weight > 0 and abs(float(weight) - float(dosed)) < 0.02, (weight, dosed)
    finally:
        s.stop()


def test_w1_while_the_read_slot_still_shows_the_previous_acknowledged_batch(tmp_path: Path) -> None:
    """The live program's likely window: on latching it sets W = 1 before it clears the READ slot, so for a
    few polls the slot reads W = 1 (taken) with the previous, acknowledged batch still in READ. Nothing may
    take that for a free slot (no second write) nor for the new batch's result."""
    s = System(
        tmp_path,
        batch_seconds=0.5,
        extra_mos=4,
        odoo_args=["--seed", "none"],
        sim_args=["--mirror-lag-ms", "400"],
    )
    try:
        wait_until(lambda: s.completed() == 4, 60, what="four batches archived")
        slot = s.plc_state()["slots"][0]
        assert slot["violations"] == 0 and slot["batches_started"] == 4 and slot["invalid_commands"] == 0
        assert (
            s.sql("SELECT count(*) FROM audit_event WHERE action = 'transition' AND to_state = 'written'")[0][0]
            == 4
        )
        assert "violation" not in s.procs["plc-sim"].log().lower()
    finally:
        s.stop()


def test_every_state_timestamp_is_the_time_of_its_transition(tmp_path: Path) -> None:
    """Issue 11.4: the state machine (repo.move) owns each state's timestamp and update_odoo; no service
    stamps them a second time, so the row's times are exactly its audit trail's."""
    s = System(tmp_path, batch_seconds=0.4, extra_mos=3, odoo_args=["--seed", "none"])
    try:
        wait_until(lambda: s.completed() == 3, 60, what="three batches archived")
        columns = {
            "written": "written_at",
            "accepted": "accepted_at",
            "running": "started_at",
            "reported": "reported_at",
        }
        for state, column in columns.items():
            rows = s.sql(
                f"SELECT h.mo_id, h.{column}, a.at FROM mo_histories h JOIN audit_event a ON a.mo_id = h.mo_id "
                "AND a.action = 'transition' AND a.to_state = :st",
                st=state,
            )
            # written and reported happen to every batch; accepted / running may be skipped (a PLC that latches
            # and doses between two polls goes straight to running or finished).
            assert rows or state in ("accepted", "running"), state
            for mo_id, stamped, transition_at in rows:
                assert stamped == transition_at, (mo_id, state, stamped, transition_at)
        assert {u for (u,) in s.sql("SELECT update_odoo FROM mo_histories")} == {True}
    finally:
        s.stop()
