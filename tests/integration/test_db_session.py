"""Surviving a broken connection: a backend killed mid-transaction, and a real PostgreSQL restart (a private
throw-away cluster, so the machine's shared server is never restarted)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from shared.db.migrate import upgrade
from shared.db.models import MoBatch
from shared.db.session import make_engine, make_session_factory, retry_idempotent, transaction
from tests.support.servers import free_port


def _batch(mo_id: str) -> MoBatch:
    return MoBatch(mo_id=mo_id, finished_goods="JF", bom_name="JF", consumption=Decimal(1000))


def _count(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        n = int(c.scalar(sa.text("SELECT count(*) FROM mo_batch")) or 0)
    engine.dispose()
    return n


def test_retry_survives_a_backend_killed_mid_transaction(database_url: str) -> None:
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

    assert retry_idempotent(work, backoff=0.05) == 2
    assert _count(database_url) == 1  # the killed attempt left nothing behind, the retry committed once
    admin.dispose()
    engine.dispose()


def test_without_retry_the_error_reaches_the_caller(database_url: str) -> None:
    """The same kill without retry_idempotent fails: the retry test above is not passing by accident."""
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


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        pytest.skip(f"{name} not installed")
    return str(found)


class Cluster:
    """A private PostgreSQL (initdb) that this test may stop and start at will."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pg-restart-"))
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run it as nobody
            os.chown(self.dir, 65534, 65534)
            self.run_as = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        self._run(_pg_bin("initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust")
        self.start()

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=60)

    def _ctl(self, *args: str) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", *args)

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.destroy()


@pytest.mark.slow
def test_a_postgresql_restart_costs_a_retry_not_the_work(cluster: Cluster) -> None:
    upgrade(cluster.url)
    engine = make_engine(cluster.url, pool_size=2, connect_timeout_s=2)
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
        assert retry_idempotent(work, attempts=10, backoff=0.2, max_backoff=1.0) == "stored"
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
