"""`./scripts/demo`: the whole edge gateway on one machine, in the foreground, stopped with Ctrl-C.

What runs (everything private to this demo, on free ports of 127.0.0.1):

- PostgreSQL: a throw-away cluster in `<demo dir>/pg` (initdb from the Debian binaries, scram-sha-256, role and
  database `feedmill`), unless DATABASE_URL is set. As root the cluster runs as `postgres` (or `nobody`):
  the server refuses to run as root.
- Mosquitto: the production `mosquitto/mosquitto.conf` settings with the production ACL and a password file
  from `mosquitto/make_passwd.py` (random per-run passwords in `<demo dir>/secrets`, mode 0600), unless MQTT_URL
  is set. As root the broker drops to the `mosquitto` user (or `nobody`), like the compose container.
- supervisord (deploy/supervisord.py) with plc-sim, odoo-sim and the four services, run dir `<demo dir>/run`.

State is reset on every run: the demo directory is wiped at start (odoo-sim keeps its MOs in memory, so an old
database would hold MOs archived under the same names and the planner would rightly refuse to queue them).
Stop order on Ctrl-C / SIGTERM: supervisord (all programs), Mosquitto, PostgreSQL; exit code 0.

All logic is here; `scripts/demo` only bootstraps the venv and execs `python -m deploy.demo`. Module-level
imports are standard library only so that `--help` works before the venv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from deploy.servers import (
    PostgresCluster,
    RunAs,
    ServerError,
    free_port,
    run,
    server_account,
    spawn_mosquitto,
)

if TYPE_CHECKING:
    from deploy.supervisord import Supervisor

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor")
BROKER_USERS = (*SERVICES, "operator", "viewer", "console")
DB_NAME = DB_USER = "feedmill"
CONSOLE_RO = "console_ro"  # the console's read-only database role (SELECT only)
CONSOLE_LOGINS = ("operator", "viewer")  # demo console users, named after their roles
# Leftover server directories outside the demo dir (see private_dir) carry this prefix, so a later run can
# find and remove them without touching anything else in /tmp.
TMP_PREFIX = "feedmill-demo-"
CONNECTION_MARKER = "# Written by ./scripts/demo"

# Hand-weighed additives of odoo-sim's MOs (MO-level PLC01 components, no silo doses them): CaCO3 and GARAM of
# the recorded MOs (and the MOs generated from them), or CaCO3 of the synthetic recipes without the recording.
DEMO_WEIGHING_PRODUCTS = "997,800"
DEMO_WEIGHING_PRODUCTS_SYNTHETIC = "600"

ENV_HELP = """\
environment (flags win over these):
  DEMO_DIR            demo state directory (default: <repo>/.demo; wiped at every start)
  DEMO_BATCH_SECONDS  dosing time of one batch in plc-sim (default 20)
  DEMO_SPEED          plc-sim time factor for dosing and random failures (default 1)
  DEMO_FAILURE_RATE   random equipment failures per hour (default 20: one every ~3 minutes)
  DEMO_WEIGHING_RATE  random manual weighings per hour for the running MO (default 30: one every ~2 minutes)
  DEMO_EXTRA_MOS      confirmed MOs odoo-sim generates beyond its fixtures (default 40)
  DEMO_SLOTS          PLC command/feedback slots in use (default 1, as in the seed spec)
  DEMO_STATUS_EVERY   seconds between progress lines, 0 = off (default 30)
  DATABASE_URL        use this PostgreSQL instead of an embedded one (+ DATABASE_PASSWORD_FILE)
  MQTT_URL            use this broker instead of an embedded one (+ MQTT_PASSWORD_<USER>_FILE per user)
  MQTT_TOPIC_ROOT     topic root (default scada/plc01; the embedded broker's ACL allows scada/<line> only)
  EDGECTL_CONFIG      where to write edgectl's connection file (default ~/.config/edgectl/connection.env)
  LOG_LEVEL           services' log level (default INFO)
"""


class DemoError(Exception):
    """Start-up failed; the message says what and where to look."""


class Shutdown(Exception):
    """SIGINT or SIGTERM arrived: stop everything, exit 0."""


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class DemoConfig:
    demo_dir: Path
    batch_seconds: float
    speed: float
    failure_rate: float
    weighing_rate: float
    extra_mos: int
    slots: int
    status_every: float
    topic_root: str
    log_level: str
    database_url: str | None  # the user's own PostgreSQL, when set
    mqtt_url: str | None  # the user's own broker, when set
    connection_file: Path
    startup_timeout: float = 90.0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> DemoConfig:
    def env(name: str, default: str) -> str:
        return environ.get(name) or default

    parser = argparse.ArgumentParser(
        prog="./scripts/demo",
        description=(
            "Run the edge gateway with a simulated PLC and a simulated Odoo: embedded PostgreSQL and Mosquitto "
            "(unless DATABASE_URL / MQTT_URL are set), plc-sim, odoo-sim and the four services under "
            "supervisord. Stays in the foreground; Ctrl-C stops everything."
        ),
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=Path(env("DEMO_DIR", str(REPO / ".demo"))))
    parser.add_argument("--batch-seconds", type=_positive, default=env("DEMO_BATCH_SECONDS", "20"))
    parser.add_argument("--speed", type=_positive, default=env("DEMO_SPEED", "1"))
    parser.add_argument("--failure-rate", type=_non_negative, default=env("DEMO_FAILURE_RATE", "20"))
    parser.add_argument("--weighing-rate", type=_non_negative, default=env("DEMO_WEIGHING_RATE", "30"))
    parser.add_argument("--extra-mos", type=int, default=env("DEMO_EXTRA_MOS", "40"))
    parser.add_argument("--slots", type=int, default=env("DEMO_SLOTS", "1"))
    parser.add_argument("--status-every", type=_non_negative, default=env("DEMO_STATUS_EVERY", "30"))
    args = parser.parse_args(argv)
    if not 1 <= args.slots <= 10:
        parser.error("--slots must be 1..10 (the live PLC program has 10 slots)")
    if args.extra_mos < 0:
        parser.error("--extra-mos must be >= 0")
    default_conn = Path(environ.get("HOME") or Path.home()) / ".config" / "edgectl" / "connection.env"
    return DemoConfig(
        demo_dir=args.dir.absolute(),
        batch_seconds=float(args.batch_seconds),
        speed=float(args.speed),
        failure_rate=float(args.failure_rate),
        weighing_rate=float(args.weighing_rate),
        extra_mos=args.extra_mos,
        slots=args.slots,
        status_every=float(args.status_every),
        topic_root=env("MQTT_TOPIC_ROOT", "scada/plc01"),
        log_level=env("LOG_LEVEL", "INFO"),
        database_url=environ.get("DATABASE_URL") or None,
        mqtt_url=environ.get("MQTT_URL") or None,
        connection_file=Path(environ.get("EDGECTL_CONFIG") or default_conn).absolute(),
    )


# ---------------------------------------------------------------- small helpers


def say(text: str) -> None:
    print(text, flush=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int, attempts: int = 50) -> int:
    """First of `count` consecutive free TCP ports: supervisord gives the services HEALTH_PORT + 0..3."""
    for _ in range(attempts):
        base = free_port()
        if base + count < 65536 and all(_port_free(base + i) for i in range(1, count)):
            return base
    raise DemoError(f"no {count} consecutive free TCP ports found on 127.0.0.1")


def http_json(url: str, timeout: float = 3.0) -> Any:
    """GET a JSON document; an HTTP error status still returns its body (/healthz answers 503 when unhealthy)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"null")


