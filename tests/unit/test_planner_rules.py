"""mo_planner's pure decisions: slot freedom and the meaning of READ/WRITE snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from services.mo_planner.rules import (
    WAITING_FOR_WEIGHT,
    Action,
    Expected,
    QueuedValues,
    Recheck,
    RecheckDecision,
    on_read_snapshot,
    on_write_snapshot,
    recheck_queued,
    slot_free,
)
from shared.mqtt.snapshots import ReadSlotSnapshot, WriteSlotSnapshot
from shared.odoo.mapping import Batch
from tests.support.messages import MAP, invalid_read_slot, read_slot, write_slot


def read_msg(
    mo: str = "WH/MO/00011",
    slot: int = 1,
    r: int = 0,
    mfg: int = 0,
    op: int = 0,
    kg: float = 0.0,
    weight: float | None = None,
    valid: bool = True,
    empty: bool = False,
) -> ReadSlotSnapshot:
    if not valid:
        return invalid_read_slot(slot)
    if empty:
        return read_slot(None, slot, r=r)
    # A finished batch carries its weight unless a test says otherwise.
    weight = weight if weight is not None else (kg if mfg or op else 0.0)
    return read_slot(mo, slot, r=r, mfg=mfg, op=op, kg={"silo101": kg}, weight=weight)


def write_msg(mo: str = "WH/MO/00011", slot: int = 1, w: int = 1, empty: bool = False) -> WriteSlotSnapshot:
    return write_slot(None if empty else mo, slot, w=w)


def actuals(kg: float) -> dict[str, float]:
    """What the database holds for a row: every equipment code, silo101 dosed."""
    return {code: 0.0 for code in MAP.equipment_codes} | {"silo101": kg}


FP = "0123456789abcdef"  # the fingerprint of the result in the snapshot under test
OTHER_FP = "fedcba9876543210"


def row(
    state: str,
    slot: int | None = 1,
    kg: float = 0.0,
    fingerprint: str | None = FP,
    attention_from: str | None = None,
) -> Expected:
    return Expected(
        "WH/MO/00011", slot, state, actuals(kg), None, fingerprint=fingerprint, attention_from=attention_from
    )


class TestSlotFree:
    def test_fresh_armed_slot_is_free(self) -> None:
        assert slot_free(write_msg(empty=True), read_msg(empty=True), occupied_in_db=False)[0]

    @pytest.mark.parametrize(
        ("write", "read", "occupied", "why"),
        [
            (write_msg(w=0), read_msg(empty=True), False, "W=0"),
            (write_msg(), read_msg(r=0, mfg=1), False, "not acknowledged"),
            (write_msg(), read_msg(r=1), True, "has not ended"),
            (None, read_msg(r=1), False, "no valid WRITE"),
            (write_msg(), read_msg(valid=False), False, "no valid READ"),
            (write_msg(), None, False, "no valid READ"),
        ],
    )
    def test_busy_cases(self, write: Any, read: Any, occupied: bool, why: str) -> None:
        free, reason = slot_free(write, read, occupied_in_db=occupied)
        assert not free and why in reason

    def test_acknowledged_batch_frees_the_slot(self) -> None:
        assert slot_free(write_msg(), read_msg(r=1, mfg=1), occupied_in_db=False)[0]

    def test_ack_reply_frees_the_slot_before_the_next_poll(self) -> None:
        read = read_msg(r=0, mfg=1)
        assert not slot_free(write_msg(), read, occupied_in_db=False)[0]
        assert slot_free(write_msg(), read, occupied_in_db=False, acked_mo="WH/MO/00011")[0]
        assert not slot_free(write_msg(), read, occupied_in_db=False, acked_mo="WH/MO/9")[0]


class TestReadSnapshot:
    def test_invalid_snapshot_alarms(self) -> None:
        assert on_read_snapshot(read_msg(valid=False), row("running"), fingerprint=FP).action is Action.ALARM

    def test_unknown_mo_alarms_and_is_never_applied(self) -> None:
        d = on_read_snapshot(read_msg(mo="WH/MO/00099", mfg=1), None, fingerprint=FP)
        assert d.action is Action.ALARM and "does not expect" in d.reason

    def test_mo_in_another_slot_alarms(self) -> None:
        assert on_read_snapshot(read_msg(slot=2), row("running", slot=1), fingerprint=FP).action is Action.ALARM

    def test_archived_mo_left_in_the_slot_is_quiet_or_reacked(self) -> None:
        def seen(r: int, stored: str | None) -> Action:
            msg = read_msg(r=r, mfg=1)
            archived = () if stored is None else (stored,)
            return on_read_snapshot(
                msg, None, archived=True, archived_fingerprints=archived, fingerprint=FP
            ).action

        assert seen(1, FP) is Action.IGNORE
        assert seen(0, FP) is Action.ACK
        assert seen(0, OTHER_FP) is Action.ALARM  # another result than the archived one: never acked
        assert seen(0, None) is Action.ALARM  # archived without a result (given up on): an operator decides

    @pytest.mark.parametrize("state", ["written", "accepted"])
    def test_dosing_start_moves_to_running(self, state: str) -> None:
        assert on_read_snapshot(read_msg(kg=1.5), row(state), fingerprint=FP).action is Action.RUNNING

    def test_changed_actuals_update_running_batch(self) -> None:
        assert on_read_snapshot(read_msg(kg=2.0), row("running", kg=1.0), fingerprint=FP).action is Action.RUNNING
        assert on_read_snapshot(read_msg(kg=1.0), row("running", kg=1.0), fingerprint=FP).action is Action.IGNORE

    def test_finish_and_fail(self) -> None:
        assert on_read_snapshot(read_msg(mfg=1, kg=5.0), row("running"), fingerprint=FP).action is Action.FINISH
        assert on_read_snapshot(read_msg(op=1), row("running"), fingerprint=FP).action is Action.FAIL
        assert on_read_snapshot(read_msg(op=1, mfg=1), row("accepted"), fingerprint=FP).action is Action.FAIL

    def test_finished_without_its_weight_is_not_final_yet(self) -> None:
        """Issue 10.10: a program may raise status_manufacturing a scan before it writes the weight; storing
        (and acking) that snapshot would freeze 0 kg for good. A failure may end with 0 kg: it is final."""
        d = on_read_snapshot(read_msg(mfg=1, kg=5.0, weight=0.0), row("running"), fingerprint=FP)
        assert d.action is Action.RUNNING and d.reason == WAITING_FOR_WEIGHT
        assert on_read_snapshot(read_msg(mfg=1, kg=5.0, weight=5.0), row("running"), fingerprint=FP).action is (
            Action.FINISH
        )
        assert on_read_snapshot(read_msg(op=1, weight=0.0), row("running"), fingerprint=FP).action is Action.FAIL

    @pytest.mark.parametrize("state", ["finished", "failed", "reported", "attention"])
    def test_ended_batches_are_only_acknowledged(self, state: str) -> None:
        """The seed's rule: a finished batch is never updated again."""
        assert on_read_snapshot(read_msg(mfg=1, kg=9.0), row(state), fingerprint=FP).action is Action.ACK
        assert on_read_snapshot(read_msg(mfg=1, r=1), row(state), fingerprint=FP).action is Action.IGNORE

    @pytest.mark.parametrize("state", ["finished", "failed", "reported", "attention", "cancelled"])
    def test_only_the_stored_result_is_acknowledged(self, state: str) -> None:
        """Issue 10.2: R = 1 only for exactly what the database holds."""
        other = on_read_snapshot(read_msg(mfg=1), row(state), fingerprint=OTHER_FP)
        assert other.action is Action.ALARM and "another result" in other.reason
        never = on_read_snapshot(read_msg(mfg=1), row(state, fingerprint=None), fingerprint=FP)
        assert never.action is Action.ALARM and "never stored" in never.reason

    @pytest.mark.parametrize("origin", ["written", "accepted", "running"])
    def test_a_batch_held_as_lost_that_the_plc_finished_is_stored_not_acked(self, origin: str) -> None:
        """Issue 10.2: a link outage made the batch look lost; its result is stored, never just acked."""
        lost = row("attention", fingerprint=None, attention_from=origin)
        d = on_read_snapshot(read_msg(mfg=1, kg=9.0), lost, fingerprint=FP)
        assert d.action is Action.FINISH and d.recover
        d = on_read_snapshot(read_msg(op=1), lost, fingerprint=FP)
        assert d.action is Action.FAIL and d.recover
        # Refused at queueing (never on the PLC): not a lost batch, nothing to recover.
        refused = row("attention", fingerprint=None, attention_from="queued")
        assert on_read_snapshot(read_msg(mfg=1), refused, fingerprint=FP).action is Action.ALARM

    def test_queued_row_seen_in_plc_alarms(self) -> None:
        assert on_read_snapshot(read_msg(), row("queued"), fingerprint=FP).action is Action.ALARM


