"""Issue 11.2: DATABASE_POOL_SIZE, DATABASE_CONNECT_TIMEOUT_S and the service's name reach PostgreSQL.

`.env.example` documents both settings and `DatabaseSettings.make_engine()` applies them, but a service that
builds its engine from the bare URL silently ignores them (the workers did until the worker base owned the
engine; the console's page engine still had a fixed pool of 3). Each worker runs here in-process against a real
PostgreSQL; what PostgreSQL itself reports (pg_stat_activity) is the evidence, not the engine's own view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.console.app import Console
from services.console.auth import hash_password
from services.console.settings import ConsoleSettings
from services.failure_monitor.app import FailureMonitor
from services.failure_monitor.settings import FailureSettings
from services.mo_planner.app import Planner
from services.mo_planner.settings import PlannerSettings
from services.odoo_sync.app import Syncer
from services.odoo_sync.settings import SyncSettings
from shared.db.migrate import upgrade
from shared.service import MqttWorker, WorkerSettings
from tests.support.procs import wait_until

POOL_SIZE = 6  # not a default (3; odoo_sync 5), so an engine built from the bare URL shows
CONNECT_TIMEOUT_S = 7  # not the default (5)
WORKERS: dict[str, tuple[type[WorkerSettings], Callable[[Any], MqttWorker[Any]]]] = {
    "odoo_sync": (SyncSettings, Syncer),
    "failure_monitor": (FailureSettings, FailureMonitor),
    "mo_planner": (PlannerSettings, Planner),
}
# Nothing answers here: the workers' broker link and Odoo calls fail, their database work does not.
UNREACHABLE: dict[str, Any] = {
    "mqtt_url": "mqtt://127.0.0.1:1",
    "odoo_url": "http://127.0.0.1:1",
    "odoo_db": "plant",
    "odoo_login": "admin",
    "odoo_password": "admin",
    "odoo_connect_timeout": 0.2,
}


@pytest.fixture
def migrated(database_url: str) -> Iterator[tuple[str, sa.Engine]]:
    upgrade(database_url)
    observer = sa.create_engine(database_url)
    yield database_url, observer
    observer.dispose()


def sessions_named(observer: sa.Engine, name: str) -> int:
    with observer.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        )


def database_settings(url: str) -> dict[str, Any]:
    return {"database_url": url, "database_pool_size": POOL_SIZE, "database_connect_timeout_s": CONNECT_TIMEOUT_S}


def assert_pool_reaches_postgresql(engine: sa.Engine, observer: sa.Engine, name: str) -> None:
    """The pool holds POOL_SIZE connections at once, each a PostgreSQL session named `name` and opened with
    the configured connect timeout."""
    assert engine.pool.size() == POOL_SIZE  # type: ignore[attr-defined]
    held = [engine.connect() for _ in range(POOL_SIZE)]
    try:
        assert sessions_named(observer, name) >= POOL_SIZE
        for conn in held:
            dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
            assert dsn["connect_timeout"] == str(CONNECT_TIMEOUT_S)
    finally:
        for conn in held:
            conn.close()


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_a_running_worker_uses_its_database_settings_and_names_itself(
    name: str, migrated: tuple[str, sa.Engine]
) -> None:
    url, observer = migrated
    settings_cls, worker_cls = WORKERS[name]
    worker = worker_cls(settings_cls(**UNREACHABLE, **database_settings(url)))
    assert worker.service == name
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,), name=f"{name}-under-test")
    runner.start()
    try:
        # The worker's own loops reach PostgreSQL under its name (pool_pre_ping keeps the session open).
        wait_until(lambda: sessions_named(observer, name) >= 1, 30, what=f"a {name} session")
        assert_pool_reaches_postgresql(worker.engine, observer, name)
        assert worker.health()["database_ok"] is True
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive(), f"{name} did not stop"
    wait_until(lambda: sessions_named(observer, name) == 0, 10, what=f"{name} sessions closed")


def test_the_console_page_engine_uses_the_database_pool_size(
    migrated: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    url, observer = migrated
    users = tmp_path / "users"
    users.write_text(f"op:operator:{hash_password('secret-password')}\n")
    console = Console(
        ConsoleSettings(
            mqtt_url="mqtt://127.0.0.1:1",
            console_users_file=users,
            console_secret_key="k" * 32,
            **database_settings(url),
        )
    )
    try:
        assert_pool_reaches_postgresql(console.read_engine, observer, "console")
    finally:
        console.read_engine.dispose()
        console.action_engine.dispose()
