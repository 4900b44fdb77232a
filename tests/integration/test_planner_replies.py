"""What mo_planner does with the gateway's replies (issue 10.8, 10.9), against the real processes: an
ambiguous write reply keeps the proof that the write was sent, and a reply that does not answer the command it
names is never applied."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import wait_until
from tests.support.system import ROOT, System


def test_a_write_that_landed_while_the_plc_stopped_answering_is_adopted_and_completed(tmp_path: Path) -> None:
    """The write lands, its reply is lost and the PLC stops answering before the gateway can read the slot
    back: the gateway answers plc_unreachable. The batch is on the PLC: the planner must keep the request id
    (the proof that it was sent), adopt the batch when the PLC shows it and see it through to Odoo. Clearing
    the id made the planner treat its own batch as unknown (alarm, never stored, slot blocked)."""
    s = System(tmp_path, batch_seconds=1.0, extra_mos=2, odoo_args=["--seed", "none"], env={"LOOKAHEAD": "0"})
    try:
        s.plc("POST", "/faults", {"drop_write_reply": 1.0})
        wait_until(lambda: s.plc_state()["slots"][0]["batches_started"] >= 1, 30, what="first write landed")
        s.plc("POST", "/faults", {"drop": 1.0})  # before the gateway's read-back: it gets no answer at all
        [(mo_id, sent_id)] = s.sql(
            "SELECT mo_id, write_request_id FROM mo_batch WHERE write_request_id IS NOT NULL"
        )
        _, reply = s.watch.wait_for(
            lambda t, b: t.startswith(f"{ROOT}/reply/mo_planner") and b.get("command") == "write_batch",
            15,
        )
        assert reply["code"] == "plc_unreachable", reply
        time.sleep(0.5)
        row = s.sql("SELECT state, write_request_id FROM mo_batch WHERE mo_id = :m", m=mo_id)[0]
        assert row.state == "queued" and row.write_request_id == sent_id, "the proof of the write is kept"
        s.plc("POST", "/faults", {"drop": 0.0, "drop_write_reply": 0.0})
        wait_until(
            lambda: s.sql("SELECT 1 FROM mo_histories WHERE mo_id = :m AND status = 'completed'", m=mo_id),
            30,
            what="the adopted batch stored, acknowledged and reported",
        )
        assert s.plc_state()["slots"][0]["violations"] == 0
        states = [
            r.to_state
            for r in s.sql(
                "SELECT to_state FROM audit_event WHERE mo_id = :m AND action = 'transition' ORDER BY id", m=mo_id
            )
        ]
        assert states[0] == "written" and "finished" in states
        # Every write_batch for this MO was the one request: resent, never replaced by a second write.
        sent = {
            b["request_id"]
            for _, t, b, _ in s.watch.messages
            if t == f"{ROOT}/cmd/write_batch" and b and b.get("batch", {}).get("mo_id") == mo_id
        }
        assert sent == {sent_id}
    finally:
        s.stop()


def test_a_reply_that_names_another_command_is_never_applied(tmp_path: Path) -> None:
    """Anyone who can read a request id could steer another reply onto the planner's reply topic: a reply is
    applied only when it echoes the command, slot and MO it answers."""
    s = System(
        tmp_path, batch_seconds=0.5, extra_mos=1, odoo_args=["--seed", "none"], sim_args=["--delay-ms", "300"]
    )
    try:
        _, cmd = s.watch.wait_for(lambda t, b: t == f"{ROOT}/cmd/ack_slot", 60)
        forged = {
            "request_id": cmd["request_id"],
            "command": "read_area",
            "args": {"area": "read_slot", "slot": cmd["slot"]},
            "ok": True,
            "code": "forged",
            "message": "",
        }
        s.watch.publish(cmd["reply_to"], forged)
        wait_until(
            lambda: s.sql("SELECT 1 FROM mo_histories WHERE mo_id = :m AND status = 'completed'", m=cmd["mo_id"]),
            30,
            what="the batch completed on the real reply",
        )
        acks = "SELECT detail FROM audit_event WHERE action = 'ack_slot'"
        wait_until(lambda: s.sql(acks), 15, what="the gateway's real ack reply applied")
        codes = [r.detail.get("code") for r in s.sql(acks)]
        assert "forged" not in codes and "acked" in codes, codes
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("command", "altered"),
    [
        ("ack_slot", lambda cmd: {"fingerprint": "0" * 16 if cmd["fingerprint"] != "0" * 16 else "1" * 16}),
        ("write_batch", lambda cmd: {"batch": {**cmd["batch"], "quantity": cmd["batch"]["quantity"] + 1}}),
    ],
    ids=["ack_slot-other-fingerprint", "write_batch-other-quantity"],
)
def test_a_reply_that_echoes_other_arguments_of_the_same_slot_and_mo_is_never_applied(
    tmp_path: Path, command: str, altered: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Issue 10.9: every argument of the command is checked, not only its slot and MO: a reply to an ack of
    another result of that slot (another fingerprint) or a write of other values must not be applied."""
    s = System(
        tmp_path, batch_seconds=0.5, extra_mos=1, odoo_args=["--seed", "none"], sim_args=["--delay-ms", "300"]
    )
    try:
        _, cmd = s.watch.wait_for(lambda t, b: t == f"{ROOT}/cmd/{command}", 60)
        args = {k: v for k, v in cmd.items() if k not in ("request_id", "reply_to", "expires_at")}
        forged = {
            "request_id": cmd["request_id"],
            "command": command,
            "args": {**args, **altered(cmd)},
            "ok": True,
            "code": "forged",
            "message": "",
        }
        s.watch.publish(cmd["reply_to"], forged)  # first: the gateway answers after 300 ms of PLC latency
        mo_id = cmd["mo_id"] if command == "ack_slot" else cmd["batch"]["mo_id"]
        wait_until(
            lambda: s.sql("SELECT 1 FROM mo_histories WHERE mo_id = :m AND status = 'completed'", m=mo_id),
            30,
            what="the batch completed on the real replies",
        )
        details = [r.detail for r in s.sql("SELECT detail FROM audit_event WHERE mo_id = :m", m=mo_id)]
        assert not [d for d in details if "forged" in str(d)], details
    finally:
        s.stop()