def write_private(path: Path, text: str) -> None:
    """Create or replace a file readable by its owner only (secrets, files naming secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    path.chmod(0o600)


# ---------------------------------------------------------------- running servers as an unprivileged user


def private_dir(demo_dir: Path, name: str, account: RunAs | None) -> Path:
    """`<demo>/<name>` owned by the server's account; when that account cannot reach the demo directory, a
    directory in the system temp dir instead, with `<demo>/<name>` as a symlink to it (so paths stay short and
    predictable for the user)."""
    wanted = demo_dir / name
    if account is None or account.can_reach(demo_dir):
        wanted.mkdir(mode=0o700)
        path = wanted
    else:
        path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-"))
        wanted.symlink_to(path)
    if account is not None:
        os.chown(path, account.uid, account.gid)
    return path


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    """The demo's database: a private cluster (deploy/servers.py) with password authentication for every
    connection, the services' role and database, and the console's read-only role."""

    cluster: PostgresCluster
    password_file: Path  # the `feedmill` role's password (root-owned, for the services)

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.cluster.port}/{DB_NAME}"

    def start(self, secrets_dir: Path) -> None:
        superuser_pw = secrets.token_hex(16)
        write_private(secrets_dir / "postgres_superuser", superuser_pw + "\n")
        # initdb reads the superuser password from a file: a copy the server account can read, gone after.
        pwfile = self.cluster.home / "initdb.pw"
        write_private(pwfile, superuser_pw + "\n")
        account = self.cluster.account
        if account:
            os.chown(pwfile, account.uid, account.gid)
        try:
            self.cluster.init(superuser_password_file=pwfile, settings=["max_connections = 50"])
        finally:
            pwfile.unlink(missing_ok=True)
        self.cluster.start()
        self._create_database(superuser_pw)

    def _create_database(self, superuser_pw: str) -> None:
        import sqlalchemy as sa

        password = secrets.token_hex(16)  # hex: nothing to quote in URLs or SQL
        ro_password = secrets.token_hex(16)
        engine = sa.create_engine(
            f"postgresql+psycopg2://postgres:{superuser_pw}@127.0.0.1:{self.cluster.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                # psycopg2 interpolates client-side, so a bound password works in this utility statement.
                conn.execute(sa.text(f"CREATE ROLE {DB_USER} LOGIN PASSWORD :pw"), {"pw": password})
                conn.execute(sa.text(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}"))
                conn.execute(sa.text(f"CREATE ROLE {CONSOLE_RO} LOGIN PASSWORD :pw"), {"pw": ro_password})
        finally:
            engine.dispose()
        # The console's pages read as console_ro: SELECT on every table the services' role creates, now
        # (none yet) and later (the migrations), so a page can never change a row whatever its bug.
        engine = sa.create_engine(
            f"postgresql+psycopg2://postgres:{superuser_pw}@127.0.0.1:{self.cluster.port}/{DB_NAME}",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                conn.execute(
                    sa.text(
                        f"ALTER DEFAULT PRIVILEGES FOR ROLE {DB_USER} IN SCHEMA public GRANT SELECT ON TABLES TO {CONSOLE_RO}"
                    )
                )
        finally:
            engine.dispose()
        write_private(self.password_file, password + "\n")
        write_private(self.password_file.with_name("postgres_console_ro"), ro_password + "\n")

    def stop(self) -> None:
        if self.cluster.running():
            with contextlib.suppress(ServerError):
                self.cluster.stop()


# ---------------------------------------------------------------- Mosquitto


def production_broker_settings() -> list[str]:
    """mosquitto/mosquitto.conf minus what is specific to the container (listener, file paths, includes), so
    the demo runs the production settings (no anonymous access, persistence, queue limits)."""
    dropped = {"listener", "protocol", "allow_anonymous", "password_file", "acl_file", "persistence_location",
               "include_dir", "user"}  # fmt: skip
    keep = []
    for line in (REPO / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] not in dropped:
            keep.append(line)
    return keep


@dataclass
class EmbeddedBroker:
    home: Path
    port: int
    account: RunAs | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.home / "mosquitto.log"

    def start(self, secrets_dir: Path) -> None:
        for user in BROKER_USERS:
            write_private(secrets_dir / f"mqtt_{user}", secrets.token_urlsafe(18) + "\n")
        owner = ["--owner", f"{self.account.uid}:{self.account.gid}"] if self.account else []
        # The real tool and the real ACL: the demo proves the production security setup. A clean env so a
        # stray MQTT_PASSWORD_<USER> in the caller's shell cannot override the generated secrets.
        run(
            [sys.executable, str(REPO / "mosquitto" / "make_passwd.py"), "--out", str(self.home / "passwd"),
             "--secrets-dir", str(secrets_dir), "--users", ",".join(BROKER_USERS), "--optional-users", "", *owner],
            "make_passwd.py",
            env={"PATH": os.environ.get("PATH", "")},
        )  # fmt: skip
        acl = self.home / "acl"
        shutil.copyfile(REPO / "mosquitto" / "acl", acl)
        acl.chmod(0o600)
        (self.home / "data").mkdir(mode=0o700)
        if self.account:
            for path in (acl, self.home / "data"):
                os.chown(path, self.account.uid, self.account.gid)
        lines = [
            "# Generated by ./scripts/demo from mosquitto/mosquitto.conf: regenerated at every start.",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {self.home / 'passwd'}",
            f"acl_file {acl}",
            f"persistence_location {self.home / 'data'}",
            *([f"user {self.account.name}"] if self.account else []),
            *production_broker_settings(),
        ]
        conf = self.home / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process = spawn_mosquitto(conf, self.log, self.port, new_session=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# ---------------------------------------------------------------- leftovers of an earlier run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def reap_previous_run(demo_dir: Path, state_file: Path) -> None:
    """A demo killed with SIGKILL (or a crashed terminal) leaves its servers running: stop exactly those (pids
    recorded in the state file, checked against their command lines), never anything else."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    conf = state.get("supervisord_conf")
    if conf and (Path(conf).parent / "supervisor.sock").exists():
        from deploy.supervisord import Supervisor

        if Supervisor(Path(conf)).ctl("shutdown").returncode == 0:
            say("==> stopped the supervisord an earlier demo run left behind")
    # Each pid counts only while its command line still names this run's files (pids are reused).
    for key, marker in (("supervisord_pid", str(demo_dir)), ("mosquitto_pid", state.get("mosquitto_home"))):
        pid = state.get(key)
        if isinstance(pid, int) and marker and _pid_alive(pid) and str(marker) in _cmdline(pid):
            say(f"==> stopping {key.removesuffix('_pid')} (pid {pid}) an earlier demo run left behind")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
    pg = state.get("postgres")
    if isinstance(pg, dict):
        account = RunAs(**pg["account"]) if pg.get("account") else None
        leftover = PostgresCluster(Path(pg["home"]), 0, account)
        if leftover.running():
            say(f"==> stopping the PostgreSQL an earlier demo run left behind ({leftover.data})")
            with contextlib.suppress(ServerError):
                leftover.stop()


