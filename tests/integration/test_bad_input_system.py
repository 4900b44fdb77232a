"""Bad input against the running system: fuzzed MQTT commands to the real gateway, garbage snapshots to the
planner and failure_monitor, odd Odoo MO lists, garbage PLC memory in a running batch. Each gets a clear error
(reply / alarm / counter) and changes nothing: no PLC word, no database row."""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import wait_until
from tests.support.system import ROOT, System


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[System]:
    s = System(tmp_path, batch_seconds=0.8, extra_mos=0, odoo_args=["--seed", "none"])
    try:
        s.wait_healthy()
        yield s
    finally:  # also when the start failed: never leave its processes behind
        s.stop()


def plc_words(s: System) -> list[int]:
    words: list[int] = []
    for address, count in ((6000, 77), (7000, 77), (8000, 23)):
        words += s.plc("GET", f"/memory?address={address}&count={count}")["words"]
    return words


def counts(s: System) -> tuple[Any, ...]:
    return tuple(
        s.sql(
            "SELECT (SELECT count(*) FROM mo_batch), (SELECT count(*) FROM mo_histories), "
            "(SELECT count(*) FROM audit_event), (SELECT count(*) FROM equipment_failure)"
        )[0]
    )


def metric(s: System, service: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{s.health_ports[service]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


GARBAGE: list[bytes] = [
    b"",
    b"not json",
    b"\xff\xfe\xfd non utf-8",
    b"[1,2,3]",
    b'"just a string"',
    b"null",
    b'{"request_id": 5, "slot": 1}',
    b'{"slot": 1}',
    b'{"request_id": "x", "slot": "1"}',
    b'{"request_id": "x", "slot": 0}',
    b'{"request_id": "x", "slot": 1e308}',
    b'{"request_id": "x", "slot": 1, "unknown": true}',
    b'{"request_id": "x", "slot": 1, "address": 7000, "words": [1, 2, 3]}',
    b'{"request_id": "x", "slot": 1, "mo_id": "WH/MO/00001\'; DROP TABLE mo_batch;--"}',
    b'{"request_id": "x", "slot": 1, "mo_id": {"$ne": null}}',
    b'{"request_id": "x", "slot": 1, "nested": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"request_id": "x", "pad": "' + b"A" * 40_000 + b'"}',
    b'{"request_id": "x", "event_id": "../../etc/passwd"}',
    b'{"request_id": "x", "slot": 1, "batch": {"mo_id": "\\u0000\\u0001", "bom_name": "", '
    b'"finished_goods": "", "quantity": -1, "targets": {"silo101": "NaN"}}}',
    b'{"request_id": "x", "slot": 1, "batch": {"mo_id": "WH/MO/99999", "bom_name": "b", '
    b'"finished_goods": "f", "quantity": 1000, "targets": {"silo101": 1e9}}}',
    b'{"request_id": "x", "slot": 1, "batch": {"mo_id": "<script>alert(1)</script>", "bom_name": "b", '
    b'"finished_goods": "f", "quantity": 1000, "targets": {}}}',
    b'{"request_id": "x", "area": "dm_raw", "slot": 1}',
    b'{"request_id": "x", "slot": 1, "reply_to": "scada/other/#"}',
]


def test_fuzzed_commands_get_error_replies_and_change_no_plc_word(idle: System) -> None:
    s = idle
    before_words, before_rows = plc_words(s), counts(s)
    rng = random.Random(7)
    start = s.watch.mark()
    sent = 0
    for raw in GARBAGE:
        for name in ("write_batch", "ack_slot", "ack_failure", "arm", "read_area"):
            rid = f"fz-{uuid.uuid4().hex[:12]}"
            payload = raw.replace(b'"request_id": "x"', f'"request_id": "{rid}"'.encode())
            s.watch.publish(f"{ROOT}/cmd/{name}", payload)
            sent += 1
    for _ in range(60):  # random garbage bytes too
        s.watch.publish(
            f"{ROOT}/cmd/{rng.choice(['write_batch', 'ack_slot', 'arm'])}", rng.randbytes(rng.randint(1, 200))
        )
        sent += 1
    wait_until(
        lambda: sum(1 for _, t, b, _ in s.watch.messages[start:] if t.endswith("/reply") and b) >= sent,
        30,
        what="a reply to every fuzzed command",
    )
    replies = [b for _, t, b, _ in s.watch.messages[start:] if t.endswith("/reply") and b]
    good = [r for r in replies if r.get("ok")]
    # Only harmless diagnostics may succeed (read_area of a mapped area, arm of an already armed slot).
    assert all(r["code"] in ("read", "already_armed") for r in good), good
    bad = [r for r in replies if not r.get("ok")]
    assert all(r["code"] and r["message"] for r in bad), bad[:3]
    assert {r["code"] for r in bad} <= {"invalid_payload", "too_large", "mismatch", "not_finished", "expired"}
    assert metric(s, "plc_gateway", "gateway_commands_total", code="invalid_payload") >= len(GARBAGE)
    assert metric(s, "plc_gateway", "gateway_commands_total", code="too_large") >= 1
    assert plc_words(s) == before_words, "a fuzzed command changed PLC memory"
    time.sleep(0.5)
    assert counts(s) == before_rows
    assert s.procs["plc_gateway"].alive()


def _snapshot_like(rng: random.Random) -> Any:
    choices: list[Any] = [
        {"valid": True, "fields": None},
        {"valid": True, "empty": False, "fields": {"mo_id": 5, "status_manufacturing": "1"}},
        {"valid": "yes", "slot": 1, "fields": {"mo_id": "WH/MO/00001", "consumption": "lots"}},
        {"valid": True, "slot": 1, "fields": {"mo_id": ["WH/MO/00001"], "status_manufacturing": 1}},
        {"valid": True, "pending": True, "event_id": "abc", "fields": {"event_id": "abc"}},
        {"valid": True, "pending": True, "event_id": "ab", "fields": {"event_id": "ab", "timestamp": "yesterday"}},
        {"valid": True, "pending": True, "event_id": 1, "fields": {"event_id": 1, "equipment_code": None}},
        {"valid": True, "empty": False, "fields": {"status_read_data": 1, "event_id": "00ff"}},
        [1, 2, 3],
        "garbage",
        None,
    ]
    return rng.choice(choices)


def test_garbage_snapshots_change_no_database_row(idle: System) -> None:
    s = idle
    time.sleep(1.0)
    before = counts(s)
    rng = random.Random(11)
    for _ in range(80):
        topic = rng.choice(
            [f"{ROOT}/plc/read/1", f"{ROOT}/plc/write/1", f"{ROOT}/plc/failure", f"{ROOT}/plc/read/7"]
        )
        body = _snapshot_like(rng)
        raw = json.dumps(body).encode() if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 64))
        s.watch.publish(topic, raw)
    time.sleep(2.0)
    assert counts(s) == before, "a garbage snapshot changed the database"
    for name in ("mo_planner", "failure_monitor"):
        assert s.procs[name].alive(), f"{name} died on garbage"
    s.wait_healthy(10)


