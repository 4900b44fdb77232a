"""The manual_weighing table holds the identity rule itself (real PostgreSQL, migrated): one unacknowledged row
per content id, any number once acknowledged; and the claim serialises posts per MO and product."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.claim import claim_weighings
from shared.db.migrate import upgrade
from shared.db.models import ManualWeighing
from shared.db.repo import now
from shared.db.session import make_engine, make_session_factory, transaction


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def weighing(event_id: str = "abc123", **kw: object) -> ManualWeighing:
    values: dict[str, object] = {
        "event_id": event_id,
        "item": 1,
        "batch": 1,
        "mo_id": "WH/MO/00011",
        "product_id": 997,
        "kg": Decimal("2.35"),
        **kw,
    }
    return ManualWeighing(**values)


def test_one_unacknowledged_row_per_content_id_any_number_once_acknowledged(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add(weighing())
    with pytest.raises(IntegrityError, match="uq_manual_weighing_unacked_event_id"), transaction(db) as s:
        s.add(weighing())  # the same weighing delivered again
    with transaction(db) as s:
        row = s.scalars(select(ManualWeighing)).one()
        row.acked_at = now()
    with transaction(db) as s:
        s.add(weighing())  # the same content after the ack: a new weighing
    with transaction(db) as s:
        assert len(s.scalars(select(ManualWeighing)).all()) == 2


@pytest.mark.parametrize(
    "bad",
    [{"kg": Decimal("0")}, {"item": 0}, {"product_id": 0}, {"report_attempts": -1}],
)
def test_impossible_rows_are_refused(db: sessionmaker[Session], bad: dict[str, object]) -> None:
    with pytest.raises(IntegrityError), transaction(db) as s:
        s.add(weighing(**bad))


def test_a_report_needs_an_ack_and_an_applied_quantity(db: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError, match="reported_after_ack"), transaction(db) as s:
        s.add(weighing(reported_at=now(), applied_kg=Decimal("2.35")))
    with pytest.raises(IntegrityError, match="reported_has_applied"), transaction(db) as s:
        s.add(weighing(acked_at=now(), reported_at=now()))


def test_no_post_while_another_of_the_same_mo_and_product_is_unresolved(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        s.add(weighing("a1", acked_at=now(), outcome_unknown=True))  # a post of unknown outcome
        s.add(weighing("a2", acked_at=now()))  # same MO and product: must wait
        s.add(weighing("b1", acked_at=now(), product_id=800))  # another product: free
        s.add(weighing("c1", product_id=790))  # not acknowledged yet: never reported
    with transaction(db) as s:
        claimed = [w.event_id for w in claim_weighings(s, limit=10)]
    assert claimed == ["a1", "b1"]
    with transaction(db) as s:
        first = s.scalars(select(ManualWeighing).where(ManualWeighing.event_id == "a1")).one()
        first.outcome_unknown, first.reported_at, first.applied_kg = False, now(), Decimal("2.35")
    with transaction(db) as s:
        assert [w.event_id for w in claim_weighings(s, limit=10)] == ["a2", "b1"]
