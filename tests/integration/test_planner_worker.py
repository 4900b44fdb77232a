"""mo_planner in-process (tests/support/planner.py): its refill from Odoo, its dispatch into a free slot and
its slot tracking after a finished batch, against a real PostgreSQL, Mosquitto, the Odoo simulator over HTTP and
plc-sim over UDP behind the real gateway. The worker's loop is driven on the test's thread, so its own state
(the slots it tracks, the commands in flight) is checked next to what the database, the broker and the PLC show.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from shared.db.columns import target_column
from shared.db.models import MoHistory
from shared.mqtt.payloads import AckSlot, WriteBatch
from shared.odoo.mapping import mo_to_batch
from shared.odoo.models import Mo
from shared.plc.memory_map import load_memory_map
from tests.support.odoo import make_client
from tests.support.planner import PlannerHarness
from tests.support.servers import Broker

CODES = load_memory_map().equipment_codes
ON_PLC = ("written", "accepted", "running")


@pytest.fixture
def harness_args(tmp_path: Path, broker: Broker, database_url: str) -> tuple[Path, Broker, str]:
    return tmp_path, broker, database_url


def dosable_in_odoo_order(h: PlannerHarness) -> list[str]:
    """The confirmed MOs the planner may queue, in the order Odoo lists them."""
    return [mo.mo_id for mo in make_client(h.odoo).fetch_queue() if mo_to_batch(mo, CODES).targets]


@pytest.fixture
def no_plc(harness_args: tuple[Path, Broker, str]) -> Iterator[PlannerHarness]:
    with PlannerHarness(*harness_args, slots=1, lookahead=2, odoo_mos=6, plc=False) as h:
        yield h


def test_refill_queues_odoo_mos_up_to_one_per_slot_plus_the_lookahead(no_plc: PlannerHarness) -> None:
    h = no_plc
    h.run_until(lambda: len(h.batches()) >= 3, 20, what="three MOs queued")
    h.run_for(2.5)  # more than the refill gap: a refill with the queue full adds nothing
    rows = h.batches()
    expected = dosable_in_odoo_order(h)[:3]
    assert [r.mo_id for r in rows] == expected
    assert all(r.state == "queued" and r.slot is None and r.write_request_id is None for r in rows)
    odoo = {mo.mo_id: mo for mo in make_client(h.odoo).fetch_queue()}
    for row in rows:
        batch = mo_to_batch(odoo[row.mo_id], CODES)
        assert float(row.consumption) == pytest.approx(batch.quantity)
        for code, kg in batch.targets.items():
            assert float(getattr(row, target_column(code))) == pytest.approx(kg, abs=0.005), code
        assert [a.action for a in h.audit(row.mo_id)] == ["queued"]
    # Announced once each; nothing sent to a PLC whose slots the planner has never seen.
    assert sorted(e["mo_id"] for e in h.events("queued")) == sorted(expected)
    assert h.planner.commands.in_flight(WriteBatch) == []
    assert h.planner.slots.write_snaps == {} and h.planner.slots.read_snaps == {}


@pytest.fixture
def two_slots(harness_args: tuple[Path, Broker, str]) -> Iterator[PlannerHarness]:
    # Batches long enough to stay on the PLC for the whole test.
    with PlannerHarness(*harness_args, slots=2, lookahead=1, odoo_mos=5, batch_seconds=120) as h:
        yield h


def _record_list_limits(h: PlannerHarness) -> list[tuple[int, int]]:
    """(limit asked, MOs returned) of every MO list the planner's feed fetches (through the real HTTP)."""
    client = h.planner.refill.feed.client
    fetch = client.fetch_queue
    calls: list[tuple[int, int]] = []

    def recorded(states: Iterable[str] = ("confirmed",), *, limit: int = 0) -> list[Mo]:
        mos = fetch(states, limit=limit)
        calls.append((limit, len(mos)))
        return mos

    client.fetch_queue = recorded  # type: ignore[method-assign]
    return calls


@pytest.fixture
def many_mos(harness_args: tuple[Path, Broker, str]) -> Iterator[PlannerHarness]:
    with PlannerHarness(*harness_args, slots=1, lookahead=2, odoo_mos=60, plc=False) as h:
        yield h


def test_refill_asks_odoo_for_a_window_of_its_list_not_every_confirmed_mo(many_mos: PlannerHarness) -> None:
    """Issue 16: the whole list (hundreds of MOs on a plant) every refill cost Odoo a long request per second
    and delayed the consumption reports waiting behind it."""
    h = many_mos
    calls = _record_list_limits(h)
    h.run_until(lambda: len(h.batches()) >= 3, 20, what="three MOs queued")
    assert [r.mo_id for r in h.batches()] == dosable_in_odoo_order(h)[:3]
    # Nothing held yet: the slot and the look-ahead (3) plus the margin (10).
    assert calls and calls[0] == (13, 13)
    assert all(0 < limit <= 16 for limit, _ in calls), calls


