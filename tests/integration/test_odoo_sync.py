"""odoo_sync's rules against a real PostgreSQL and the Odoo simulator over real HTTP (the worker's sweep is
driven in-process so each rule is checked deterministically; no mocks)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.odoo_sync.app import Syncer
from services.odoo_sync.settings import SyncSettings
from shared.db.columns import actual_column, target_column
from shared.db.models import AuditEvent, MoBatch, MoHistory
from shared.odoo.mapping import mo_to_batch
from shared.plc.memory_map import load_memory_map
from simulators.odoo.server import SimServer, start_server
from tests.support.odoo import make_client
from tests.support.procs import wait_until
from tests.support.system import System

REPO = Path(__file__).resolve().parents[2]
CODES = load_memory_map().equipment_codes


@pytest.fixture
def odoo() -> Iterator[SimServer]:
    handle = start_server(extra_mos=12, seed=None, rng_seed=3)
    yield handle
    handle.stop()


@pytest.fixture
def db_url(database_url: str) -> str:
    subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "upgrade", "head"],
        cwd=REPO,
        check=True,
        capture_output=True,
        env={**os.environ, "DATABASE_URL": database_url.replace("+psycopg2", "")},
    )
    return database_url


def make_syncer(db_url: str, odoo: SimServer, **overrides: Any) -> Syncer:
    values: dict[str, Any] = {
        "database_url": db_url,
        "odoo_url": odoo.url,
        "odoo_db": "plant",
        "odoo_login": "admin",
        "odoo_password": "admin",
        "odoo_read_timeout": 3.0,
        "retry_base_s": 0.2,
        "retry_max_s": 1.0,
        "mqtt_url": "mqtt://127.0.0.1:1",
        "mqtt_topic_root": "scada/t",
    }
    values.update(overrides)
    settings = SyncSettings(**values)
    return Syncer(settings, make_client(odoo))


def add_finished(
    db_url: str,
    odoo: SimServer,
    n: int,
    *,
    state: str = "finished",
    extra: float = 0.0,
    bogus: bool = False,
    skip: int = 0,
) -> list[dict[str, Any]]:
    """Finished batches for n confirmed MOs (after `skip`), actuals = target + extra; returns what was stored."""
    mos = make_client(odoo).fetch_queue()[skip : skip + n]
    engine = sa.create_engine(db_url)
    stored = []
    with Session(engine) as s, s.begin():
        for mo in mos:
            batch = mo_to_batch(mo, CODES)
            row = MoBatch(
                mo_id=mo.mo_id,
                state=state,
                slot=1,
                finished_goods=batch.finished_goods,
                bom_name=batch.bom_name,
                consumption=Decimal(str(batch.quantity)),
                odoo_mo={},
                status_manufacturing=state != "failed",
                status_operation=state == "failed",
            )
            actuals = {code: round(kg + extra, 2) for code, kg in batch.targets.items()}
            if bogus:  # an actual on a silo this MO has no move for
                actuals[next(c for c in CODES if c not in batch.targets)] = 5.0
            for code, kg in batch.targets.items():
                setattr(row, target_column(code), Decimal(str(kg)))
            for code, kg in actuals.items():
                setattr(row, actual_column(code), Decimal(str(kg)))
            weight = round(sum(actuals.values()), 2)
            row.actual_weight_quantity_finished_goods = Decimal(str(weight))
            row.update_odoo = state == "reported"
            s.add(row)
            stored.append({"mo_id": mo.mo_id, "actuals": actuals, "weight": weight})
    engine.dispose()
    return stored


def rows(db_url: str, model: type[Any]) -> list[Any]:
    engine = sa.create_engine(db_url)
    with Session(engine) as s:
        out = list(s.scalars(sa.select(model)).all())
    engine.dispose()
    return out


def odoo_mo(odoo: SimServer, mo_id: str) -> dict[str, Any]:
    return next(m for m in odoo.sim.domain.snapshot()["mos"] if m["mo_id"] == mo_id)


def test_finished_batch_is_reported_with_its_final_values_and_archived_once(db_url: str, odoo: SimServer) -> None:
    stored = add_finished(db_url, odoo, 3, extra=0.37)
    syncer = make_syncer(db_url, odoo)
    syncer.sweep()
    assert rows(db_url, MoBatch) == []
    history = rows(db_url, MoHistory)
    assert sorted(h.mo_id for h in history) == sorted(b["mo_id"] for b in stored)
    assert all(h.status == "completed" and h.update_odoo for h in history)
    for b in stored:
        mo = odoo_mo(odoo, b["mo_id"])
        assert mo["qty_producing"] == pytest.approx(b["weight"])
        for code, kg in b["actuals"].items():
            assert mo["consumption"][code] == pytest.approx(kg), code
    actions = [(a.mo_id, a.to_state) for a in rows(db_url, AuditEvent)]
    assert (stored[0]["mo_id"], "reported") in actions and (stored[0]["mo_id"], "completed") in actions


def test_partial_result_goes_to_attention_without_blocking_others(db_url: str, odoo: SimServer) -> None:
    """docs/odoo-api.md O7.7: status success with errors is a partial result, not success."""
    bad = add_finished(db_url, odoo, 1, bogus=True)
    good = add_finished(db_url, odoo, 1, skip=1)
    syncer = make_syncer(db_url, odoo)
    syncer.sweep()
    left = rows(db_url, MoBatch)
    assert [r.mo_id for r in left] == [bad[0]["mo_id"]]
    assert left[0].state == "attention" and "No raw material move" in (left[0].last_error or "")
    assert [h.mo_id for h in rows(db_url, MoHistory)] == [good[0]["mo_id"]]


def test_business_error_goes_to_attention_and_operator_retry_reports_it(db_url: str, odoo: SimServer) -> None:
    [b] = add_finished(db_url, odoo, 1)
    code = next(iter(b["actuals"]))
    status, _ = odoo.sim.control(
        "POST",
        "/_sim/move-error",
        {"mo_id": b["mo_id"], "equipment_code": code, "message": "Operation not allowed"},
    )
    assert status == 200
    syncer = make_syncer(db_url, odoo)
    syncer.sweep()
    [row] = rows(db_url, MoBatch)
    assert row.state == "attention" and "Operation not allowed" in (row.last_error or "")
    # The operator fixes it in Odoo and retries (what `edgectl retry` does).
    for move in odoo.sim.domain.mo_by_name(b["mo_id"]).raw_moves:
        move.inject_error = None
    engine = sa.create_engine(db_url)
    with Session(engine) as s, s.begin():
        r = s.scalars(sa.select(MoBatch)).one()
        r.state, r.next_attempt_at = "finished", None
    engine.dispose()
    syncer.sweep()
    assert rows(db_url, MoBatch) == [] and rows(db_url, MoHistory)[0].status == "completed"


def _fault(odoo: SimServer, **fault: Any) -> None:
    status, reply = odoo.sim.control("POST", "/_sim/faults", fault)
    assert status == 200, reply


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http_error", "status": 502, "route": "/api/scada/mo/update-with-consumptions", "times": 3},
        {"kind": "drop", "when": "after", "route": "/api/scada/mo/update-with-consumptions", "times": 2},
        {"kind": "html", "route": "/api/scada/mo/update-with-consumptions", "times": 2},
        {"kind": "expire_session", "times": 2},
    ],
    ids=["502", "reply-lost-after-commit", "html", "session-expiry"],
)
def test_odoo_trouble_is_retried_and_reported_once(db_url: str, odoo: SimServer, fault: dict[str, Any]) -> None:
    [b] = add_finished(db_url, odoo, 1, extra=0.11)
    _fault(odoo, **fault)
    syncer = make_syncer(db_url, odoo)
    deadline = time.monotonic() + 20
    while rows(db_url, MoBatch) and time.monotonic() < deadline:
        time.sleep(min(1.0, syncer.sweep()))
    assert rows(db_url, MoBatch) == [], "not reported after the fault cleared"
    [h] = rows(db_url, MoHistory)
    assert h.status == "completed"
    mo = odoo_mo(odoo, b["mo_id"])
    for code, kg in b["actuals"].items():
        assert mo["consumption"][code] == pytest.approx(kg)  # SET semantics: a replay did not add up


def test_failed_batch_is_cancelled_in_odoo_and_archived(db_url: str, odoo: SimServer) -> None:
    [b] = add_finished(db_url, odoo, 1, state="failed")
    make_syncer(db_url, odoo).sweep()
    assert odoo_mo(odoo, b["mo_id"])["state"] == "cancel"
    [h] = rows(db_url, MoHistory)
    assert h.status == "cancelled" and h.mo_id == b["mo_id"]


def test_orphans_already_reported_are_archived(db_url: str, odoo: SimServer) -> None:
    [b] = add_finished(db_url, odoo, 1, state="reported")
    updates = "POST /api/scada/mo/update-with-consumptions"
    before = odoo.sim.requests[updates]
    make_syncer(db_url, odoo).sweep()
    [h] = rows(db_url, MoHistory)
    assert h.mo_id == b["mo_id"] and h.status == "completed" and "orphan" in (h.note or "")
    assert odoo.sim.requests[updates] == before  # archived without calling Odoo again


def test_two_replicas_never_report_the_same_batch_twice(db_url: str, odoo: SimServer) -> None:
    stored = add_finished(db_url, odoo, 10)
    a, b = make_syncer(db_url, odoo), make_syncer(db_url, odoo)
    _fault(odoo, kind="latency", seconds=0.05, times=None)
    threads = [threading.Thread(target=s.sweep) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    history = rows(db_url, MoHistory)
    assert sorted(h.mo_id for h in history) == sorted(x["mo_id"] for x in stored)
    updates = [e for e in rows(db_url, AuditEvent) if e.to_state == "reported"]
    assert len(updates) == len(stored)  # each batch went through reporting exactly once


def test_batches_that_finish_together_are_reported_side_by_side_not_one_behind_another(
    db_url: str, odoo: SimServer
) -> None:
    """Issue 16: slots that finish in the same poll were reported one after another, so the last of a burst
    waited for every Odoo call in front of it. Each call here takes a second: one after another the four
    reports span at least three seconds; side by side they all land within one call's time."""
    stored = add_finished(db_url, odoo, 4)
    updates = "POST /api/scada/mo/update-with-consumptions"
    before = odoo.sim.requests[updates]
    _fault(odoo, kind="latency", seconds=1.0, route="/api/scada/mo/update-with-consumptions", times=None)
    make_syncer(db_url, odoo, sync_concurrency=4).sweep()
    history = rows(db_url, MoHistory)
    assert sorted(h.mo_id for h in history) == sorted(b["mo_id"] for b in stored)
    assert odoo.sim.requests[updates] - before == 4  # side by side, still once each
    reported = sorted(h.reported_at for h in history)
    assert (reported[-1] - reported[0]).total_seconds() < 1.0, reported


