"""services/odoo_sync/burst.py: a burst of due rows is worked side by side, never wider than asked, and an
error in any thread reaches the worker's own thread; plus the settings rule that backs it with connections."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from services.odoo_sync.burst import BurstDrain
from services.odoo_sync.settings import SyncSettings


class Rows:
    """`n` due rows; a unit claims one and holds it until `overlap` units are in flight at once (or every row is
    claimed, or 2 s passed), so how many run side by side is observable without timing."""

    def __init__(self, n: int, *, overlap: int = 1, fail_at: int | None = None) -> None:
        self.left = n
        self.overlap = overlap
        self.fail_at = fail_at
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.handled = 0
        self.gate = threading.Event()

    def unit(self, claimed_one: Callable[[], None]) -> bool:
        with self.lock:
            if self.left == 0:
                self.gate.set()
                return False
            self.left -= 1
            number = self.left
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.in_flight >= self.overlap or self.left == 0:
                self.gate.set()
        claimed_one()
        try:
            if number == self.fail_at:
                raise RuntimeError("Odoo call blew up")
            self.gate.wait(2)
            with self.lock:
                self.handled += 1
            return True
        finally:
            with self.lock:
                self.in_flight -= 1


def drain(rows: Rows, width: int) -> tuple[BurstDrain, list[int]]:
    beats: list[int] = []
    return BurstDrain(rows.unit, width=width, on_progress=lambda: beats.append(1), name="t"), beats


@pytest.mark.parametrize("width", [2, 4])
def test_a_burst_is_worked_side_by_side_up_to_the_width(width: int) -> None:
    rows = Rows(6, overlap=width)
    burst, beats = drain(rows, width)
    burst.run()
    burst.close()
    assert rows.handled == 6 and len(beats) == 6
    assert rows.most_in_flight == width


def test_width_one_works_rows_one_after_another_on_the_callers_thread() -> None:
    rows = Rows(3)
    seen: set[int] = set()
    original = rows.unit

    def unit(claimed_one: Callable[[], None]) -> bool:
        seen.add(threading.get_ident())
        return original(claimed_one)

    burst = BurstDrain(unit, width=1, on_progress=lambda: None, name="t")
    burst.run()
    assert rows.handled == 3 and rows.most_in_flight == 1
    assert seen == {threading.get_ident()}


def test_nothing_due_costs_one_claim() -> None:
    calls: list[int] = []

    def none_due(claimed_one: Callable[[], None]) -> bool:
        calls.append(1)
        return False

    burst = BurstDrain(none_due, width=4, on_progress=lambda: None, name="t")
    burst.run()
    burst.close()
    assert calls == [1]


def test_an_error_in_a_report_thread_is_raised_on_the_workers_thread_after_all_stopped() -> None:
    rows = Rows(4, overlap=4, fail_at=2)
    burst, _ = drain(rows, 4)
    with pytest.raises(RuntimeError, match="blew up"):
        burst.run()
    assert rows.in_flight == 0  # every thread had stopped before run() raised
    rows.left, rows.fail_at = 2, None
    burst.run()  # the drain is usable again: the worker's database policy retries its step
    burst.close()


def test_a_width_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="width"):
        BurstDrain(lambda claimed: False, width=0, on_progress=lambda: None, name="t")


def _settings(**overrides: object) -> SyncSettings:
    values: dict[str, object] = {
        "database_url": "postgresql://u@127.0.0.1:5432/x",
        "odoo_url": "http://127.0.0.1:1",
        "odoo_db": "plant",
        "odoo_login": "admin",
        "odoo_password": "admin",
        "mqtt_url": "mqtt://127.0.0.1:1",
        **overrides,
    }
    return SyncSettings(**values)  # type: ignore[arg-type]


def test_each_report_in_flight_gets_a_connection_and_the_loop_one_more() -> None:
    assert _settings().sync_concurrency < _settings().database_pool_size  # the defaults fit
    assert _settings(sync_concurrency=1, database_pool_size=2).sync_concurrency == 1
    with pytest.raises(ValidationError, match="DATABASE_POOL_SIZE >= 5"):
        _settings(sync_concurrency=4, database_pool_size=4)
    with pytest.raises(ValidationError):
        _settings(sync_concurrency=0)
