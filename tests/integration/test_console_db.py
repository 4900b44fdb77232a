"""The console's database side against PostgreSQL: page sessions cannot write, history search filters as the
form says (MO substring with LIKE wildcards taken literally, status, dates, paging), and the shared operator
actions audit with the actor the console names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from services.console import queries, views
from shared.db.migrate import upgrade
from shared.db.models import AuditEvent, MoBatch, MoHistory
from shared.db.operator_actions import ActionRefused, cancel_batch, retry_batch
from shared.db.session import make_engine, make_session_factory, transaction

T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def _history(mo_id: str, status: str, day: int) -> MoHistory:
    return MoHistory(
        mo_id=mo_id,
        status=status,
        finished_goods="JF",
        bom_name="JF",
        consumption=Decimal("1000"),
        archived_at=T0.replace(day=day),
    )


@pytest.fixture
def db(database_url: str) -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session]]]:
    upgrade(database_url)
    writer_engine = make_engine(database_url)
    writer = make_session_factory(writer_engine)
    with transaction(writer) as s:
        s.add_all(
            [
                _history("WH/MO/00001", "completed", 1),
                _history("WH/MO/00002", "cancelled", 2),
                _history("WH/MO/00003", "completed", 3),
                _history("WH/MO/1%_x", "failed", 3),
            ]
        )
        s.add(
            MoBatch(
                mo_id="WH/MO/00009",
                state="attention",
                attention_from="finished",
                last_error="Odoo refused",
                finished_goods="JF",
                bom_name="JF",
                consumption=Decimal("1000"),
            )
        )
    reader_engine = queries.read_only_engine(database_url)
    yield writer, make_session_factory(reader_engine)
    reader_engine.dispose()
    writer_engine.dispose()


def test_page_sessions_are_read_only(db: tuple[sessionmaker[Session], sessionmaker[Session]]) -> None:
    _, reader = db
    with reader() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MoHistory)) == 4
    with pytest.raises(DBAPIError, match="read-only transaction"), reader() as s:
        s.execute(sa.text("UPDATE mo_batch SET state = 'queued'"))
        s.commit()


def test_history_search(db: tuple[sessionmaker[Session], sessionmaker[Session]]) -> None:
    _, reader = db

    def mos(**form: str) -> list[str]:
        q = views.parse_history_query(form, ["completed", "cancelled", "failed"])
        with reader() as s:
            rows, total = queries.history(s, q, page_size=2)
        assert total >= len(rows)
        return [r["mo_id"] for r in rows]

    assert mos() == ["WH/MO/1%_x", "WH/MO/00003"]  # newest first, one page of 2
    assert mos(page="2") == ["WH/MO/00002", "WH/MO/00001"]
    assert mos(status="completed") == ["WH/MO/00003", "WH/MO/00001"]
    assert mos(mo="00002") == ["WH/MO/00002"]
    assert mos(mo="%") == ["WH/MO/1%_x"]  # a wildcard typed in the form is a literal character
    assert mos(mo="wh/mo/0000", **{"from": "2026-03-02", "to": "2026-03-02"}) == ["WH/MO/00002"]
    with reader() as s:
        rows, total = queries.history(s, views.parse_history_query({}, []), page_size=None)
    assert total == 4 and len(rows) == 4  # the CSV export takes every row


def test_shared_actions_audit_the_console_user(db: tuple[sessionmaker[Session], sessionmaker[Session]]) -> None:
    writer, _ = db
    with pytest.raises(ActionRefused, match="retry it instead"), transaction(writer) as s:
        cancel_batch(s, "WH/MO/00009", actor="operator:alice", via="console")
    with transaction(writer) as s:
        result = retry_batch(s, "WH/MO/00009", actor="operator:alice", via="console", client="10.0.0.7")
    assert result.wake == "batch"
    with writer() as s:
        assert s.scalar(sa.select(MoBatch.state).where(MoBatch.mo_id == "WH/MO/00009")) == "finished"
        [event] = s.scalars(sa.select(AuditEvent).where(AuditEvent.actor == "operator:alice")).all()
    assert (event.from_state, event.to_state, event.action) == ("attention", "finished", "transition")
    assert event.detail["via"] == "console" and event.detail["client"] == "10.0.0.7"
    assert event.detail["previous_error"] == "Odoo refused"
    with pytest.raises(ActionRefused, match="not attention"), transaction(writer) as s:
        retry_batch(s, "WH/MO/00009", actor="operator:alice", via="console")