class TestWriteSnapshot:
    def test_flag_set_after_write_means_accepted(self) -> None:
        assert on_write_snapshot(write_msg(w=1), row("written")).action is Action.ACCEPTED
        assert on_write_snapshot(write_msg(w=0), row("written")).action is Action.IGNORE
        assert on_write_snapshot(write_msg(w=1), row("running")).action is Action.IGNORE
        assert on_write_snapshot(write_msg(w=1, slot=2), row("written")).action is Action.IGNORE


class TestLostWriteReply:
    """A crash or a lost reply after write_batch: the PLC showing the MO proves the write landed."""

    def queued(self, sent: bool, slot: int | None = 1) -> Expected:
        return Expected("WH/MO/00011", slot, "queued", actuals(0.0), None, request_sent=sent)

    def test_plc_shows_a_queued_row_that_was_sent(self) -> None:
        d = on_read_snapshot(read_msg(kg=3.0), self.queued(True), fingerprint=FP)
        assert d.action is Action.RUNNING and d.adopt
        d = on_read_snapshot(read_msg(mfg=1, kg=5.0), self.queued(True), fingerprint=FP)
        assert d.action is Action.FINISH and d.adopt
        d = on_write_snapshot(write_msg(w=1), self.queued(True))
        assert d.action is Action.ACCEPTED and d.adopt

    def test_never_sent_or_other_slot_is_an_alarm(self) -> None:
        assert on_read_snapshot(read_msg(), self.queued(False), fingerprint=FP).action is Action.ALARM
        assert on_read_snapshot(read_msg(slot=2), self.queued(True, slot=1), fingerprint=FP).action is Action.ALARM
        assert on_write_snapshot(write_msg(w=1), self.queued(False)).action is Action.IGNORE
        assert not on_read_snapshot(read_msg(kg=1.5), row("written"), fingerprint=FP).adopt


