"""Row claiming: replicas never claim the same row and never wait on each other (see also\ntest_odoo_sync_wakeup.py for rows other services hold)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.db.batch_state import BatchState
from shared.db.claim import BATCH_WORK_KEY, claim, claim_batches, claim_failures, claim_for_worker
from shared.db.migrate import upgrade
from shared.db.models import EquipmentFailure, MoBatch
from shared.db.session import make_engine, make_session_factory, transaction


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url, pool_size=6)
    yield make_session_factory(engine)
    engine.dispose()


def add_batches(db: sessionmaker[Session], n: int, state: str = "finished", **kw: object) -> None:
    with transaction(db) as s:
        for i in range(n):
            s.add(
                MoBatch(
                    mo_id=f"WH/MO/{i:05d}",
                    state=state,
                    finished_goods="JF",
                    bom_name="JF",
                    consumption=Decimal(100),
                    **kw,
                )
            )


def test_two_replicas_never_claim_the_same_row(db: sessionmaker[Session]) -> None:
    add_batches(db, 10)
    claimed: list[list[str]] = []
    both_hold_locks = threading.Barrier(2)

    def replica() -> None:
        with transaction(db) as s:
            rows = claim_batches(s, BatchState.FINISHED, limit=6)
            both_hold_locks.wait(5)  # neither commits before the other has claimed
            claimed.append([r.mo_id for r in rows])

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    a, b = claimed
    assert not set(a) & set(b)
    assert sorted(a + b) == [f"WH/MO/{i:05d}" for i in range(10)]
    assert {len(a), len(b)} == {6, 4}


def test_many_replicas_one_row_each_until_none_left(db: sessionmaker[Session]) -> None:
    """Eight workers loop claim-one/finish-one; every row is handled exactly once."""
    add_batches(db, 40)
    handled: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with transaction(db) as s:
                rows = claim_batches(s, "finished", limit=1)
                if not rows:
                    return
                rows[0].state = "reported"
                with lock:
                    handled.append(rows[0].mo_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(handled) == [f"WH/MO/{i:05d}" for i in range(40)]


def test_a_claim_ends_with_its_transaction(db: sessionmaker[Session]) -> None:
    add_batches(db, 1)
    with db() as holder, holder.begin():
        assert len(claim_batches(holder, "finished")) == 1
        with transaction(db) as other:
            assert claim_batches(other, "finished") == []  # skipped, not waited for
    with transaction(db) as other:  # rolled back / ended: claimable again
        assert [r.mo_id for r in claim_batches(other, "finished")] == ["WH/MO/00000"]


def test_claim_order_and_filters(db: sessionmaker[Session]) -> None:
    now = dt.datetime.now(dt.UTC)
    with transaction(db) as s:
        for mo, state, slot, nxt in [
            ("A", "finished", 1, None),
            ("B", "finished", 2, now - dt.timedelta(seconds=5)),
            ("C", "finished", 1, now + dt.timedelta(hours=1)),  # retry not due yet
            ("D", "failed", 1, now - dt.timedelta(minutes=5)),
            ("E", "queued", 1, None),
        ]:
            s.add(
                MoBatch(
                    mo_id=mo,
                    state=state,
                    slot=slot,
                    next_attempt_at=nxt,
                    finished_goods="JF",
                    bom_name="JF",
                    consumption=Decimal(1),
                )
            )
    with transaction(db) as s:
        assert [r.mo_id for r in claim_batches(s, ["finished", "failed"], limit=10)] == ["A", "D", "B"]
    with transaction(db) as s:
        assert [r.mo_id for r in claim_batches(s, "finished", limit=10, due_only=False)] == ["A", "B", "C"]
    with transaction(db) as s:
        assert [r.mo_id for r in claim_batches(s, "finished", slot=1, limit=10)] == ["A"]
    with transaction(db) as s:
        assert [r.mo_id for r in claim_batches(s, "queued", order_by=[MoBatch.queued_at, MoBatch.id])] == ["E"]
    with transaction(db) as s:
        assert [r.mo_id for r in claim(s, MoBatch, MoBatch.slot == 2)] == ["B"]  # the generic form
    with pytest.raises(ValueError, match="not a valid BatchState"), transaction(db) as s:
        claim_batches(s, "archived")
    with pytest.raises(ValueError, match="limit"), transaction(db) as s:
        claim_batches(s, "finished", limit=0)


def test_claim_failures_takes_unreported_due_events(db: sessionmaker[Session]) -> None:
    t = dt.datetime(2026, 2, 23, 20, 22, 35)
    now = dt.datetime.now(dt.UTC)
    with transaction(db) as s:
        for eid, reported, nxt in [("e1", False, None), ("e2", True, None), ("e3", False, now + dt.timedelta(1))]:
            s.add(
                EquipmentFailure(
                    event_id=eid,
                    equipment_code="silo101",
                    description="START_FAILURE",
                    plc_time_local=t,
                    plc_timezone="Asia/Jakarta",
                    plc_time_utc=t.replace(tzinfo=dt.UTC),
                    reported_at=now if reported else None,
                    odoo_record_id=7 if reported else None,
                    next_attempt_at=nxt,
                )
            )
    with transaction(db) as s:
        assert [f.event_id for f in claim_failures(s, limit=5)] == ["e1"]
        with transaction(db) as other:
            assert claim_failures(other, limit=5) == []
    with transaction(db) as s:
        assert [f.event_id for f in claim_failures(s, limit=5, due_only=False)] == ["e1", "e3"]


def test_claim_waits_a_bounded_time_for_a_row_another_service_updates(db: sessionmaker[Session]) -> None:
    """A planner updating a row (plain UPDATE lock) is waited for - skipping it lost the worker's wake-up
    (issue 16) - but never for longer than lock_wait_s: then the free rows are taken."""
    add_batches(db, 2)
    with db() as holder, holder.begin():
        holder.execute(sa.update(MoBatch).where(MoBatch.mo_id == "WH/MO/00000").values(last_error="x"))
        with transaction(db) as other:
            got = claim_for_worker(
                other, MoBatch, MoBatch.state == "finished", key=BATCH_WORK_KEY, limit=5, lock_wait_s=0.2
            )
            assert [r.mo_id for r in got] == ["WH/MO/00001"]
            assert other.scalar(sa.text("SELECT current_setting('lock_timeout')")) == "0"  # restored
