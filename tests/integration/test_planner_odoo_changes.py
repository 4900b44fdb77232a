"""An MO changes in Odoo after mo_planner queued it (issue 10.3, 10.4, 10.11), against the real processes:
the PLC doses what Odoo holds when the batch is written, never an old copy, never a scaled recipe with 1x
targets, never a cancelled MO; and an MO with nothing to dose is looked at again once it is fixed in Odoo."""

from __future__ import annotations

from pathlib import Path

from shared.db.columns import target_column
from shared.plc.memory_map import load_memory_map
from tests.support.procs import wait_until
from tests.support.system import ROOT, System

CODES = load_memory_map().equipment_codes


def _targets(s: System, table: str, mo_id: str) -> dict[str, float]:
    cols = ", ".join(target_column(c) for c in CODES)
    [row] = s.sql(f"SELECT {cols} FROM {table} WHERE mo_id = :m", m=mo_id)
    return {c: float(v) for c, v in zip(CODES, row, strict=True) if v}


def test_an_mo_changed_in_odoo_after_queueing_is_dosed_as_odoo_holds_it_or_not_at_all(tmp_path: Path) -> None:
    s = System(tmp_path, batch_seconds=2.0, extra_mos=5, odoo_args=["--seed", "none"], env={"LOOKAHEAD": "3"})
    try:
        # The queue holds look-ahead + slots (4) and refills as soon as the first batch is written: take the
        # first three in line from one reading, once the first batch has left the queue.
        queued = "SELECT mo_id FROM mo_batch WHERE state = 'queued' ORDER BY queued_at, id"
        in_line: list[str] = []

        def three_behind_the_first_batch() -> bool:
            if not s.sql("SELECT 1 FROM mo_batch WHERE written_at IS NOT NULL"):
                return False
            in_line[:] = [r.mo_id for r in s.sql(queued)]
            return len(in_line) >= 3

        wait_until(three_behind_the_first_batch, 30, what="three MOs queued behind the first batch")
        scaled, edited, cancelled = in_line[:3]
        before = _targets(s, "mo_batch", edited)
        code = next(iter(before))
        new_kg = round(before[code] + 3.0, 2)  # the sum stays within the BoM tolerance: dosable
        start = s.watch.mark()
        # A planner in Odoo doubles one order (to_consume stays the 1x BoM), edits a line of another and
        # cancels a third, all after mo_planner queued them.
        s.odoo("POST", "/_sim/mo-edit", {"mo_id": scaled, "quantity": 2000})
        s.odoo("POST", "/_sim/mo-edit", {"mo_id": edited, "line_qty": {code: new_kg}})
        s.odoo("POST", "/_sim/mo-state", {"mo_id": cancelled, "state": "cancel"})

        wait_until(
            lambda: s.sql("SELECT 1 FROM mo_histories WHERE mo_id = :m AND status = 'completed'", m=edited),
            60,
            what="the edited MO dosed and archived",
        )
        assert _targets(s, "mo_histories", edited) == {**before, code: new_kg}
        requeued = s.sql("SELECT detail FROM audit_event WHERE mo_id = :m AND action = 'requeued'", m=edited)
        assert len(requeued) == 1 and requeued[0].detail["after"]["targets"][code] == new_kg

        row = s.sql(
            "SELECT state, attention_from, last_error, written_at FROM mo_batch WHERE mo_id = :m", m=scaled
        )
        assert row and row[0].state == "attention" and row[0].attention_from == "queued"
        assert "MO quantity is 2000 kg" in row[0].last_error and row[0].written_at is None
        s.watch.wait_for(
            lambda t, b: (
                t == f"{ROOT}/events/batch" and b.get("event") == "attention" and b.get("mo_id") == scaled
            ),
            5,
            since=start,
        )

        # Next in line once the edited batch left the slot: read from Odoo before writing, found cancelled.
        archived = "SELECT 1 FROM mo_histories WHERE mo_id = :m"
        wait_until(lambda: s.sql(archived, m=cancelled), 20, what="the cancelled MO archived")
        gone = s.sql("SELECT status, written_at, note FROM mo_histories WHERE mo_id = :m", m=cancelled)
        assert len(gone) == 1 and gone[0].status == "cancelled" and gone[0].written_at is None
        assert "cancel in Odoo" in gone[0].note
        # Neither the scaled nor the cancelled MO ever reached a PLC slot.
        written = {
            r.mo_id
            for r in s.sql(
                "SELECT DISTINCT mo_id FROM audit_event WHERE action = 'transition' AND to_state = 'written'"
            )
        }
        assert scaled not in written and cancelled not in written and edited in written
    finally:
        s.stop()


def test_an_mo_with_nothing_to_dose_is_queued_once_fixed_in_odoo_without_a_restart(tmp_path: Path) -> None:
    s = System(tmp_path, batch_seconds=0.5, extra_mos=0, odoo_args=["--seed", "none"])
    try:
        s.procs["mo_planner"].terminate()  # the MO is made and broken in Odoo before the planner sees it
        [mo_id] = s.odoo("POST", "/_sim/mos", {"count": 1, "rng_seed": 3})["created"]
        hold = {code: f"HOLD-{code}" for code in CODES}  # every line on an equipment the PLC does not know
        s.odoo("POST", "/_sim/mo-edit", {"mo_id": mo_id, "line_equipment": hold})
        start = s.watch.mark()
        s.start_service("mo_planner")
        s.watch.wait_for(
            lambda t, b: t == f"{ROOT}/events/batch" and b.get("event") == "alarm" and b.get("mo_id") == mo_id,
            20,
            since=start,
        )
        assert s.sql("SELECT 1 FROM mo_batch WHERE mo_id = :m", m=mo_id) == []
        s.odoo("POST", "/_sim/mo-edit", {"mo_id": mo_id, "line_equipment": {v: k for k, v in hold.items()}})
        wait_until(
            lambda: s.sql("SELECT 1 FROM mo_histories WHERE mo_id = :m AND status = 'completed'", m=mo_id),
            30,
            what="the fixed MO queued, dosed and archived",
        )
    finally:
        s.stop()