def wipe(demo_dir: Path, keep: str) -> None:
    """Remove everything in the demo dir but the lock file, following our own symlinks into the temp dir."""
    for entry in demo_dir.iterdir():
        if entry.name == keep:
            continue
        if entry.is_symlink():
            target = entry.resolve()
            if target.name.startswith(TMP_PREFIX) and target.parent == Path(tempfile.gettempdir()).resolve():
                shutil.rmtree(target, ignore_errors=True)
            entry.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ---------------------------------------------------------------- the services' environment


def mqtt_url_with_user(url: str, user: str) -> str:
    from deploy.supervisord import service_env

    # service_env puts the service's user into the URL; reuse it so edgectl's URL is built the same way.
    value = service_env(user, {"MQTT_URL": url})["MQTT_URL"]
    assert value is not None
    return value


@dataclass
class Ports:
    mqtt: int
    postgres: int
    plc: int
    plc_control: int
    odoo: int
    health: int  # base: plc_gateway, +1 mo_planner, +2 odoo_sync, +3 failure_monitor, +4 housekeeping
    console: int


def gateway_state_dir(cfg: DemoConfig) -> Path:
    """The gateway's own durable state (its weighing-flag journal), kept across demo runs like a real box's."""
    return cfg.demo_dir / "gateway-state"


