"""What the database itself refuses, whatever a service does: duplicate MOs, a completed MO queued again,
unknown states and statuses, negative kg, a failure event stored twice."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.columns import actual_column, target_column
from shared.db.migrate import upgrade
from shared.db.models import EquipmentFailure, MoBatch, MoHistory
from shared.db.session import make_engine, make_session_factory, transaction


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


BASE: dict[str, Any] = {"finished_goods": "JF 01", "bom_name": "JF 01", "consumption": Decimal("1000.00")}


def batch(mo_id: str, **kw: Any) -> MoBatch:
    return MoBatch(mo_id=mo_id, **{**BASE, **kw})


def history(mo_id: str, status: str, **kw: Any) -> MoHistory:
    return MoHistory(mo_id=mo_id, status=status, **{**BASE, **kw})


def refused(db: sessionmaker[Session], row: Any, constraint: str) -> None:
    with pytest.raises(IntegrityError, match=constraint), transaction(db) as s:
        s.add(row)


def test_kg_are_stored_exactly(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add(batch("WH/MO/00001", **{target_column("silo101"): Decimal("1234.56")}))
    with transaction(db) as s:
        row = s.scalars(sa.select(MoBatch)).one()
        setattr(row, actual_column("silo101"), Decimal("1234.57"))
        row.actual_weight_quantity_finished_goods = Decimal("570.00")
    with db() as s:
        row = s.scalars(sa.select(MoBatch)).one()
        assert row.consumption_silo_a == Decimal("1234.56")  # type: ignore[attr-defined]
        assert row.actual_consumption_silo_a == Decimal("1234.57")  # type: ignore[attr-defined]
        assert row.consumption_lq_fml == Decimal("0.00")  # type: ignore[attr-defined]
        assert row.actual_consumption_lq_fml is None  # type: ignore[attr-defined]
        assert (row.state, row.odoo_mo, row.sync_attempts, row.update_odoo) == ("queued", {}, 0, False)
        assert row.queued_at.tzinfo is not None


def test_mo_id_is_unique_in_the_queue(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add(batch("WH/MO/00011"))
    refused(db, batch("WH/MO/00011"), "uq_mo_batch_mo_id")


@pytest.mark.parametrize(
    ("kw", "constraint"),
    [
        ({"state": "archived"}, "ck_mo_batch_state"),
        ({"state": "attention"}, "ck_mo_batch_attention_from"),  # attention must say where it came from
        ({"state": "attention", "attention_from": "cancelled"}, "ck_mo_batch_attention_from"),
        ({"consumption": Decimal(0)}, "ck_mo_batch_quantity_positive"),
        ({target_column("silo105"): Decimal("-0.01")}, "ck_mo_batch_kg_non_negative"),
        ({actual_column("lq115"): Decimal("-1")}, "ck_mo_batch_kg_non_negative"),
        ({"actual_weight_quantity_finished_goods": Decimal("-5")}, "ck_mo_batch_kg_non_negative"),
        ({"slot": 0}, "ck_mo_batch_slot"),
        ({"sync_attempts": -1}, "ck_mo_batch_sync_attempts"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else "-".join(v),
)
def test_batch_checks(db: sessionmaker[Session], kw: dict[str, Any], constraint: str) -> None:
    refused(db, batch("WH/MO/00012", **kw), constraint)


def test_attention_with_its_origin_is_accepted(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add(batch("WH/MO/00013", state="attention", attention_from="finished", slot=10))


@pytest.mark.parametrize(
    ("kw", "constraint"),
    [
        ({"status": "archived"}, "ck_mo_histories_status"),
        ({"status": "completed", actual_column("silo113"): Decimal("-2")}, "ck_mo_histories_kg_non_negative"),
    ],
    ids=["status", "kg"],
)
def test_history_checks(db: sessionmaker[Session], kw: dict[str, Any], constraint: str) -> None:
    refused(db, MoHistory(mo_id="WH/MO/00014", **{**BASE, **kw}), constraint)


def test_completed_is_archived_once_other_statuses_repeat(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add_all([history("WH/MO/00011", "cancelled"), history("WH/MO/00011", "failed")])
        s.add_all([history("WH/MO/00011", "failed"), history("WH/MO/00011", "completed")])
    refused(db, history("WH/MO/00011", "completed"), "uq_mo_histories_completed_mo_id")


def test_a_completed_mo_is_never_queued_again(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add_all([history("WH/MO/00020", "completed"), history("WH/MO/00021", "cancelled")])
        s.add(batch("WH/MO/00022"))
    refused(db, batch("WH/MO/00020"), "never queued again")
    with transaction(db) as s:  # cancelled or failed MOs may be planned again
        s.add(batch("WH/MO/00021"))
    with pytest.raises(IntegrityError, match="never queued again"), transaction(db) as s:  # nor by renaming
        s.scalars(sa.select(MoBatch).where(MoBatch.mo_id == "WH/MO/00022")).one().mo_id = "WH/MO/00020"


def test_queueing_that_races_an_archive_waits_and_is_refused(db: sessionmaker[Session]) -> None:
    """Archive (insert completed history + delete batch) and a re-queue of the same MO run at the same time:
    the re-queue must see the archive once it commits, never slip in between."""
    with transaction(db) as s:
        s.add(batch("WH/MO/00030"))
    archived = threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def requeue() -> None:
        archived.wait(5)
        try:
            with transaction(db) as s:
                s.add(batch("WH/MO/00030"))
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=requeue)
    worker.start()
    with transaction(db) as s:
        s.add(history("WH/MO/00030", "completed"))
        s.flush()  # the history row (and its per-MO lock) exists, the batch row is still there
        s.delete(s.scalars(sa.select(MoBatch).where(MoBatch.mo_id == "WH/MO/00030")).one())
        s.flush()
        archived.set()
        time.sleep(0.5)  # the re-queue is now blocked behind this transaction
        assert worker.is_alive()
    worker.join(10)
    assert isinstance(outcome["error"], IntegrityError) and "never queued again" in str(outcome["error"])
    with db() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MoBatch)) == 0


def failure(event_id: str, **kw: Any) -> EquipmentFailure:
    local = dt.datetime(2026, 2, 23, 20, 22, 35)
    values: dict[str, Any] = {
        "event_id": event_id,
        "equipment_code": "silo101",
        "description": "START_FAILURE",
        "plc_time_local": local,
        "plc_timezone": "Asia/Jakarta",
        "plc_time_utc": (local - dt.timedelta(hours=7)).replace(tzinfo=dt.UTC),
        **kw,
    }
    return EquipmentFailure(**values)


def test_failure_events(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add(failure("e1"))
    refused(db, failure("e1"), "uq_equipment_failure_event_id")  # a re-delivery is stored once
    refused(db, failure("e2", report_attempts=-1), "ck_equipment_failure_report_attempts")
    refused(db, failure("e3", reported_at=dt.datetime.now(dt.UTC)), "ck_equipment_failure_reported_has_record")
    with db() as s:
        row = s.scalars(sa.select(EquipmentFailure)).one()
        assert row.plc_time_local == dt.datetime(2026, 2, 23, 20, 22, 35) and row.plc_time_local.tzinfo is None
        assert row.plc_time_utc == dt.datetime(2026, 2, 23, 13, 22, 35, tzinfo=dt.UTC)
        assert row.received_at.tzinfo is not None and row.outcome_unknown is False