# ------------------------------------------------------------------ a queued MO against Odoo's current MO

QUEUED = QueuedValues(1000.0, "[1] FEED", "[1] FEED", {"silo101": 600.0, "silo102": 400.0})


def _fresh(
    quantity: float = 1000.0, targets: dict[str, float] | None = None, problems: list[str] | None = None
) -> Batch:
    return Batch(
        mo_id="WH/MO/00011",
        bom_name="[1] FEED",
        finished_goods="[1] FEED",
        quantity=quantity,
        targets=targets if targets is not None else {"silo101": 600.0, "silo102": 400.0},
        problems=problems or [],
    )


@pytest.mark.parametrize("state", ["cancel", "done"])
def test_an_mo_closed_in_odoo_is_never_written(state: str) -> None:
    assert recheck_queued(QUEUED, state, _fresh()).verdict is Recheck.CANCEL


def test_an_unchanged_mo_is_written_as_queued() -> None:
    assert recheck_queued(QUEUED, "confirmed", _fresh()).verdict is Recheck.SAME
    # Stored kg are rounded to 0.01: Odoo's 600.004 is the same target.
    assert recheck_queued(QUEUED, "confirmed", _fresh(targets={"silo101": 600.004, "silo102": 400.0})).verdict is (
        Recheck.SAME
    )


def test_an_edited_mo_is_requeued_with_odoos_values() -> None:
    got = recheck_queued(QUEUED, "confirmed", _fresh(targets={"silo101": 603.0, "silo102": 400.0}))
    assert got.verdict is Recheck.UPDATE and got.values is not None and got.values.targets["silo101"] == 603.0


def test_an_mo_that_no_longer_adds_up_goes_to_attention() -> None:
    got = recheck_queued(QUEUED, "confirmed", _fresh(quantity=2000.0, problems=["scaled"]))
    assert got == RecheckDecision(Recheck.ATTENTION, "scaled")
    assert recheck_queued(QUEUED, "confirmed", _fresh(targets={})).verdict is Recheck.ATTENTION
