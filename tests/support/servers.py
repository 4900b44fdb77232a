"""Real servers for integration tests: a private Mosquitto per test, a fresh PostgreSQL database per test.

Nothing here assumes a service another test left behind. PostgreSQL: the machine's server at
TEST_PG_ADMIN_URL (default postgres@127.0.0.1:5432) when reachable, else a throw-away cluster via initdb.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_tcp(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not found:
        raise RuntimeError("mosquitto is not installed (./scripts/test installs it with apt when root)")
    return found


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
    log = open(workdir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(workdir / "mosquitto.conf")], stdout=log, stderr=log)
    wait_for_tcp("127.0.0.1", port)
    return proc


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


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise RuntimeError(f"{name} not found: install postgresql")


def _start_local_cluster() -> str:
    """A private cluster for machines without a running PostgreSQL (initdb as a non-root user)."""
    if "url" in _local_cluster:
        return _local_cluster["url"]
    datadir = Path(tempfile.mkdtemp(prefix="pg-"))
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:
        os.chown(datadir, 65534, 65534)
        run_as = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(datadir / "data"), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            _pg_bin("pg_ctl"),
            "-D",
            str(datadir / "data"),
            "-l",
            str(datadir / "log"),
            "-w",
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    _local_cluster["url"] = url
    return url


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
