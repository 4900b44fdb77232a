"""Soak: N MOs through the whole system with three slots and every fault of the suite mixed at random.

CI runs a short soak (SOAK_MOS, default 18) with MARK_DONE off and on; `./scripts/soak` runs the long one
(1,000 MOs by default) and prints the invariant table. Faults, chosen by the seeded plan every 1-3 s:
kill -9 of any service, a FINS noise burst (loss, lost replies incl. flag-write replies, duplicates, wrong
SIDs), a PLC link outage longer than every detection timeout (12 s), Odoo down, a broker restart, and Odoo
edits after queueing (a queued MO cancelled, one edited, one scaled to twice its BoM). A PLC-side failure
event is posted every few seconds. Replay a run with FAULT_SEED.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.db.columns import target_column
from shared.plc.memory_map import load_memory_map
from tests.faults.conftest import (
    SERVICES,
    Plan,
    check_invariants,
    drive,
    restart_later,
    start_system,
    wait_drained,
)
from tests.support.system import System

CODES = load_memory_map().equipment_codes
FAULTS = ("kill9", "fins_noise", "plc_outage", "odoo_down", "broker_restart", "odoo_edit")


def _queued_unsent(s: System) -> list[str]:
    return [
        r.mo_id for r in s.sql("SELECT mo_id FROM mo_batch WHERE state = 'queued' AND write_request_id IS NULL")
    ]


class Chaos:
    def __init__(self, s: System, rng: random.Random, mos: int) -> None:
        self.s, self.rng, self.mos = s, rng, mos
        self.counts: Counter[str] = Counter()
        self.cancelled: set[str] = set()
        self.scaled: set[str] = set()
        self.next_at = rng.uniform(1.0, 3.0)
        self.until: dict[str, float] = {}  # fault -> elapsed time at which it is cleared
        # A 12 s outage costs time: at most one per 150 MOs (and one in any run).
        self.outages_left = max(1, mos // 150)

    def step(self, elapsed: float) -> None:
        for fault, end in list(self.until.items()):
            if elapsed >= end:
                self._clear(fault)
                del self.until[fault]
        if elapsed < self.next_at:
            return
        self.next_at = elapsed + self.rng.uniform(1.0, 3.0)
        fault = self.rng.choice(FAULTS)
        if fault in self.until or (
            fault == "plc_outage" and (self.outages_left == 0 or "fins_noise" in self.until)
        ):
            return
        if fault == "fins_noise" and "plc_outage" in self.until:
            return
        self.counts[fault] += 1
        if fault == "kill9":
            restart_later(self.s, self.rng.choice(SERVICES), self.rng)
        elif fault == "fins_noise":
            self.s.plc(
                "POST",
                "/faults",
                {"drop": 0.03, "drop_reply": 0.03, "drop_write_reply": 0.08, "duplicate": 0.05, "wrong_sid": 0.03},
            )
            self.until[fault] = elapsed + self.rng.uniform(2.0, 5.0)
        elif fault == "plc_outage":
            self.outages_left -= 1
            self.s.plc("POST", "/faults", {"drop": 1.0})
            self.until[fault] = elapsed + 12.0
        elif fault == "odoo_down":
            self.s.odoo("POST", "/_sim/faults", {"kind": "http_error", "status": 502, "times": None})
            self.until[fault] = elapsed + self.rng.uniform(1.0, 4.0)
        elif fault == "broker_restart":
            self.s.broker.stop()
            time.sleep(self.rng.uniform(0.2, 1.5))
            self.s.broker.restart()
        else:
            self._edit_in_odoo()

    def _edit_in_odoo(self) -> None:
        queued = [m for m in _queued_unsent(self.s) if m not in self.cancelled | self.scaled]
        if not queued:
            self.counts["odoo:nothing queued"] += 1
            return
        mo_id = self.rng.choice(queued)
        kind = self.rng.choice(("cancel", "edit", "scale"))
        self.counts[f"odoo:{kind}"] += 1
        if kind == "cancel":
            self.cancelled.add(mo_id)
            self.s.odoo("POST", "/_sim/mo-state", {"mo_id": mo_id, "state": "cancel"})
        elif kind == "scale":
            self.scaled.add(mo_id)
            self.s.odoo("POST", "/_sim/mo-edit", {"mo_id": mo_id, "quantity": 2000})
        else:
            cols = ", ".join(target_column(c) for c in CODES)
            row = self.s.sql(f"SELECT {cols} FROM mo_batch WHERE mo_id = :m", m=mo_id)
            targets = {c: float(v) for c, v in zip(CODES, row[0], strict=True) if v} if row else {}
            if targets:
                code = self.rng.choice(sorted(targets))
                self.s.odoo("POST", "/_sim/mo-edit", {"mo_id": mo_id, "line_qty": {code: targets[code] + 2.0}})

    def _clear(self, fault: str) -> None:
        if fault in ("fins_noise", "plc_outage"):
            self.s.plc(
                "POST",
                "/faults",
                {"drop": 0.0, "drop_reply": 0.0, "drop_write_reply": 0.0, "duplicate": 0.0, "wrong_sid": 0.0},
            )
        elif fault == "odoo_down":
            self.s.odoo("DELETE", "/_sim/faults")

    def clear_all(self) -> None:
        for fault in list(self.until):
            self._clear(fault)
        self.until.clear()


def _table(summary: dict[str, Any], s: System, plan: Plan, chaos: Chaos, mark_done: bool) -> str:
    hist = s.sql("SELECT status, count(*) FROM mo_histories GROUP BY status")
    by_status = dict(hist)
    archived_twice = s.sql(
        "SELECT count(*) FROM (SELECT mo_id FROM mo_histories GROUP BY mo_id HAVING count(*) > 1) d"
    )
    failures = s.sql(
        "SELECT count(*), count(acked_at), count(reported_at), count(attention_reason) FROM equipment_failure"
    )[0]
    plc = s.plc_state()
    lines = [
        f"soak seed={plan.seed} mos={plan.mos} slots=3 mark_done={mark_done}",
        f"faults injected: {dict(sorted(chaos.counts.items()))}",
        "| invariant | value |",
        "|---|---|",
        f"| MOs archived completed | {by_status.get('completed', 0)} |",
        f"| MOs archived cancelled (PLC failed it / cancelled in Odoo) | {by_status.get('cancelled', 0)} |",
        f"| MOs in attention (scaled {len(chaos.scaled)} / cancelled {len(chaos.cancelled)} in Odoo) | "
        f"{len(summary['attention'])} |",
        f"| MOs archived twice | {archived_twice[0][0]} |",
        "| MOs lost (PLC ended, no trace) | 0 |",
        "| completed values equal to what Odoo holds | all |",
        f"| PLC slot violations | {sum(sl['violations'] for sl in plc['slots'])} |",
        "| batches dosed more often than queued | 0 |",
        f"| acks without storage (batches + failure events) | {summary['acks_without_storage']} |",
        f"| failure events posted by the PLC / stored / acked / reported / parked | {plc['failures']['posted']} / "
        f"{failures[0]} / {failures[1]} / {failures[2]} / {failures[3]} |",
    ]
    return "\n".join(lines)


@pytest.mark.parametrize("mark_done", [False, True], ids=["mark_done_off", "mark_done_on"])
def test_soak(
    mark_done: bool, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    mos = int(os.environ.get("SOAK_MOS", "18"))
    rng = random.Random(seed)
    s = start_system(
        tmp_path,
        monkeypatch,
        mos=mos,
        slots=3,
        batch_seconds=rng.uniform(0.8, 1.5),
        sim_args=["--op-failure-rate", "0.1", "--seed", str(seed % 10_000)],
        env={"MARK_DONE": "true" if mark_done else "false", "LOOKAHEAD": "4"},
    )
    systems.append(s)
    failures = max(3, mos // 6)
    chaos = Chaos(s, rng, mos)
    plan = Plan(seed, mos, failures=failures)
    drive(s, plan, budget_s=60 + mos * 4.0, step=chaos.step, failure_every=rng.uniform(1.0, 3.0))
    chaos.clear_all()
    # An MO cancelled in Odoo just as it was written (inside RECHECK_S) is dosed, and Odoo refuses its report:
    # attention is the honest end for it, as for a scaled one.
    plan = Plan(
        seed,
        mos,
        failures=failures,
        allow_attention=frozenset(chaos.scaled | chaos.cancelled),
        cancelled_in_odoo=frozenset(chaos.cancelled),
    )
    wait_drained(s, plan, timeout=120)
    summary = check_invariants(s, plan)
    print(_table(summary, s, plan, chaos, mark_done))
    assert set(summary["attention"]) <= chaos.scaled | chaos.cancelled, f"seed={seed}: {summary}"
    assert summary["completed"] + summary["cancelled"] + len(summary["attention"]) == mos, (
        f"seed={seed}: {summary}"
    )
    assert summary["acks_without_storage"] == 0
