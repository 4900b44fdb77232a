"""The console's database side against PostgreSQL: page sessions cannot write, history search filters as the
form says (MO substring with LIKE wildcards taken literally, status, dates, paging), the shared operator
actions (batches, manual weighings) fit the row's state and audit with the actor the console names, and
logouts are read back while their sessions could still be valid."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from services.console import queries, views
from shared.db.migrate import upgrade
from shared.db.models import AuditEvent, ManualWeighing, MoBatch, MoHistory
from shared.db.operator_actions import (
    ActionRefused,
    cancel_batch,
    give_up_weighing,
    retry_batch,
    retry_weighing,
)
from shared.db.session import make_engine, make_session_factory, transaction
from tests.support.procs import console

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


def _weighing(item: int, **cols: object) -> ManualWeighing:
    return ManualWeighing(
        event_id=f"ev{item}",
        item=item,
        batch=1,
        mo_id="WH/MO/00009",
        product_id=997,
        kg=Decimal("2.50"),
        acked_at=T0,
        **cols,
    )


def test_weighing_actions_fit_the_state_and_audit_the_user(
    db: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    writer, reader = db
    with transaction(writer) as s:
        parked = _weighing(1, attention_reason="product 997 is not a raw component", attention_at=T0,
                           outcome_unknown=True)  # fmt: skip
        part = _weighing(2, reported_at=T0, applied_kg=Decimal("1.00"), attention_reason="short", attention_at=T0)
        booked = _weighing(3, reported_at=T0, applied_kg=Decimal("2.50"))
        s.add_all([parked, part, booked])
        s.flush()
        ids = parked.id, part.id, booked.id
    # Booked in part: never posted again, only closed; booked in full: nothing to do.
    with pytest.raises(ActionRefused, match="a retry would post it again"), transaction(writer) as s:
        retry_weighing(s, ids[1], actor="operator:alice", via="console")
    with pytest.raises(ActionRefused, match="not in attention"), transaction(writer) as s:
        give_up_weighing(s, ids[2], actor="operator:alice", via="console")
    with pytest.raises(ActionRefused, match="not a weighing id"), transaction(writer) as s:
        retry_weighing(s, "12; DROP", actor="operator:alice", via="console")

    with transaction(writer) as s:
        result = retry_weighing(s, str(ids[0]), actor="operator:alice", via="console", client="10.0.0.7")
    assert (result.wake, result.subject, result.event_id) == ("weighing", str(ids[0]), "ev1")
    with transaction(writer) as s:  # parked again by failure_monitor, then given up
        s.execute(sa.update(ManualWeighing).where(ManualWeighing.id == ids[0]).values(attention_reason="again",
                                                                                     attention_at=T0))  # fmt: skip
    with transaction(writer) as s:
        gone = give_up_weighing(s, ids[0], actor="operator:alice", via="console")
        closed = give_up_weighing(s, ids[1], actor="operator:alice", via="console")
    assert gone.wake is None and "0 of 2.50 kg booked" in gone.message and "1.00 of 2.50 kg" in closed.message
    with reader() as s:
        rows = {w.id: w for w in s.scalars(sa.select(ManualWeighing))}
        events = s.execute(
            sa.select(AuditEvent.action, AuditEvent.detail)
            .where(AuditEvent.actor == "operator:alice")
            .order_by(AuditEvent.id)
        ).all()
        # failure_monitor's claim skips both for good: reported, no attention.
        assert not claimable(s)
    assert rows[ids[0]].reported_at is not None and rows[ids[0]].applied_kg == 0
    assert rows[ids[0]].attention_reason is None and not rows[ids[0]].outcome_unknown
    assert rows[ids[1]].applied_kg == Decimal("1.00") and rows[ids[1]].attention_reason is None
    assert [a for a, _ in events] == ["weighing_retry", "weighing_give_up", "weighing_give_up"]
    assert events[0][1]["previous"] == "product 997 is not a raw component" and events[0][1]["via"] == "console"
    # The earlier post's outcome was unknown: the audit row says so (the person checks Odoo).
    assert events[1][1]["outcome_unknown"] is True and events[1][1]["previous"] == "again"


def claimable(s: Session) -> list[int]:
    return [int(i) for i in s.scalars(
        sa.select(ManualWeighing.id).where(ManualWeighing.reported_at.is_(None),
                                           ManualWeighing.attention_reason.is_(None))
    )]  # fmt: skip


def test_logouts_are_read_back_until_their_sessions_expire(
    db: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    writer, reader = db
    now = dt.datetime.now(dt.UTC)
    with transaction(writer) as s:
        for tag, until, age_h in (("live", now + dt.timedelta(hours=1), 1), ("expired", now - dt.timedelta(hours=1), 2),
                                  ("ancient", now + dt.timedelta(hours=1), 30)):  # fmt: skip
            s.add(AuditEvent(actor="console:alice", action=queries.LOGOUT_ACTION, at=now - dt.timedelta(hours=age_h),
                             detail={"revocation": tag, "until": int(until.timestamp())}))  # fmt: skip
    with reader() as s:
        found = queries.revoked_sessions(s, now, lifetime_s=12 * 3600)
    assert set(found) == {"live"}


def test_edgectl_gives_up_a_weighing_with_the_same_rule(
    db: tuple[sessionmaker[Session], sessionmaker[Session]], database_url: str, tmp_path: Path
) -> None:
    writer, reader = db
    with transaction(writer) as s:
        row = _weighing(4, attention_reason="MO WH/MO/00009 is done in Odoo", attention_at=T0)
        s.add(row)
        s.flush()
        weighing_id = row.id
    (tmp_path / "connection.env").write_text("")  # no ~/.config file of the machine's user
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MQTT_", "EDGECTL_"))}
    env |= {
        "EDGECTL_CONFIG": str(tmp_path / "connection.env"),
        "DATABASE_URL": database_url.replace("+psycopg2", ""),
    }

    def edgectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([console("edgectl"), *args], capture_output=True, text=True, timeout=60, env=env)

    done = edgectl("weighing-give-up", str(weighing_id))
    assert done.returncode == 0, done.stderr
    assert f"weighing {weighing_id}: given up (0.00 of 2.50 kg booked by the gateway)" in done.stdout
    again = edgectl("weighing-give-up", str(weighing_id))
    assert again.returncode == 4 and "not in attention" in again.stderr
    with reader() as s:
        [(actor, detail)] = s.execute(
            sa.select(AuditEvent.actor, AuditEvent.detail).where(AuditEvent.action == "weighing_give_up")
        ).all()
    assert actor == "operator" and detail["via"] == "edgectl" and detail["previous"].startswith("MO WH/MO/00009")
