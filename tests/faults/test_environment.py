"""Faults around the services while 10-12 MOs run: Mosquitto and PostgreSQL restarts, Odoo down / slow /
502 / lost replies / session expiry / partial results, FINS loss / duplicates / late replies / wrong SIDs /
error end codes, and a PLC reboot. After each: the invariants of docs/architecture.md A8 (tests/faults/conftest.py).
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import SERVICES, PgCluster, Plan, check_invariants, drive, start_system, wait_drained
from tests.support.procs import wait_until
from tests.support.system import ROOT, System

UPDATE = "/api/scada/mo/update-with-consumptions"
MATERIAL = "/api/scada/material-consumption"
FAILURE = "/api/scada/equipment-failure"


def _every(rng: random.Random, lo: float, hi: float) -> list[float]:
    return [rng.uniform(lo, hi)]


def test_mosquitto_restarts(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    rng = random.Random(seed)
    s = start_system(tmp_path, monkeypatch, mos=10, batch_seconds=rng.uniform(0.4, 0.8))
    systems.append(s)
    plan = Plan(seed, 10, failures=3, weighings=4)
    restarts: list[float] = []
    nxt = _every(rng, 1.0, 2.5)

    def step(elapsed: float) -> None:
        if elapsed >= nxt[0] and len(restarts) < 3:
            restarts.append(round(elapsed, 2))
            s.broker.stop()
            time.sleep(rng.uniform(0.2, 2.0))  # the gateway keeps polling; commands and acks wait
            s.broker.restart()
            nxt[0] = elapsed + rng.uniform(2.0, 4.0)

    drive(s, plan, budget_s=90, step=step)
    wait_drained(s, plan, timeout=90)
    summary = check_invariants(s, plan)
    print(f"seed={seed} broker restarts at {restarts}: {summary}")
    assert len(restarts) >= 2 and summary["completed"] + summary["cancelled"] == 10, f"seed={seed}: {summary}"


def test_postgresql_restarts(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System], pg_cluster: PgCluster
) -> None:
    rng = random.Random(seed)
    s = start_system(tmp_path, monkeypatch, mos=10, cluster=pg_cluster, batch_seconds=rng.uniform(0.4, 0.8))
    systems.append(s)
    plan = Plan(seed, 10, failures=3, weighings=4)
    restarts: list[tuple[float, str]] = []
    nxt = _every(rng, 1.0, 2.5)

    def step(elapsed: float) -> None:
        if elapsed >= nxt[0] and len(restarts) < 3:
            mode = rng.choice(["fast", "immediate"])  # immediate = crash, recovery from WAL
            restarts.append((round(elapsed, 2), mode))
            pg_cluster.restart(down_s=rng.uniform(0.2, 2.5), mode=mode)
            nxt[0] = elapsed + rng.uniform(2.0, 4.0)

    drive(s, plan, budget_s=120, step=step)
    wait_drained(s, plan, timeout=90)
    summary = check_invariants(s, plan)
    print(f"seed={seed} PostgreSQL restarts {restarts}: {summary}")
    assert len(restarts) >= 2 and summary["completed"] + summary["cancelled"] == 10, f"seed={seed}: {summary}"


def test_odoo_down_slow_errors_and_session_expiry(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    rng = random.Random(seed)
    s = start_system(
        tmp_path,
        monkeypatch,
        mos=12,
        batch_seconds=rng.uniform(0.4, 0.8),
        env={"RETRY_MAX_S": "2", "REPORT_RETRY_S": "0.3"},
    )
    systems.append(s)
    plan = Plan(seed, 12, failures=4, weighings=6)
    # Each entry: one Odoo fault, installed at a seeded moment (times = how many requests it hits).
    menu: list[dict[str, Any]] = [
        {"kind": "http_error", "status": 502, "route": UPDATE, "times": 2},
        {"kind": "http_error", "status": 502, "when": "after", "route": UPDATE, "times": 1},  # done, reply lost
        {"kind": "drop", "when": "after", "route": UPDATE, "times": 1},
        {"kind": "drop", "when": "after", "route": FAILURE, "method": "POST", "times": 1},  # failure posted, lost
        {"kind": "http_error", "status": 504, "when": "after", "route": FAILURE, "method": "POST", "times": 1},
        {"kind": "expire_session", "times": 2},
        # Manual weighings: add mode is not idempotent, so every unknown outcome must be decided, not re-posted.
        {"kind": "drop", "when": "after", "route": MATERIAL, "method": "POST", "times": 1},
        {"kind": "http_error", "status": 502, "when": "after", "route": MATERIAL, "method": "POST", "times": 1},
        {"kind": "latency", "seconds": 4.0, "route": MATERIAL, "times": 1},  # > read timeout: unknown outcome
        {"kind": "http_error", "status": 502, "route": MATERIAL, "times": 1},  # refused by the proxy: not applied
        {"kind": "latency", "seconds": 2.5, "route": UPDATE, "times": 1},  # longer than nothing, < read timeout
        {"kind": "latency", "seconds": 4.0, "route": UPDATE, "times": 1},  # > read timeout (3 s): unknown outcome
        {"kind": "html", "route": UPDATE, "times": 1},
        {"kind": "bad_json", "route": UPDATE, "times": 1},
        {"kind": "html", "route": "/api/scada/mo-list-detailed", "times": 2},
        {"kind": "bad_json", "route": "/api/scada/mo-list-detailed", "times": 2},
    ]
    rng.shuffle(menu)
    installed: list[str] = []
    nxt = _every(rng, 0.5, 1.5)
    outage = {"until": 0.0}

    def step(elapsed: float) -> None:
        if elapsed < nxt[0]:
            return
        if menu:
            fault = menu.pop()
            s.odoo("POST", "/_sim/faults", fault)
            installed.append(f"{elapsed:.1f}:{fault['kind']}")
        elif outage["until"] == 0.0:
            # Odoo down for a while: every route answers 502 (dosing goes on; reports wait).
            s.odoo("POST", "/_sim/faults", {"kind": "http_error", "status": 502, "times": None})
            outage["until"] = elapsed + rng.uniform(2.0, 5.0)
            installed.append(f"{elapsed:.1f}:down")
        elif elapsed >= outage["until"] > 0:
            s.odoo("DELETE", "/_sim/faults")
            outage["until"] = -1.0
            installed.append(f"{elapsed:.1f}:up")
        nxt[0] = elapsed + rng.uniform(0.4, 1.2)

    drive(s, plan, budget_s=120, step=step)
    s.odoo("DELETE", "/_sim/faults")
    wait_drained(s, plan, timeout=90)
    summary = check_invariants(s, plan)
    print(f"seed={seed} Odoo faults {installed}: {summary}")
    assert summary["completed"] + summary["cancelled"] == 12, f"seed={seed}: {summary}"


def test_odoo_partial_result_goes_to_attention_and_blocks_nothing(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    """A business error on one move (partial result): that MO goes to attention (visible, never archived as
    completed), every other MO flows; nothing is doubled."""
    rng = random.Random(seed)
    s = start_system(tmp_path, monkeypatch, mos=8, batch_seconds=rng.uniform(0.4, 0.8))
    systems.append(s)
    victim = f"WH/MO/{rng.randint(2, 7):05d}"
    mo = next(m for m in s.odoo_state()["mos"] if m["mo_id"] == victim)
    equipment = next(mv["equipment"] for mv in mo["moves"] if str(mv["equipment"]).startswith(("silo", "lq")))
    s.odoo("POST", "/_sim/move-error", {"mo_id": victim, "equipment_code": equipment, "message": "Lot expired"})
    plan = Plan(seed, 8, allow_attention=frozenset({victim}))
    drive(s, plan, budget_s=60, step=lambda e: None)
    wait_drained(s, plan, timeout=60)
    summary = check_invariants(s, plan)
    print(f"seed={seed} partial on {victim}/{equipment}: {summary}")
    assert summary["attention"] == [victim], f"seed={seed}: {summary}"
    assert summary["completed"] == 7, f"seed={seed}: {summary}"


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"drop": 0.08, "drop_reply": 0.08}, id="loss"),
        pytest.param({"duplicate": 0.3, "delay_ms": 40, "wrong_sid": 0.05}, id="dup-late-wrongsid"),
    ],
)
def test_fins_loss_duplicates_late_replies(
    faults: dict[str, float], seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    rng = random.Random(seed)
    s = start_system(
        tmp_path,
        monkeypatch,
        mos=10,
        batch_seconds=rng.uniform(0.4, 0.8),
        sim_args=["--seed", str(seed % 10_000)],
        env={"FINS_TIMEOUT_MS": "150", "FINS_RETRIES": "2"},
    )
    systems.append(s)
    s.plc("POST", "/faults", faults)
    plan = Plan(seed, 10, failures=3, weighings=4)
    end_codes: list[str] = []
    nxt = _every(rng, 1.0, 2.0)

    def step(elapsed: float) -> None:
        # Error end codes now and then: 0x2203 (PROGRAM mode), 0x1103 (address range), 0x0401 (unsupported)...
        if elapsed >= nxt[0] and len(end_codes) < 4:
            code = rng.choice([0x2203, 0x1103, 0x0401, 0x2502])
            s.plc("POST", "/faults", {"end_code": code, "end_code_count": rng.randint(1, 4)})
            end_codes.append(hex(code))
            nxt[0] = elapsed + rng.uniform(1.0, 3.0)

    drive(s, plan, budget_s=120, step=step)
    s.plc("POST", "/faults", {"drop": 0, "drop_reply": 0, "duplicate": 0, "delay_ms": 0, "wrong_sid": 0})
    wait_drained(s, plan, timeout=60)
    summary = check_invariants(s, plan)
    fins = s.plc_state()["fins"]
    print(f"seed={seed} FINS faults {faults} end codes {end_codes} fins={fins}: {summary}")
    assert summary["completed"] + summary["cancelled"] == 10, f"seed={seed}: {summary}"


def test_plc_reboot_mid_batch_never_redoses(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System]
) -> None:
    """The PLC loses its memory while a batch runs: that batch ends in `attention` (visible; not re-dosed,
    not reported with made-up values); the slot waits (W = 0) until the operator re-arms; then the rest
    flows."""
    rng = random.Random(seed)
    s = start_system(tmp_path, monkeypatch, mos=8, batch_seconds=1.5)
    systems.append(s)
    nth = rng.randint(2, 5)
    wait_until(lambda: s.completed() >= nth - 1, 60, what=f"{nth - 1} MOs completed")
    wait_until(lambda: s.plc_state()["slots"][0]["phase"] == "running", 20, what="a batch running")
    time.sleep(rng.uniform(0.1, 0.8))
    state = s.plc("POST", "/reboot", {"armed": False})
    lost = state["slots"][0]["mo_id"] if state["slots"][0]["mo_id"] else None
    running = s.sql("SELECT mo_id FROM mo_batch WHERE state IN ('written', 'accepted', 'running')")
    assert len(running) == 1, f"seed={seed}: {running}"
    victim = running[0][0]
    wait_until(
        lambda: s.sql("SELECT state FROM mo_batch WHERE mo_id = :m", m=victim) == [("attention",)],
        20,
        what=f"seed={seed}: {victim} in attention after the reboot",
    )
    time.sleep(1.0)
    assert s.plc_state()["slots"][0]["batches_started"] == sum(1 for _ in s.sql(
        "SELECT 1 FROM audit_event WHERE to_state = 'written'")), f"seed={seed}: written while unarmed"  # fmt: skip
    reply = s.watch.request(f"{ROOT}/cmd/arm", {"request_id": f"arm-{uuid.uuid4().hex}", "slot": 1})
    assert reply["ok"], f"seed={seed}: arm refused {reply}"
    plan = Plan(seed, 8, allow_attention=frozenset({victim}))
    drive(s, plan, budget_s=60)
    wait_drained(s, plan, timeout=60)
    summary = check_invariants(s, plan)
    odoo_mo = next(m for m in s.odoo_state()["mos"] if m["mo_id"] == victim)
    print(f"seed={seed} reboot during {victim} ({lost}): {summary}")
    assert summary["attention"] == [victim], f"seed={seed}: {summary}"
    # odoo-sim lists every move's equipment with its consumed kg: all must still be 0 (nothing reported).
    reported = {k: v for k, v in odoo_mo["consumption"].items() if v}
    assert not reported and not odoo_mo["qty_producing"], f"seed={seed}: {victim} reported {odoo_mo}"
    assert summary["completed"] == 7, f"seed={seed}: {summary}"


def test_power_cut_of_the_whole_edge_box(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: list[System], pg_cluster: PgCluster
) -> None:
    """Every service, the broker and PostgreSQL die at the same instant (SIGKILL / immediate stop: no
    shutdown, no flush), twice; the PLC keeps running, as it does on a plant. Then everything starts again."""
    rng = random.Random(seed)
    s = start_system(
        tmp_path, monkeypatch, mos=12, slots=2, cluster=pg_cluster, batch_seconds=rng.uniform(0.6, 1.2)
    )
    systems.append(s)
    plan = Plan(seed, 12, failures=3)
    cuts: list[float] = []
    nxt = _every(rng, 1.5, 3.0)

    def step(elapsed: float) -> None:
        if elapsed < nxt[0] or len(cuts) >= 2:
            return
        cuts.append(round(elapsed, 2))
        for name in SERVICES:
            s.procs[name].kill9()
        s.broker.process.kill()
        pg_cluster.stop(mode="immediate")
        s.broker.process.wait(5)
        time.sleep(rng.uniform(0.5, 3.0))  # the PLC finishes batches and posts failures meanwhile
        pg_cluster.start()
        s.broker.restart()
        for name in SERVICES:
            s.start_service(name)
        nxt[0] = elapsed + rng.uniform(3.0, 6.0)

    drive(s, plan, budget_s=150, step=step)
    wait_drained(s, plan, timeout=90)
    summary = check_invariants(s, plan)
    print(f"seed={seed} power cuts at {cuts}: {summary}")
    assert len(cuts) == 2 and summary["completed"] + summary["cancelled"] == 12, f"seed={seed}: {summary}"
