"""Real servers for integration tests: a private Mosquitto per test, a fresh PostgreSQL database per test.

Nothing here assumes a service another test left behind. PostgreSQL: the machine's server at
TEST_PG_ADMIN_URL (default postgres@127.0.0.1:5432) when reachable, else a throw-away cluster via initdb.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from deploy.servers import PostgresCluster, free_port, server_account, spawn_mosquitto

__all__ = ["Broker", "admin_url", "free_port", "fresh_database", "start_mosquitto", "start_restartable_cluster"]


@dataclass
class Broker:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    config: str

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def url_for(self, user: str, password: str) -> str:
        return f"mqtt://{user}:{password}@{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.process = _spawn_mosquitto(self.workdir, self.port)


def _spawn_mosquitto(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    return spawn_mosquitto(workdir / "mosquitto.conf", workdir / "mosquitto.log", port)


def start_mosquitto(extra_config: str = "", anonymous: bool = True, workdir: Path | None = None) -> Broker:
    """Start a private broker on a free port. `extra_config` is appended to the listener block."""
    wd = workdir or Path(tempfile.mkdtemp(prefix="mosq-"))
    port = free_port()
    conf = (
        f"listener {port} 127.0.0.1\n"
        f"allow_anonymous {'true' if anonymous else 'false'}\n"
        f"persistence true\npersistence_location {wd}/\n"
        "max_queued_messages 100000\n"
        "set_tcp_nodelay true\n"
        f"{extra_config}\n"
    )
    (wd / "mosquitto.conf").write_text(conf)
    return Broker("127.0.0.1", port, wd, _spawn_mosquitto(wd, port), conf)


# ---------------------------------------------------------------- PostgreSQL

_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
_local_cluster: dict[str, str] = {}


def _reachable(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def start_restartable_cluster(prefix: str = "pg-") -> PostgresCluster:
    """A private, trusted cluster of one test's own (own data dir and port): stopping or crashing it never
    touches the machine's server. The caller destroys it."""
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix=prefix)), free_port(), server_account())
    cluster.init()
    cluster.start()
    return cluster


def _start_local_cluster() -> str:
    """A private cluster for machines without a running PostgreSQL, shared by the whole test run."""
    if "url" not in _local_cluster:
        _local_cluster["url"] = start_restartable_cluster().admin_url()
    return _local_cluster["url"]


def admin_url() -> str:
    return _ADMIN_URL if _reachable(_ADMIN_URL) else _start_local_cluster()


@contextlib.contextmanager
def fresh_database(prefix: str = "t") -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    admin = admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