def service_environment(
    cfg: DemoConfig,
    ports: Ports,
    mqtt_url: str,
    database_url: str,
    secrets_dir: Path,
    environ: Mapping[str, str],
) -> dict[str, str]:
    """The common env file of every supervised program (the same variables as .env.example)."""
    env: dict[str, str] = {
        "MQTT_URL": mqtt_url,
        "MQTT_TOPIC_ROOT": cfg.topic_root,
        "HEALTH_PORT": str(ports.health),
        "HEALTH_HOST": "127.0.0.1",
        "LOG_LEVEL": cfg.log_level,
        "PLC_HOST": "127.0.0.1",
        "PLC_PORT": str(ports.plc),
        "PLC_NODE": "1",
        "GATEWAY_NODE": "10",
        "GATEWAY_STATE_DIR": str(gateway_state_dir(cfg)),
        "PLC_SLOTS": str(cfg.slots),
        "PLC_SIM_CONTROL_PORT": str(ports.plc_control),
        "PLC_SIM_SPEED": str(cfg.speed),
        "POLL_INTERVAL_MS": "200",
        "DATABASE_URL": database_url,
        "ODOO_URL": f"http://127.0.0.1:{ports.odoo}",
        "ODOO_DB": "plant",
        "ODOO_LOGIN": "admin",
        "ODOO_PASSWORD_FILE": str(secrets_dir / "odoo_password"),
        "ODOO_SIM_EXTRA_MOS": str(cfg.extra_mos),
        # The safety nets run often in the demo (short batches); the event-driven paths do the real work.
        "ODOO_POLL_S": "20",
        "SYNC_SWEEP_S": "10",
        "REPORT_RETRY_S": "2",
        "CONSOLE_PORT": str(ports.console),
        "CONSOLE_USERS_FILE": str(secrets_dir / "console_users"),
        "CONSOLE_SECRET_KEY_FILE": str(secrets_dir / "console_secret_key"),
    }
    if cfg.mqtt_url is None:
        for user in (*SERVICES, "console"):
            env[f"MQTT_PASSWORD_{user.upper()}_FILE"] = str(secrets_dir / f"mqtt_{user}")
    else:  # the user's broker: pass their per-user password settings through
        env.update({k: v for k, v in environ.items() if k.startswith("MQTT_PASSWORD_") and v})
    if cfg.database_url is None:
        env["DATABASE_PASSWORD_FILE"] = str(secrets_dir / "postgres_password")
        env["CONSOLE_DATABASE_URL"] = database_url.replace(f"//{DB_USER}@", f"//{CONSOLE_RO}@", 1)
        env["CONSOLE_DATABASE_PASSWORD_FILE"] = str(secrets_dir / "postgres_console_ro")
    else:
        env.update(
            {k: v for k, v in environ.items() if k in ("DATABASE_PASSWORD", "DATABASE_PASSWORD_FILE") and v}
        )
    return env


