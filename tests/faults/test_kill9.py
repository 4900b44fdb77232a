"""kill -9 of each service at seeded random moments while 12 MOs run (batch 0.5 s) and failures and manual
weighings (in identical pairs) are posted.

Odoo answers every report call late (latency fault) so a kill of odoo_sync / failure_monitor often lands
between the Odoo call and the commit that archives / marks the report; kills of mo_planner land between
store and ack, of plc_gateway between write and reply. Afterwards every guarantee of docs/architecture.md A8 holds;
a weighing whose acknowledgement nobody can know is decided from the scale's log (ScaleLogReader).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    SERVICES,
    Plan,
    ScaleLogReader,
    check_invariants,
    drive,
    restart_later,
    start_system,
    wait_drained,
)
from tests.support.system import System

MOS = 12
MULTI_SLOT_MOS = 24


@pytest.mark.parametrize("victim", SERVICES)
def test_kill9_service_at_random_moments(
    victim: str, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    rng = random.Random(seed)
    s = start_system(tmp_path, monkeypatch, mos=MOS, batch_seconds=rng.uniform(0.4, 0.8))
    systems.append(s)
    # Widen the windows: every Odoo write takes a while (the request is still processed).
    for route in (
        "/api/scada/mo/update-with-consumptions",
        "/api/scada/equipment-failure",
        "/api/scada/material-consumption",
    ):
        s.odoo("POST", "/_sim/faults", {"kind": "latency", "route": route, "method": "POST",
                                        "seconds": 0.3, "times": None})  # fmt: skip
    plan = Plan(seed, MOS, failures=4, weighings=6)
    kills: list[float] = []
    next_kill = [rng.uniform(0.5, 2.0)]
    # Half of the kills are aimed at the victim's critical window (seeded delay into it), half are random.
    window_sql = {
        "mo_planner": "SELECT 1 FROM mo_batch WHERE state IN ('finished', 'failed') AND acked_at IS NULL",
        "odoo_sync": "SELECT 1 FROM mo_batch WHERE state = 'finished'",
        "failure_monitor": "SELECT 1 FROM equipment_failure WHERE acked_at IS NULL OR reported_at IS NULL "
        "UNION ALL SELECT 1 FROM manual_weighing WHERE acked_at IS NULL OR reported_at IS NULL",
        "plc_gateway": "SELECT 1 FROM mo_batch WHERE state = 'queued' AND slot IS NOT NULL",
    }[victim]

    def step(elapsed: float) -> None:
        if elapsed < next_kill[0] or len(kills) >= 6:
            return
        if len(kills) % 2 == 1:
            if not s.sql(window_sql) and elapsed < next_kill[0] + 1.5:
                return  # wait (a while) for the window to open; a narrow one may never be seen by polling
            time.sleep(rng.uniform(0.0, 0.25))
        kills.append(round(elapsed, 2))
        restart_later(s, victim, rng)
        next_kill[0] = elapsed + rng.uniform(0.8, 2.5)

    # A gateway killed between an item's flag write and its read-back, with the identical second weighing of the
    # pair in the item by the time it is back, is a question for the person at the scale (issue 14): here
    # plc-sim's log answers it, through the real edgectl.
    scale_log = ScaleLogReader(s, every_s=1.0)
    try:
        drive(s, plan, budget_s=90, step=step, failure_every=rng.uniform(1.0, 2.5))
        s.odoo("DELETE", "/_sim/faults")
        wait_drained(s, plan, timeout=60)
    finally:
        scale_log.stop()
    summary = check_invariants(s, plan)
    print(f"seed={seed} victim={victim} kills_at={kills} scale log decisions={dict(scale_log.decided)} {summary}")
    assert len(kills) >= 3, f"seed={seed}: the run ended before enough kills ({kills})"
    assert summary["completed"] + summary["cancelled"] == MOS, f"seed={seed}: {summary}"


def test_kill9_any_service_with_three_slots_and_failed_batches(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    """Three PLC slots dosing at once, a quarter of the batches failing mid-way (cancelled in Odoo), and
    kill -9 of a seeded random service every 0.6-1.6 s."""
    rng = random.Random(seed)
    s = start_system(
        tmp_path,
        monkeypatch,
        mos=MULTI_SLOT_MOS,
        slots=3,
        batch_seconds=rng.uniform(1.0, 2.0),
        sim_args=["--op-failure-rate", "0.25", "--seed", str(seed % 10_000)],
    )
    systems.append(s)
    plan = Plan(seed, MULTI_SLOT_MOS, failures=3)
    kills: list[tuple[float, str]] = []
    next_kill = [rng.uniform(0.5, 1.5)]

    def step(elapsed: float) -> None:
        if elapsed < next_kill[0] or len(kills) >= 8:
            return
        victim = rng.choice(SERVICES)
        kills.append((round(elapsed, 2), victim))
        restart_later(s, victim, rng)
        next_kill[0] = elapsed + rng.uniform(0.6, 1.6)

    drive(s, plan, budget_s=90, step=step)
    wait_drained(s, plan, timeout=60)
    summary = check_invariants(s, plan)
    print(f"seed={seed} kills={kills} {summary}")
    slots_used = {slot for (slot,) in s.sql("SELECT DISTINCT slot FROM mo_histories WHERE slot IS NOT NULL")}
    assert slots_used == {1, 2, 3}, f"seed={seed}: batches ran only in slots {slots_used}"
    assert len(kills) >= 3, f"seed={seed}: the run ended before enough kills ({kills})"
    assert summary["completed"] + summary["cancelled"] == MULTI_SLOT_MOS, f"seed={seed}: {summary}"
    assert summary["cancelled"] > 0, f"seed={seed}: no batch failed, the cancel path was not exercised"
