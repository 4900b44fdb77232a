"""Embedded servers on free ports of 127.0.0.1: a private PostgreSQL cluster (initdb + pg_ctl) and a Mosquitto
process. One implementation for `./scripts/demo` (deploy/demo.py) and the tests (tests/support/servers.py, the
restart tests); the services never start servers, they connect to what they are configured with.

Standard library only: the demo's `--help` must work before the venv exists. As root, a server runs as an
unprivileged account (PostgreSQL refuses root outright).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ServerError(Exception):
    """A server could not be found, started or stopped; the message says what and where to look."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


_PORTS_BELOW = min(_ephemeral_range()[0], 32768)
_PORTS_FROM = 20000
_handed_out: set[int] = set()
_pick = random.Random()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port of 127.0.0.1 for a server started next, below the kernel's ephemeral range: a port the
    kernel handed out (bind to 0) and we released can be taken by any outgoing connection before the server
    binds it (a health server failed with EADDRINUSE in a full test run that way). Never the same port twice
    in one process."""
    for _ in range(500):
        port = _pick.randrange(_PORTS_FROM, _PORTS_BELOW)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise ServerError(f"no free port in {_PORTS_FROM}-{_PORTS_BELOW - 1} on 127.0.0.1")


def wait_for_tcp(
    port: int, timeout: float = 10.0, what: str = "server", alive: Callable[[], bool] = lambda: True
) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:`port`; raise when `alive()` turns false
    (the process died) or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if not alive():
            raise ServerError(f"{what} exited during start-up")
        time.sleep(0.05)
    raise ServerError(f"{what} does not listen on 127.0.0.1:{port} after {timeout:.0f}s")


def run(cmd: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; a failure raises ServerError with the tail of its output."""
    done = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-3000:]
        raise ServerError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done


# ---------------------------------------------------------------- running servers as an unprivileged user


@dataclass(frozen=True)
class RunAs:
    """The account a server drops to when started by root."""

    name: str
    uid: int
    gid: int

    def prefix(self) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]

    def can_reach(self, path: Path) -> bool:
        """Can this account traverse to `path`? (A repo under /root is 0700: nobody else gets in.)"""
        done = subprocess.run([*self.prefix(), "test", "-x", str(path)], capture_output=True, check=False)
        return done.returncode == 0


def server_account(preferred: Sequence[str] = ()) -> RunAs | None:
    """None when not root (servers run as the invoking user); else the first existing preferred account, or
    `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in (*preferred, "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise ServerError(f"running as root but none of the accounts {', '.join((*preferred, 'nobody'))} exist")


# ---------------------------------------------------------------- PostgreSQL


def _version_key(path: Path) -> list[int]:
    # /usr/lib/postgresql/<version>/bin/<name>: the newest version wins ("9.6" < "15").
    return [int(part) for part in path.parts[-3].split(".") if part.isdigit()]


def pg_bin(name: str) -> str:
    """A PostgreSQL server program (initdb, pg_ctl): on PATH, else the newest Debian install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_version_key)
    if candidates:
        return str(candidates[-1])
    raise ServerError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")


@dataclass
class PostgresCluster:
    """A private cluster in `home` (data/, postgresql.log) on `port`: TCP on 127.0.0.1 only, no unix socket
    (no path-length or /var/run/postgresql permission issues)."""

    home: Path
    port: int
    account: RunAs | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgresql.log"

    def _as_server(self, cmd: Sequence[str], what: str) -> None:
        prefix = self.account.prefix() if self.account else []
        # start_new_session: a Ctrl-C in the demo's terminal must not reach the server (it is stopped last).
        run([*prefix, *cmd], what, start_new_session=True, cwd=self.home, timeout=120)

    def init(self, *, superuser_password_file: Path | None = None, settings: Sequence[str] = ()) -> None:
        """initdb: superuser `postgres`, trusted without a password file, scram-sha-256 with one (a file
        the server account can read). `settings` are extra postgresql.conf lines."""
        if self.account:
            os.chown(self.home, self.account.uid, self.account.gid)
        auth = ["--auth=trust"]
        if superuser_password_file is not None:
            auth = [f"--pwfile={superuser_password_file}", "--auth=scram-sha-256"]
        self._as_server(
            [pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", *auth, "--encoding=UTF8", "--no-locale",
             "--no-instructions"],
            "initdb",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# deploy/servers.py\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n" + "".join(f"{line}\n" for line in settings)
            )

    def start(self) -> None:
        self._as_server(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"],
            f"PostgreSQL start (log: {self.log})",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` cuts every connection, `immediate` is a crash (recovery at the next start)."""
        self._as_server(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], "PostgreSQL stop"
        )

    def restart(self, down_s: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def running(self) -> bool:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except PermissionError:
            return True  # alive, run by the server account
        except (OSError, ValueError, IndexError):
            return False
        return True

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser's URL (no password: for a trusted cluster)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        """Stop as a crash would, then delete the cluster."""
        if self.running():
            with contextlib.suppress(ServerError):
                self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)


# ---------------------------------------------------------------- Mosquitto


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not found:
        raise ServerError("mosquitto not found: install it (apt-get install mosquitto)")
    return found


def spawn_mosquitto(
    config: Path, log: Path, port: int, *, new_session: bool = False, timeout: float = 15.0
) -> subprocess.Popen[bytes]:
    """Start `mosquitto -c config` (output appended to `log`) and wait until it listens on `port`.
    `new_session`: a Ctrl-C in the caller's terminal does not reach the broker (the demo stops it in order)."""
    with open(log, "ab") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(config)], stdout=out, stderr=out, start_new_session=new_session
        )
    try:
        wait_for_tcp(port, timeout, f"mosquitto (log: {log})", alive=lambda: process.poll() is None)
    except ServerError:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        raise
    return process
