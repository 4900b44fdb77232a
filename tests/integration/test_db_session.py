"""Surviving a broken connection: a backend killed mid-transaction, and a real PostgreSQL restart (a private
throw-away cluster, so the machine's shared server is never restarted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError

from deploy.servers import PostgresCluster
from shared.db.migrate import upgrade
from shared.db.models import MoBatch
from shared.db.session import is_disconnect, make_engine, make_session_factory, transaction
from tests.support.servers import start_restartable_cluster

T = TypeVar("T")


def _batch(mo_id: str) -> MoBatch:
    return MoBatch(mo_id=mo_id, finished_goods="JF", bom_name="JF", consumption=Decimal(1000))


def _count(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        n = int(c.scalar(sa.text("SELECT count(*) FROM mo_batch")) or 0)
    engine.dispose()
    return n


def _again_after_disconnect(work: Callable[[], T], attempts: int, pause_s: float) -> T:
    """What a service's run loop does with a lost connection: the whole unit of work runs again later."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if not is_disconnect(exc) or attempt == attempts:
                raise
            time.sleep(pause_s)
    raise AssertionError("unreachable")


def test_a_unit_of_work_runs_again_after_its_backend_was_killed_mid_transaction(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    calls = 0

    def work() -> int:
        nonlocal calls
        calls += 1
        with transaction(factory) as s:
            s.add(_batch(f"WH/MO/9{calls:04d}"))
            s.flush()  # the first attempt's row is written but not committed when its backend dies
            if calls == 1:
                pid = s.scalar(sa.text("SELECT pg_backend_pid()"))
                with admin.connect() as c:
                    c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            s.execute(sa.text("SELECT 1"))
            return calls

    assert _again_after_disconnect(work, attempts=5, pause_s=0.05) == 2
    assert _count(database_url) == 1  # the killed attempt left nothing behind, the retry committed once
    admin.dispose()
    engine.dispose()


def test_without_running_it_again_the_error_reaches_the_caller(database_url: str) -> None:
    """The same kill without a second run fails: the test above is not passing by accident."""
    upgrade(database_url)
    engine = make_engine(database_url)
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with pytest.raises(OperationalError), transaction(make_session_factory(engine)) as s:
        pid = s.scalar(sa.text("SELECT pg_backend_pid()"))
        with admin.connect() as c:
            c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        s.execute(sa.text("SELECT 1"))
    admin.dispose()
    engine.dispose()


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL (deploy/servers.py) that this test may stop and start at will."""
    c = start_restartable_cluster("pg-restart-")
    yield c
    c.destroy()


@pytest.mark.slow
def test_a_postgresql_restart_costs_a_retry_not_the_work(cluster: PostgresCluster) -> None:
    upgrade(cluster.admin_url())
    engine = make_engine(cluster.admin_url(), pool_size=2, connect_timeout_s=2)
    factory = make_session_factory(engine)
    with transaction(factory) as s:  # the pool now holds a connection to the server about to die
        s.add(_batch("WH/MO/00001"))

    cluster.stop()
    restarted = threading.Timer(1.5, cluster.start)
    restarted.start()
    attempts = 0

    def work() -> str:
        nonlocal attempts
        attempts += 1
        with transaction(factory) as s:
            s.add(_batch("WH/MO/00002"))
        return "stored"

    started = time.monotonic()
    try:
        assert _again_after_disconnect(work, attempts=15, pause_s=0.3) == "stored"
    finally:
        restarted.join()
    assert attempts > 1 and time.monotonic() - started >= 1.0  # it really ran into the outage
    with transaction(factory) as s:  # pre-ping: the old pooled connections are replaced silently
        assert s.scalar(sa.select(sa.func.count()).select_from(MoBatch)) == 2
    engine.dispose()


def test_database_pool_size_and_timeout_settings_build_the_engine(database_url: str) -> None:
    """DATABASE_POOL_SIZE and DATABASE_CONNECT_TIMEOUT_S reach the engine the services use."""
    from shared.db.session import DatabaseSettings

    settings = DatabaseSettings(database_url=database_url, database_pool_size=4, database_connect_timeout_s=7)
    engine = settings.make_engine(application_name="pool-test")
    try:
        assert engine.pool.size() == 4  # type: ignore[attr-defined]
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).one()
            assert row[0] == "pool-test"
            assert conn.connection.dbapi_connection.get_dsn_parameters()["connect_timeout"] == "7"  # type: ignore[union-attr]
    finally:
        engine.dispose()
