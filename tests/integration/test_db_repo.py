"""repo.move / repo.archive against PostgreSQL: state, timestamp and audit row commit together; archiving
copies the whole row and is refused for a batch Odoo has not confirmed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.db.batch_state import IllegalTransition
from shared.db.columns import COLUMN_SUFFIX, actual_column, target_column
from shared.db.migrate import upgrade
from shared.db.models import AuditEvent, MoBatch, MoHistory
from shared.db.repo import archive, batch_by_mo, move, set_actuals
from shared.db.session import make_engine, make_session_factory, transaction

MO = "WH/MO/00011"


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        row = MoBatch(
            mo_id=MO, finished_goods="JF 01", bom_name="JF 01", consumption=Decimal("1000"), odoo_mo={"id": 11}
        )
        for i, code in enumerate(COLUMN_SUFFIX):
            setattr(row, target_column(code), Decimal(10 * i + 1))
        s.add(row)
    yield factory
    engine.dispose()


def _row(s: Session) -> MoBatch:
    row = batch_by_mo(s, MO, lock=True)
    assert row is not None
    return row


def _audit(db: sessionmaker[Session]) -> list[tuple[str, str | None, str | None, str]]:
    with db() as s:
        return [
            (a.action, a.from_state, a.to_state, a.actor)
            for a in s.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_the_happy_path_stamps_audits_and_archives_as_completed(db: sessionmaker[Session]) -> None:
    for target in ("written", "accepted", "running"):
        with transaction(db) as s:
            move(s, _row(s), target, actor="mo_planner", reason="test", slot=1)
    with transaction(db) as s:
        row = _row(s)
        set_actuals(row, {code: 10.0 * i + 1.004 for i, code in enumerate(COLUMN_SUFFIX)})
        move(s, row, "finished", actor="mo_planner")
    with transaction(db) as s:
        move(s, _row(s), "reported", actor="odoo_sync")
        archive(s, _row(s), "completed", actor="odoo_sync", odoo_reply={"mo_state": "done"}, note="ok")
    with db() as s:
        assert s.scalars(sa.select(MoBatch)).all() == []
        h = s.scalars(sa.select(MoHistory)).one()
    assert (h.mo_id, h.status, h.odoo_reply, h.note, h.update_odoo, h.odoo_mo) == (
        MO,
        "completed",
        {"mo_state": "done"},
        "ok",
        True,  # set by the move to reported: the seed's "synced to Odoo"
        {"id": 11},
    )
    stamps = [h.queued_at, h.written_at, h.accepted_at, h.started_at, h.finished_at, h.reported_at]
    present = [t for t in stamps if t is not None]
    assert len(present) == len(stamps) and present == sorted(present)
    assert h.failed_at is None and h.cancelled_at is None and h.attention_at is None
    for i, code in enumerate(COLUMN_SUFFIX):
        assert getattr(h, target_column(code)) == Decimal(10 * i + 1)
        assert getattr(h, actual_column(code)) == Decimal(10 * i + 1)  # 1.004 -> 1.00: exact to 0.01 kg
    assert _audit(db) == [
        ("transition", "queued", "written", "mo_planner"),
        ("transition", "written", "accepted", "mo_planner"),
        ("transition", "accepted", "running", "mo_planner"),
        ("transition", "running", "finished", "mo_planner"),
        ("transition", "finished", "reported", "odoo_sync"),
        ("archived", "reported", "completed", "odoo_sync"),
    ]
    with db() as s:
        first = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).first()
    assert first is not None and first.detail == {"reason": "test", "slot": 1} and first.mo_id == MO


def test_an_illegal_move_changes_nothing(db: sessionmaker[Session]) -> None:
    with pytest.raises(IllegalTransition), transaction(db) as s:
        move(s, _row(s), "finished", actor="mo_planner")  # queued -> finished: never dosed
    with db() as s:
        assert _row(s).state == "queued" and _row(s).finished_at is None
    assert _audit(db) == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (["written", "running", "finished"], "completed"),  # not reported: Odoo has not confirmed
        (["written", "running", "failed"], "cancelled"),  # failed archives as failed, cancelled only after Odoo
        ([], "completed"),
    ],
)
def test_archive_refuses_a_status_the_state_does_not_allow(
    db: sessionmaker[Session], path: list[str], status: str
) -> None:
    for target in path:
        with transaction(db) as s:
            move(s, _row(s), target, actor="mo_planner")
    with pytest.raises(IllegalTransition), transaction(db) as s:
        archive(s, _row(s), status, actor="odoo_sync")
    with db() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MoHistory)) == 0
        assert batch_by_mo(s, MO) is not None


def test_attention_remembers_its_origin_and_only_returns_there(db: sessionmaker[Session]) -> None:
    for target in ("written", "running", "finished", "attention"):
        with transaction(db) as s:
            move(s, _row(s), target, actor="odoo_sync", reason="Odoo refused")
    with db() as s:
        row = _row(s)
        assert (row.attention_from, row.attention_at is not None) == ("finished", True)
    with pytest.raises(IllegalTransition, match="came from finished"), transaction(db) as s:
        move(s, _row(s), "failed", actor="operator:ana")
    with transaction(db) as s:
        move(s, _row(s), "finished", actor="operator:ana", reason="retry")
    with db() as s:
        assert (_row(s).state, _row(s).attention_from) == ("finished", None)


def test_a_failed_batch_cancelled_in_odoo_archives_as_cancelled(db: sessionmaker[Session]) -> None:
    for target in ("written", "running", "failed", "cancelled"):
        with transaction(db) as s:
            move(s, _row(s), target, actor="odoo_sync")
    with transaction(db) as s:
        archive(s, _row(s), "cancelled", actor="odoo_sync")
    with db() as s:
        h = s.scalars(sa.select(MoHistory)).one()
        assert (h.status, h.update_odoo, h.failed_at is not None, h.cancelled_at is not None) == (
            "cancelled",
            False,
            True,
            True,
        )
    with transaction(db) as s:  # a cancelled MO may be planned again (only completed is final)
        s.add(MoBatch(mo_id=MO, finished_goods="JF", bom_name="JF", consumption=Decimal(1)))
