"""The worker base's loop (shared/service.py): the database policy, wake-ups, message hand-over and the one
stall rule, without a database (OperationalError is what psycopg2 raises through SQLAlchemy when PostgreSQL
is away)."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from shared.mqtt.client import Delivery, Message
from shared.service import STALL_GRACE_S, DatabaseWorkerSettings, InboxLoop, Loop, Worker

DOWN = OperationalError("SELECT 1", {}, Exception("connection refused"))


def run_in_thread(loop: Loop) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_a_database_outage_marks_the_loop_and_is_retried_after_the_back_off() -> None:
    outcomes = [DOWN, DOWN, None]
    calls: list[float] = []
    health: list[bool] = []
    loop: Loop

    def step() -> float:
        calls.append(time.monotonic())
        health.append(loop.db_ok)
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return 60.0

    loop = Loop("t", step)
    stop, thread = run_in_thread(loop)
    deadline = time.monotonic() + 10
    while len(calls) < 4 and time.monotonic() < deadline:
        loop.wake()
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert health[:4] == [True, False, False, True]  # red while PostgreSQL is away, green once it answers
    assert loop.db_ok


def test_a_bug_ends_the_loop_unless_it_keeps_going() -> None:
    def bug() -> float:
        raise KeyError("x")

    with pytest.raises(KeyError):
        Loop("main", bug).run(threading.Event())
    survivor = Loop("reporter", bug, keep_going=True)
    stop, thread = run_in_thread(survivor)
    time.sleep(0.1)
    assert thread.is_alive() and survivor.db_ok
    stop.set()
    survivor.wake()
    thread.join(5)
    assert not thread.is_alive()


def test_wake_runs_the_step_before_its_delay_and_stop_ends_the_sleep() -> None:
    steps: list[float] = []

    def step() -> float:
        steps.append(time.monotonic())
        return 60.0

    loop = Loop("t", step)
    stop, thread = run_in_thread(loop)
    while not steps:
        time.sleep(0.01)
    loop.wake()
    started = time.monotonic()
    while len(steps) < 2 and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert len(steps) == 2 and steps[1] - steps[0] < 5
    stop.set()
    thread.join(2)  # the sleep looks at stop at least once a second
    assert not thread.is_alive()


def test_the_inbox_loop_runs_handlers_on_its_own_thread_and_survives_a_database_outage() -> None:
    inbox: queue.Queue[Delivery] = queue.Queue()
    ran: list[tuple[str, str]] = []
    failures = [DOWN]

    def handle(msg: Message) -> None:
        if failures:
            raise failures.pop()
        ran.append((msg.topic, threading.current_thread().name))

    loop = InboxLoop("main", lambda: 60.0, inbox)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), name="worker-main", daemon=True)
    thread.start()
    for topic in ("a", "b"):
        inbox.put(Delivery(handle, Message(topic, b"{}", False)))
    deadline = time.monotonic() + 10
    while len(ran) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert ran == [("b", "worker-main")]  # "a" met the outage (not stored = not acked: the PLC sends it again)
    assert loop.db_ok


class Idle(Worker[DatabaseWorkerSettings]):
    service = "idle"

    def step(self) -> float:
        return 30.0

    def health_checks(self) -> dict[str, str | None]:
        return {"odoo": None}


def test_one_stall_rule_and_the_health_checks_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("shared.service.time.monotonic", lambda: clock[0])
    worker = Idle(DatabaseWorkerSettings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    try:
        worker.main_loop.beat()
        assert worker.health() == {"healthy": True, "problems": [], "database_ok": True}
        clock[0] += STALL_GRACE_S + 1  # due at once (no step yet), and nothing happened since
        body = worker.health()
        assert body["problems"] == [f"loop: stalled for more than {STALL_GRACE_S:g} s"] and not body["healthy"]
        worker.beat()  # a long step's unit of work is progress
        assert worker.health()["healthy"]
        worker.main_loop.db_ok = False
        assert worker.health()["problems"] == ["database: unavailable"]
    finally:
        worker.engine.dispose()