# ------------------------------------------------------------------ MARK_DONE converges (issue 10.5)


def test_with_mark_done_every_batch_converges_to_completed(tmp_path: Path) -> None:
    """The simulated PLC doses ~97 % of the planned quantity, so Odoo's mark-done answers success and leaves
    the MO open (backorder decision). The consumption is in Odoo: the batch is archived as completed with the
    mark-done outcome recorded and an alarm, never looped through attention."""
    s = System(tmp_path, batch_seconds=0.4, extra_mos=2, odoo_args=["--seed", "none"], env={"MARK_DONE": "true"})
    try:
        wait_until(lambda: s.completed() == 2, 60, what="both batches archived as completed")
        assert s.sql("SELECT mo_id FROM mo_batch") == []
        for reply, note in s.sql("SELECT odoo_reply, note FROM mo_histories"):
            assert reply["mark_done"]["done"] is False and "close it in Odoo" in note
        assert all(m["qty_producing"] > 0 for m in s.odoo_state()["mos"])
    finally:
        s.stop()


def test_an_mo_done_in_odoo_before_the_resend_is_taken_as_reported(tmp_path: Path) -> None:
    """The consumption update fails (Odoo down); meanwhile someone closes the MO in Odoo. The re-send would be
    refused ("Cannot update MO in state done"): odoo_sync reads mo-detail first and takes it as reported."""
    route = "/api/scada/mo/update-with-consumptions"
    s = System(tmp_path, batch_seconds=0.4, extra_mos=1, odoo_args=["--seed", "none"], env={"MARK_DONE": "true"})
    try:
        s.odoo("POST", "/_sim/faults", {"kind": "http_error", "status": 502, "route": route, "times": None})
        wait_until(
            lambda: s.sql("SELECT 1 FROM mo_batch WHERE state = 'finished' AND sync_attempts > 0"),
            30,
            what="the report failing and waiting for its retry",
        )
        [(mo_id,)] = s.sql("SELECT mo_id FROM mo_batch")
        s.odoo("POST", "/_sim/mo-state", {"mo_id": mo_id, "state": "done"})
        s.odoo("DELETE", "/_sim/faults")
        wait_until(lambda: s.completed() == 1, 60, what="archived as completed")
        [(note,)] = s.sql("SELECT note FROM mo_histories WHERE mo_id = :m", m=mo_id)
        assert "already done in Odoo" in note
        assert s.sql("SELECT 1 FROM audit_event WHERE mo_id = :m AND to_state = 'attention'", m=mo_id) == []
    finally:
        s.stop()