@pytest.mark.parametrize("kind", ["bad_json", "html", "not_found"])
def test_odd_odoo_mo_list_queues_nothing_and_planner_keeps_running(tmp_path: Path, kind: str) -> None:
    s = System(tmp_path, batch_seconds=0.5, extra_mos=3, odoo_args=["--seed", "none"], env={"ODOO_POLL_S": "1"})
    try:
        s.odoo("POST", "/_sim/faults", {"kind": kind, "route": "/api/scada/mo-list-detailed", "times": None})
        s.wait_healthy()
        time.sleep(4.0)
        assert s.sql("SELECT count(*) FROM mo_batch")[0][0] == 0
        assert s.plc_state()["slots"][0]["batches_started"] == 0
        assert s.procs["mo_planner"].alive()
        assert metric(s, "mo_planner", "planner_odoo_errors_total") >= 1
        s.odoo("DELETE", "/_sim/faults")
        wait_until(lambda: s.completed() == 3, 60, what="MOs flow once Odoo answers properly")
    finally:
        s.stop()


def test_garbage_in_the_read_slot_while_a_batch_runs_is_never_applied(tmp_path: Path) -> None:
    s = System(tmp_path, batch_seconds=3.0, extra_mos=1, odoo_args=["--seed", "none"])
    try:
        s.wait_healthy()
        wait_until(lambda: s.plc_state()["slots"][0]["phase"] == "running", 30, what="batch running")
        original = s.plc("GET", "/memory?address=6000&count=77")["words"]
        mo_id = s.sql("SELECT mo_id FROM mo_batch")[0][0]
        garbage = list(original)
        garbage[0] = 0x8200  # BATCH word != slot
        garbage[1] = 0x0001  # unprintable MO name
        start = s.watch.mark()
        s.plc("POST", "/words", {"address": 6000, "words": garbage[:9]})
        s.watch.wait_for(lambda t, b: t.endswith("/plc/read/1") and b.get("valid") is False, 10, since=start)
        s.watch.wait_for(lambda t, b: t.endswith("/events/batch") and b.get("event") == "alarm", 10, since=start)
        # Let the PLC finish dosing under the garbage: nothing may be stored or acked.
        wait_until(lambda: s.plc_state()["slots"][0]["phase"] == "finished", 15, what="PLC finished")
        time.sleep(1.5)
        row = s.sql("SELECT state, actual_weight_quantity_finished_goods FROM mo_batch WHERE mo_id = :m", m=mo_id)
        assert row and row[0][0] in ("written", "accepted", "running") and row[0][1] is None, row
        assert s.plc_state()["slots"][0]["batches_acked"] == 0, "a batch with garbage in its slot was acked"
        assert not s.sql("SELECT 1 FROM audit_event WHERE action = 'ack_slot'")
        assert not s.odoo_state()["failures"]
        # The plant fixes the words: the real result is stored, acked and reported once.
        s.plc("POST", "/words", {"address": 6000, "words": original[:9]})
        wait_until(lambda: s.completed() == 1, 30, what="batch completes after the memory is repaired")
        odoo_mo = next(m for m in s.odoo_state()["mos"] if m["mo_id"] == mo_id)
        final = s.plc("GET", "/memory?address=6000&count=77")["words"]
        assert final[0] == 1 and odoo_mo["qty_producing"] > 0
    finally:
        s.stop()
