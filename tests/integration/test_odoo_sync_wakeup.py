"""The finish -> Odoo tail (issue 16): a wake-up must never be lost to a row another *service* holds.

The planner commits `finished`, publishes the event and sends `ack_slot`; the gateway's reply makes the planner
lock the same row again (acked_at), and every later READ snapshot of the slot locks it too. If odoo_sync's
claim runs inside one of those few-millisecond windows, SKIP LOCKED skips the row, the sweep finds "nothing to
do" and sleeps until the next event - the next batch's finish, or the 30 s safety sweep. These tests hold that
lock deterministically (no timing): the lock is taken before the sweep starts and released only once the
sweep has either returned (the bug) or is seen waiting for it in pg_stat_activity (the fix).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.db.claim import claim_batches, claim_for_worker
from shared.db.migrate import upgrade
from shared.db.models import MoBatch, MoHistory
from shared.db.session import make_engine, make_session_factory, transaction
from simulators.odoo.server import SimServer
from tests.integration.test_odoo_sync import add_finished, db_url, make_syncer, odoo, rows

__all__ = ["db_url", "odoo"]  # fixtures used by this module


def lock_waiters(url: str) -> int:
    """Backends of this database waiting for a row lock right now."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return int(
                c.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def run_while_row_locked(url: str, mo_id: str, work: Callable[[], object]) -> bool:
    """Hold FOR UPDATE on `mo_id` (as the planner's ack/snapshot transaction does), run `work` in a thread, and
    release the lock once `work` has returned or is waiting for the lock. Returns True when `work` was seen
    waiting (it did not give up on the row)."""
    engine = sa.create_engine(url)
    waited = False
    try:
        with Session(engine) as holder, holder.begin():
            holder.execute(sa.select(MoBatch).where(MoBatch.mo_id == mo_id).with_for_update()).one()
            worker = threading.Thread(target=work)
            worker.start()
            while worker.is_alive():  # until the worker either gave up (returned) or queued behind our lock
                if lock_waiters(url) > 0:
                    waited = True
                    break
                worker.join(0.01)
        worker.join(30)  # lock released by the commit above
        assert not worker.is_alive()
    finally:
        engine.dispose()
    return waited


def test_sweep_reports_a_finished_batch_the_planner_briefly_holds(db_url: str, odoo: SimServer) -> None:
    """Fails on the old claim (SKIP LOCKED): the sweep returned with the row still in mo_batch, and nothing
    would wake odoo_sync again before the next batch or the safety sweep."""
    [batch] = add_finished(db_url, odoo, 1)
    syncer = make_syncer(db_url, odoo)
    try:
        waited = run_while_row_locked(db_url, batch["mo_id"], syncer.sweep)
        assert rows(db_url, MoBatch) == [], "the woken sweep left the finished batch for a later wake-up"
        assert [h.mo_id for h in rows(db_url, MoHistory)] == [batch["mo_id"]]
        assert waited
    finally:
        syncer.engine.dispose()


def test_sweep_looks_again_soon_for_a_row_a_replica_holds(db_url: str, odoo: SimServer) -> None:
    """A due row the claim could not take (another replica has it) is looked at again within a second, not
    after the 30 s safety sweep."""
    [batch] = add_finished(db_url, odoo, 1)
    syncer = make_syncer(db_url, odoo, sync_sweep_s=30.0)
    engine = sa.create_engine(db_url)
    try:
        with Session(engine) as replica, replica.begin():
            assert claim_batches(replica, "finished")  # the replica's claim, held
            assert syncer.sweep() <= 1.0
        assert [r.mo_id for r in rows(db_url, MoBatch)] == [batch["mo_id"]]
        assert syncer.sweep() == 30.0  # done; nothing due: back to the safety sweep period
        assert rows(db_url, MoBatch) == []
    finally:
        engine.dispose()
        syncer.engine.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url, pool_size=6)
    yield make_session_factory(engine)
    engine.dispose()


def _add(db: sessionmaker[Session], *mo_ids: str) -> None:
    from decimal import Decimal

    with transaction(db) as s:
        for mo in mo_ids:
            s.add(MoBatch(mo_id=mo, state="finished", finished_goods="JF", bom_name="JF", consumption=Decimal(1)))


def test_worker_claim_skips_a_replica_but_waits_for_another_service(
    database_url: str, db: sessionmaker[Session]
) -> None:
    _add(db, "A", "B")
    with db() as replica, replica.begin():  # another odoo_sync replica is working on A
        assert [r.mo_id for r in claim_for_worker(replica, MoBatch, MoBatch.state == "finished", key=7)] == ["A"]
        with transaction(db) as other:  # skips A without waiting: the replica will finish it
            got = claim_for_worker(other, MoBatch, MoBatch.state == "finished", order_by=(MoBatch.id,), key=7)
            assert [r.mo_id for r in got] == ["B"]

    claimed: list[str] = []

    def claim_one() -> None:
        with transaction(db) as s:
            got = claim_for_worker(s, MoBatch, MoBatch.state == "finished", order_by=(MoBatch.id,), key=7)
            claimed.extend(r.mo_id for r in got)

    assert run_while_row_locked(database_url, "A", claim_one)  # a plain row lock (the planner): waited for
    assert claimed == ["A"]


def test_worker_claim_rechecks_the_row_after_waiting(database_url: str, db: sessionmaker[Session]) -> None:
    """The lock holder may change the row (a replica archived it, an operator moved it): the claim re-checks
    the criteria after the wait and moves on to the next candidate instead of returning a stale row."""
    _add(db, "A", "B")
    engine = sa.create_engine(database_url)
    claimed: list[str] = []

    def claim_one() -> None:
        with transaction(db) as s:
            got = claim_for_worker(s, MoBatch, MoBatch.last_error.is_(None), order_by=(MoBatch.id,), key=7)
            claimed.extend(r.mo_id for r in got)

    try:
        with Session(engine) as holder, holder.begin():
            holder.execute(
                sa.update(MoBatch).where(MoBatch.mo_id == "A").values(last_error="moved by an operator")
            )
            worker = threading.Thread(target=claim_one)
            worker.start()
            while worker.is_alive() and lock_waiters(database_url) == 0:
                worker.join(0.01)
        worker.join(30)
    finally:
        engine.dispose()
    assert claimed == ["B"]


def test_worker_claim_bad_input(db: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="limit"), transaction(db) as s:
        claim_for_worker(s, MoBatch, key=1, limit=0)
    with pytest.raises(ValueError, match="lock_wait_s"), transaction(db) as s:
        claim_for_worker(s, MoBatch, key=1, lock_wait_s=0)