def make_console_users(secrets_dir: Path) -> None:
    """Random demo passwords (one file per login, printed nowhere: the banner names the files), their scrypt
    hashes in the users file, and the session key."""
    from services.console.users import render

    entries = []
    for name in CONSOLE_LOGINS:
        path = secrets_dir / f"console_password_{name}"
        write_private(path, secrets.token_urlsafe(12) + "\n")
        entries.append(f"{name}:{name}:{path}")
    write_private(secrets_dir / "console_users", render(entries))
    write_private(secrets_dir / "console_secret_key", secrets.token_urlsafe(48) + "\n")


def run_migrations(env: Mapping[str, str], cwd: Path) -> None:
    alembic = Path(sys.executable).parent / "alembic"
    # cwd outside the repo: pydantic-settings would read a developer's ./.env there.
    child = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    child.update({k: v for k, v in env.items() if k.startswith("DATABASE_")})
    run(
        [str(alembic), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        "alembic upgrade head",
        env=child,
        cwd=cwd,
    )


# ---------------------------------------------------------------- edgectl's connection file


def connection_text(
    operator_url: str,
    mqtt_password_file: str | None,
    database_url: str,
    database_password_file: str | None,
    topic_root: str,
) -> str:
    """edgectl's connection file (edgectl/connection.py reads it): URLs without passwords, passwords by file."""
    lines = [
        f"{CONNECTION_MARKER} (pid {os.getpid()}); removed when the demo stops.",
        f"MQTT_URL={operator_url}",
        *([f"MQTT_PASSWORD_FILE={mqtt_password_file}"] if mqtt_password_file else []),
        f"DATABASE_URL={database_url}",
        *([f"DATABASE_PASSWORD_FILE={database_password_file}"] if database_password_file else []),
        f"MQTT_TOPIC_ROOT={topic_root}",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def connection_file(path: Path, text: str) -> Iterator[None]:
    """Write edgectl's connection file for the demo's lifetime; a file that was there before (a real plant's)
    is moved aside and put back afterwards."""
    backup = path.with_name(path.name + ".before-demo")
    moved = False
    if path.exists() and not path.read_text(encoding="utf-8", errors="replace").startswith(CONNECTION_MARKER):
        path.replace(backup)
        moved = True
        say(f"    (your {path} is kept as {backup} until the demo stops)")
    write_private(path, text)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == text:
                path.unlink()
        if moved:
            backup.replace(path)


# ---------------------------------------------------------------- supervisord


def odoo_seed_available() -> bool:
    from simulators.odoo.domain import DEFAULT_SEED

    return DEFAULT_SEED.is_file()


def start_supervisor(cfg: DemoConfig, env: dict[str, str], run_dir: Path) -> Supervisor:
    from deploy.supervisord import Supervisor, default_programs, write_supervisor_config

    programs = []
    for program in default_programs(env, with_simulators=True, with_console=True):
        if program.name == "plc_sim":
            # deploy/supervisord.py maps only the production-relevant sim settings; the demo's compressed
            # time and random failures are plc-sim flags (the last occurrence of a flag wins in argparse).
            extra = ["--node", env["PLC_NODE"], "--batch-seconds", str(cfg.batch_seconds),
                     "--failure-rate", str(cfg.failure_rate), "--weighing-rate", str(cfg.weighing_rate),
                     "--weighing-products", DEMO_WEIGHING_PRODUCTS if odoo_seed_available()
                     else DEMO_WEIGHING_PRODUCTS_SYNTHETIC]  # fmt: skip
            program = dataclasses.replace(program, command=[*program.command, *extra])
        if program.name == "odoo_sim" and not odoo_seed_available():
            # odoo-sim's default seed (a recorded Odoo reply) lives outside the repository, next to it; on a
            # fresh clone it is missing and odoo-sim would not start: its generated MOs are enough for a demo.
            say("    (odoo-sim: recorded seed MOs not found next to the repo; using generated MOs only)")
            program = dataclasses.replace(program, command=[*program.command, "--seed", "none"])
        programs.append(program)
    with open(run_dir.parent / "demo.env", "w", encoding="utf-8") as fh:  # for humans: no secrets, only paths
        fh.write("# The settings ./scripts/demo gave supervisord (deploy/supervisord.py --env-file works).\n")
        fh.writelines(f"{k}={v}\n" for k, v in sorted(env.items()))
    sup = Supervisor(write_supervisor_config(run_dir, env, programs))
    try:
        return sup.start()
    except (RuntimeError, TimeoutError) as exc:
        sup.stop()  # the stop callback is not registered yet
        raise DemoError(f"supervisord did not start: {exc}") from None


def _log_tail(sup: Supervisor, name: str, lines: int = 15) -> str:
    log = sup.config.parent / "logs" / f"{name}.log"
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n----- {log} (last {len(tail)} lines)\n" + "\n".join(tail)


def wait_until_ready(sup: Supervisor, ports: Ports, timeout: float) -> None:
    names = ["plc_sim", "odoo_sim", *SERVICES, "housekeeping", "console"]
    deadline = time.monotonic() + timeout
    pending = {f"{name} /healthz": ports.health + i for i, name in enumerate((*SERVICES, "housekeeping"))}
    pending["console /healthz"] = ports.console
    while True:
        states = sup.status()
        bad = {n: s for n, s in states.items() if s in ("FATAL", "EXITED")}
        if bad:
            raise DemoError(f"programs failed to start: {bad}" + "".join(_log_tail(sup, n) for n in bad))
        if all(states.get(n) == "RUNNING" for n in names):
            for what, port in list(pending.items()):
                with contextlib.suppress(OSError, ValueError):
                    if http_json(f"http://127.0.0.1:{port}/healthz").get("healthy"):
                        del pending[what]
            if not pending:
                return
        if time.monotonic() > deadline:
            stuck = [n for n in names if states.get(n) != "RUNNING"]
            raise DemoError(
                f"not ready after {timeout:.0f}s: states {states}, not healthy: {sorted(pending)}"
                + "".join(_log_tail(sup, n) for n in stuck)
            )
        time.sleep(0.5)


# ---------------------------------------------------------------- what to watch


def banner(
    cfg: DemoConfig, ports: Ports, mqtt_url: str, run_dir: Path, secrets_dir: Path, embedded_broker: bool
) -> str:
    parts = urllib.parse.urlsplit(mqtt_url)
    broker = f"{parts.hostname}:{parts.port or 1883}"
    venv_bin = Path(sys.executable).parent

    def rel(path: Path) -> str:  # short paths when under the current directory (the repo root)
        text = os.path.relpath(path)
        return str(path) if text.startswith("..") else text

    ctl = f"{rel(venv_bin / 'supervisorctl')} -c {rel(run_dir / 'supervisord.conf')}"
    creds = (
        f"user viewer (read-only), password: cat {rel(secrets_dir / 'mqtt_viewer')}\n"
        f"                     user operator (edgectl's), password: cat {rel(secrets_dir / 'mqtt_operator')}"
        if embedded_broker
        else "your broker's credentials"
    )
    root = cfg.topic_root
    logins = "\n".join(
        f"                     login {name} ({name}), password: cat {rel(secrets_dir / f'console_password_{name}')}"
        for name in CONSOLE_LOGINS
    )
    return f"""
================================================================ the edge gateway demo is running
MQTT broker          {broker}   (MQTT Explorer: host {parts.hostname}, port {parts.port or 1883}, no TLS,
                     {creds})
  topics             {root}/#   e.g. {root}/gateway/status, {root}/plc/read/1, {root}/plc/write/1,
                     {root}/plc/failure, {root}/plc/weighing, {root}/events/batch, {root}/events/weighing,
                     {root}/svc/<service>/status, {root}/cmd/#
operator console     http://127.0.0.1:{ports.console}/   (kiosk: /?kiosk=1)
{logins}
edgectl              {rel(venv_bin / "edgectl")} status      (finds the demo via {cfg.connection_file})
                     {rel(venv_bin / "edgectl")} watch
PLC simulator        http://127.0.0.1:{ports.plc_control}/state   (FINS/UDP on 127.0.0.1:{ports.plc}; batch
                     {cfg.batch_seconds:g}s, speed {cfg.speed:g}, ~{cfg.failure_rate:g} failures/hour,
                     ~{cfg.weighing_rate:g} manual weighings/hour; edgectl weighings)
Odoo simulator       http://127.0.0.1:{ports.odoo}/_sim/state   (db plant, login admin/admin, {cfg.extra_mos} extra MOs)
service health       http://127.0.0.1:{ports.health}/healthz .. :{ports.health + 4}  (plc_gateway, mo_planner,
                     odoo_sync, failure_monitor, housekeeping; /metrics on the same ports)
supervisorctl        {ctl} status | restart mo_planner | tail -f plc_gateway
logs                 {rel(run_dir / "logs")}/<program>.log, {rel(cfg.demo_dir)}/mosquitto/mosquitto.log,
                     {rel(cfg.demo_dir)}/pg/postgresql.log
stop                 Ctrl-C (stops supervisord, Mosquitto, PostgreSQL; the next run starts afresh)
================================================================
"""


@dataclass
class Progress:
    """Milestones and periodic counters, read from the simulators' control APIs."""

    plc_url: str
    odoo_url: str
    started_at: float
    status_every: float
    first_dosing: float | None = None
    first_report: float | None = None
    last_line: float = 0.0

    def poll(self) -> None:
        try:
            plc = http_json(self.plc_url)
            odoo = http_json(self.odoo_url)
        except (OSError, ValueError):
            return
        now = time.monotonic()
        slots = plc.get("slots", [])
        started = sum(int(s.get("batches_started", 0)) for s in slots)
        finished = sum(int(s.get("batches_finished", 0)) for s in slots)
        reported = sum(1 for mo in odoo.get("mos", []) if mo.get("qty_producing"))
        if self.first_dosing is None and started:
            self.first_dosing = now - self.started_at
            running = [s.get("mo_id") for s in slots if s.get("phase") == "running"]
            say(f"--> first MO dosing in the PLC ({', '.join(map(str, running)) or 'done already'}) "
                f"{self.first_dosing:.1f}s after start")  # fmt: skip
        if self.first_report is None and reported:
            self.first_report = now - self.started_at
            say(f"--> first batch reported to Odoo {self.first_report:.1f}s after start")
        if self.status_every and now - self.last_line >= self.status_every:
            self.last_line = now
            failures = plc.get("failures", {})
            say(
                f"[{time.strftime('%H:%M:%S')}] PLC batches started {started}, finished {finished}; "
                f"reported to Odoo {reported}; failures posted {failures.get('posted', 0)}, "
                f"acked {failures.get('acked', 0)}, in Odoo {len(odoo.get('failures', []))}"
            )


# ---------------------------------------------------------------- main


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts; the stop sequence itself must run to the end.
    _ignore_signals()
    raise Shutdown(signal.Signals(signum).name)


@contextlib.contextmanager
def locked(demo_dir: Path) -> Iterator[IO[str]]:
    """Exclusive use of the demo dir. It is wiped at start: refuse a non-empty directory that is not ours."""
    if demo_dir.is_dir() and any(demo_dir.iterdir()) and not (demo_dir / ".lock").exists():
        raise DemoError(f"{demo_dir} is not empty and not a demo directory: choose another DEMO_DIR")
    demo_dir.mkdir(parents=True, exist_ok=True)
    fh = open(demo_dir / ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise DemoError(f"another demo is running with {demo_dir} (stop it first, or set DEMO_DIR)") from None
    try:
        yield fh
    finally:
        fh.close()


def _stopper(what: str, stop: Callable[[], None]) -> Callable[[], None]:
    def run_stop() -> None:
        say(f"==> stopping {what}")
        stop()

    return run_stop


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def demo(cfg: DemoConfig, environ: Mapping[str, str]) -> None:
    with contextlib.ExitStack() as stack:
        try:
            _run(cfg, environ, stack)
        finally:
            # Whatever ended the run, the stop sequence (the stack's callbacks) must not be interrupted.
            _ignore_signals()


def _run(cfg: DemoConfig, environ: Mapping[str, str], stack: contextlib.ExitStack) -> None:
    t0 = time.monotonic()
    stack.enter_context(locked(cfg.demo_dir))
    state_file = cfg.demo_dir / "state.json"
    state: dict[str, Any] = {}

    def record(**values: Any) -> None:
        state.update(values)
        write_private(state_file, json.dumps(state, indent=1))

    reap_previous_run(cfg.demo_dir, state_file)
    # Runs last: after a complete stop there is nothing left for the next run to clean up.
    stack.callback(state_file.unlink, missing_ok=True)
    wipe(cfg.demo_dir, keep=".lock")
    cfg.demo_dir.chmod(0o755)  # the servers' accounts must traverse it (its content stays private)
    secrets_dir = cfg.demo_dir / "secrets"
    secrets_dir.mkdir(mode=0o700)
    write_private(secrets_dir / "odoo_password", "admin\n")  # odoo-sim's default login admin/admin
    ports = Ports(
        mqtt=free_port(),
        postgres=free_port(),
        plc=free_port(socket.SOCK_DGRAM),
        plc_control=free_port(),
        odoo=free_port(),
        health=free_port_block(len(SERVICES) + 1),  # the services, then housekeeping (supervisord.py)
        console=free_port(),
    )
    make_console_users(secrets_dir)

    # Stop callbacks run in reverse: supervisord, then Mosquitto, then PostgreSQL.
    pg: EmbeddedPostgres | None = None
    if cfg.database_url is None:
        account = server_account(["postgres"])
        cluster = PostgresCluster(private_dir(cfg.demo_dir, "pg", account), ports.postgres, account)
        pg = EmbeddedPostgres(cluster, secrets_dir / "postgres_password")
        say(f"==> PostgreSQL: private cluster in {cluster.home} on 127.0.0.1:{cluster.port}"
            + (f" (as user {account.name})" if account else ""))  # fmt: skip
        record(postgres={"home": str(cluster.home), "account": dataclasses.asdict(account) if account else None})
        stack.callback(_stopper("PostgreSQL", pg.stop))
        pg.start(secrets_dir)
        database_url = pg.url
    else:
        say("==> PostgreSQL: using DATABASE_URL (not reset: earlier demo MOs there stay archived)")
        database_url = cfg.database_url

    broker: EmbeddedBroker | None = None
    if cfg.mqtt_url is None:
        if not cfg.topic_root.startswith("scada/") or cfg.topic_root.count("/") != 1:
            raise DemoError(f"MQTT_TOPIC_ROOT {cfg.topic_root!r}: the production ACL allows scada/<line> only")
        account = server_account(["mosquitto"])
        broker = EmbeddedBroker(private_dir(cfg.demo_dir, "mosquitto", account), ports.mqtt, account)
        say(f"==> Mosquitto: production config + ACL, per-user passwords, on 127.0.0.1:{broker.port}")
        stack.callback(_stopper("Mosquitto", broker.stop))
        broker.start(secrets_dir)
        record(mosquitto_pid=broker.process.pid if broker.process else None, mosquitto_home=str(broker.home))
        mqtt_url = f"mqtt://127.0.0.1:{ports.mqtt}"
        operator_password: str | None = str(secrets_dir / "mqtt_operator")
    else:
        say("==> MQTT: using MQTT_URL")
        mqtt_url = cfg.mqtt_url
        operator_password = environ.get("MQTT_PASSWORD_OPERATOR_FILE") or None

    env = service_environment(cfg, ports, mqtt_url, database_url, secrets_dir, environ)
    say("==> migrations: alembic upgrade head")
    run_migrations(env, cfg.demo_dir)

    say("==> supervisord: plc-sim, odoo-sim, plc_gateway, mo_planner, odoo_sync, failure_monitor, console")
    run_dir = cfg.demo_dir / "run"
    sup = start_supervisor(cfg, env, run_dir)
    record(supervisord_conf=str(sup.config), supervisord_pid=sup.process.pid if sup.process else None)
    stack.callback(_stopper("supervisord and its programs", sup.stop))
    wait_until_ready(sup, ports, cfg.startup_timeout)
    say(f"==> all programs running and healthy after {time.monotonic() - t0:.1f}s")

    text = connection_text(
        mqtt_url_with_user(mqtt_url, "operator"),
        operator_password,
        database_url,
        env.get("DATABASE_PASSWORD_FILE"),
        cfg.topic_root,
    )
    stack.enter_context(connection_file(cfg.connection_file, text))
    say(banner(cfg, ports, mqtt_url, run_dir, secrets_dir, broker is not None))

    progress = Progress(
        f"http://127.0.0.1:{ports.plc_control}/state",
        f"http://127.0.0.1:{ports.odoo}/_sim/state",
        t0,
        cfg.status_every,
        last_line=time.monotonic(),
    )
    while True:
        if sup.process is not None and sup.process.poll() is not None:
            raise DemoError(f"supervisord exited ({sup.process.returncode}); see {run_dir / 'logs'}")
        if broker is not None and not broker.running():
            raise DemoError(f"mosquitto exited; see {broker.log}")
        if pg is not None and not pg.cluster.running():
            raise DemoError(f"PostgreSQL stopped; see {pg.cluster.log}")
        progress.poll()
        time.sleep(1.0)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    signal.signal(signal.SIGINT, _raise_shutdown)
    signal.signal(signal.SIGTERM, _raise_shutdown)
    try:
        demo(cfg, os.environ)
    except Shutdown as why:
        say(f"==> demo stopped ({why})")
        return 0
    except (DemoError, ServerError) as exc:
        say(f"demo: {exc}")
        return 1
    except OSError as exc:  # a file or port problem outside the expected failures: still a clean message
        say(f"demo: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