def test_refill_looks_further_down_the_list_when_its_top_is_closed(many_mos: PlannerHarness) -> None:
    """MOs archived here that Odoo still lists as confirmed fill the top of the window: the window grows until
    the queue is full, and shrinks back afterwards."""
    h = many_mos
    closed = dosable_in_odoo_order(h)[:20]
    with Session(h.engine) as s, s.begin():
        for mo_id in closed:
            s.add(
                MoHistory(
                    mo_id=mo_id,
                    status="completed",
                    finished_goods="JF 01",
                    bom_name="JF 01",
                    consumption=Decimal("1000.00"),
                )
            )
    calls = _record_list_limits(h)
    h.run_until(lambda: len(h.batches()) >= 3, 30, what="three MOs queued past the closed ones")
    assert [r.mo_id for r in h.batches()] == dosable_in_odoo_order(h)[20:23]
    assert [limit for limit, _ in calls[:2]] == [13, 26]
    assert h.planner.refill.window_factor == 1


def test_dispatch_writes_the_oldest_queued_batches_into_the_free_slots_only(two_slots: PlannerHarness) -> None:
    h = two_slots
    h.run_until(lambda: len(h.batches(state="running")) == 2, 40, what="a batch dosing in each slot")
    h.run_for(1.0)
    order = dosable_in_odoo_order(h)
    on_plc = [r for r in h.batches() if r.state in ON_PLC]
    assert sorted(r.mo_id for r in on_plc) == sorted(order[:2]), "the two oldest queued MOs"
    assert sorted(r.slot for r in on_plc) == [1, 2]
    for row in on_plc:
        assert h.plc_slot(row.slot)["mo_id"] == row.mo_id, "the PLC holds what the database says"
        assert row.write_request_id is not None and row.written_at is not None
        assert next(a.to_state for a in h.audit(row.mo_id) if a.action == "transition") == "written"
    # Both slots are taken: the next MOs wait in the queue, not assigned, nothing written for them.
    waiting = h.batches(state="queued")
    assert waiting and [r.mo_id for r in waiting] == order[2 : 2 + len(waiting)]
    assert all(r.slot is None and r.write_request_id is None for r in waiting)
    assert {e["mo_id"] for e in h.events("written")} == {r.mo_id for r in on_plc}
    assert h.planner.commands.in_flight(WriteBatch) == []  # every write answered
    for row in on_plc:  # what the planner tracks: each slot shows its batch, not acknowledged: not free
        assert h.planner.slots.read_snaps[row.slot].mo_id == row.mo_id
        assert not h.planner.slots.free(row.slot, occupied_in_db=False)


@pytest.fixture
def one_slot(harness_args: tuple[Path, Broker, str]) -> Iterator[PlannerHarness]:
    with PlannerHarness(*harness_args, slots=1, lookahead=1, odoo_mos=4, batch_seconds=1.0) as h:
        yield h


def test_a_finished_batch_is_stored_then_acknowledged_and_its_slot_takes_the_next(
    one_slot: PlannerHarness,
) -> None:
    h = one_slot
    order = dosable_in_odoo_order(h)
    first, second = order[0], order[1]
    h.run_until(
        lambda: [r for r in h.batches(mo_id=first) if r.acked_at is not None],
        60,
        what="the first batch stored and acknowledged",
    )
    [row] = h.batches(mo_id=first)
    assert row.state == "finished" and row.slot == 1
    assert row.result_fingerprint is not None and row.finished_at is not None
    assert row.actual_weight_quantity_finished_goods is not None and row.actual_weight_quantity_finished_goods > 0
    assert row.finished_at <= row.acked_at, "stored before it was acknowledged"
    assert h.planner.slots.acked_mo[1] == first
    assert h.planner.commands.in_flight(AckSlot) == []
    [finished] = h.events("finished")
    assert finished["mo_id"] == first and finished["weight"] == pytest.approx(
        float(row.actual_weight_quantity_finished_goods)
    )
    # The ack frees the slot: the next queued MO goes into it.
    h.run_until(
        lambda: [r for r in h.batches(mo_id=second) if r.state in ON_PLC],
        30,
        what="the next batch written into the freed slot",
    )
    [nxt] = h.batches(mo_id=second)
    assert nxt.slot == 1
    h.run_until(lambda: h.plc_slot(1)["mo_id"] == second, 10, what="the PLC latched the next batch")
    plc = h.plc_slot(1)
    assert plc["batches_acked"] >= 1 and plc["violations"] == 0
