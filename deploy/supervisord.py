#!/usr/bin/env python3
"""supervisord for boxes without docker (and for ./scripts/demo): the same processes and settings as
docker-compose.yml, written into one self-contained run directory.

Command line (from the repo root, with the project's Python so the console scripts are found next to it):

    .venv/bin/python deploy/supervisord.py --env-file .env --run-dir /var/lib/feedmill/run [--with-simulators]
                                           [--with-console] [--without-housekeeping]
    .venv/bin/supervisord -c /var/lib/feedmill/run/supervisord.conf            # start (daemonizes)
    .venv/bin/supervisorctl -c /var/lib/feedmill/run/supervisord.conf status   # or: restart mo_planner, tail -f ...
    .venv/bin/supervisorctl -c /var/lib/feedmill/run/supervisord.conf shutdown # stop everything

Python API (what the demo and the end-to-end tests use):

    env = load_env_file(Path(".env"))
    programs = default_programs(env, with_simulators=True)
    conf = write_supervisor_config(run_dir, env, programs)
    sup = Supervisor(conf).start()            # supervisord -n as a child process
    sup.wait_for_state(["plc_gateway"], "RUNNING")
    sup.ctl("restart", "mo_planner"); sup.status(); sup.pid("odoo_sync")
    sup.stop()                                # supervisorctl shutdown, waits for the programs' SIGTERM

Run directory layout: `supervisord.conf`, `supervisor.sock` (0700, supervisorctl's only way in), `supervisord.pid`,
`logs/<program>.log` (stdout+stderr, rotated), `logs/supervisord.log`, `env/<program>.json` (0600: each
program's environment, see deploy/launch.py). Nothing secret is in the config file itself.

Per-service settings, derived from the shared env file the way docker-compose.yml sets them per container:
- MQTT_URL: the user part becomes the service's broker user (plc_gateway, mo_planner, ...);
- MQTT_PASSWORD_FILE (or MQTT_PASSWORD): from MQTT_PASSWORD_<SERVICE>_FILE (or MQTT_PASSWORD_<SERVICE>);
  the per-user password variables themselves are passed to no program;
- HEALTH_PORT: HEALTH_PORT + 0/1/2/3 in service order when HEALTH_PORT is not 0 (one host, four ports), and
  HEALTH_PORT + 4 for housekeeping (the retention service, on by default as in docker-compose.yml);
- MQTT_CLIENT_ID, when set: suffixed with -<service> (client ids must be unique on the broker).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

LAUNCHER = Path(__file__).resolve().with_name("launch.py")
SERVICES = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor")
SIMULATORS = ("plc_sim", "odoo_sim")
SCRIPTS = {
    "plc_gateway": "plc-gateway",
    "mo_planner": "mo-planner",
    "odoo_sync": "odoo-sync",
    "failure_monitor": "failure-monitor",
    "plc_sim": "plc-sim",
    "odoo_sim": "odoo-sim",
    "console": "console",
    "housekeeping": "housekeeping",
}
CONSOLE = "console"
HOUSEKEEPING = "housekeeping"
# Health ports from HEALTH_PORT on: one per service, then housekeeping's.
HEALTH_PORTS = len(SERVICES) + 1
# Settings holding a path: a relative value in the env file is relative to that file, not to wherever
# supervisord happens to start the program.
_PATH_KEYS = re.compile(r"^(.*_FILE|PLC_MAP|ODOO_CA_BUNDLE|GATEWAY_STATE_DIR)$")
# Per-user broker passwords (make_passwd.py's inputs): each program gets only its own, as MQTT_PASSWORD[_FILE].
_PER_USER_PASSWORD = re.compile(r"^MQTT_PASSWORD_[A-Z0-9_]+$")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on BSD/macOS


@dataclass(frozen=True)
class Program:
    """One supervised process. `env` is added to (and overrides) the common env; a None value removes a key."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str | None] = field(default_factory=dict)
    directory: Path | None = None  # default: the run directory (keeps a stray ./.env out of reach)
    priority: int = 100  # lower starts first and stops last
    autostart: bool = True
    startsecs: int = 3  # must stay up this long to count as started
    # Start attempts before FATAL. A service that cannot reach the broker exits and is retried; only a
    # program that keeps failing (bad config: it exits at once with a clear error) ends up FATAL.
    startretries: int = 20
    stopwaitsecs: int = 30  # SIGTERM, then SIGKILL after this long (services finish in-flight work)


# ---------------------------------------------------------------- env handling


def load_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv file (.env / .env.example syntax) and make relative path settings absolute."""
    base = path.resolve().parent
    env: dict[str, str] = {}
    for key, value in dotenv_values(path).items():
        if value is None:
            continue
        if value and _PATH_KEYS.match(key) and not os.path.isabs(value):
            value = str(base / value)
        env[key] = value
    return env


def _with_user(url: str, user: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        raise ValueError("MQTT_URL must not contain a password: use MQTT_PASSWORD_<USER>_FILE")
    if not parts.hostname:
        raise ValueError(f"MQTT_URL {url!r} has no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{urllib.parse.quote(user)}@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def service_env(service: str, env: Mapping[str, str], index: int = 0) -> dict[str, str | None]:
    """The per-service part of a service's environment (see the module docstring)."""
    own: dict[str, str | None] = {
        "MQTT_URL": _with_user(env.get("MQTT_URL") or "mqtt://127.0.0.1:1883", service),
        "PYTHONUNBUFFERED": "1",  # log lines reach the log file as they happen
    }
    key = f"MQTT_PASSWORD_{service.upper()}"
    if env.get(f"{key}_FILE"):
        own["MQTT_PASSWORD_FILE"], own["MQTT_PASSWORD"] = env[f"{key}_FILE"], None
    elif env.get(key):
        own["MQTT_PASSWORD"], own["MQTT_PASSWORD_FILE"] = env[key], None
    base_port = int(env.get("HEALTH_PORT") or 0)
    if base_port:
        own["HEALTH_PORT"] = str(base_port + index)
    if env.get("MQTT_CLIENT_ID"):
        own["MQTT_CLIENT_ID"] = f"{env['MQTT_CLIENT_ID']}-{service}"
    return own


def _script(name: str, bin_dir: Path) -> str:
    candidate = bin_dir / SCRIPTS[name]
    return str(candidate) if candidate.exists() else SCRIPTS[name]


def simulator_programs(env: Mapping[str, str], bin_dir: Path) -> list[Program]:
    """plc-sim on PLC_HOST:PLC_PORT and odoo-sim on ODOO_URL's host and port, started before the services."""
    plc = [_script("plc_sim", bin_dir), "--host", env.get("PLC_SIM_HOST") or env.get("PLC_HOST") or "127.0.0.1"]
    plc += ["--port", env.get("PLC_PORT") or "9600", "--control-port", env.get("PLC_SIM_CONTROL_PORT") or "9700"]
    slots = env.get("PLC_SIM_SLOTS") or env.get("PLC_SLOTS")
    if slots:
        plc += ["--slots", slots]
    if env.get("PLC_SIM_SPEED"):
        plc += ["--speed", env["PLC_SIM_SPEED"]]
    odoo_url = urllib.parse.urlsplit(env.get("ODOO_URL") or "http://127.0.0.1:8069")
    odoo = [_script("odoo_sim", bin_dir), "--host", odoo_url.hostname or "127.0.0.1"]
    odoo += ["--port", str(odoo_url.port or 8069)]
    if env.get("ODOO_SIM_EXTRA_MOS"):
        odoo += ["--extra-mos", env["ODOO_SIM_EXTRA_MOS"]]
    # odoo-sim accepts the services' own Odoo login, so .env needs no separate settings for the simulator.
    for option, key in (("--db", "ODOO_DB"), ("--login", "ODOO_LOGIN"), ("--password-file", "ODOO_PASSWORD_FILE")):
        if env.get(key):
            odoo += [option, env[key]]
    return [
        Program("plc_sim", plc, {"PYTHONUNBUFFERED": "1"}, priority=10, startsecs=1),
        Program("odoo_sim", odoo, {"PYTHONUNBUFFERED": "1"}, priority=10, startsecs=1),
    ]


def console_env(env: Mapping[str, str]) -> dict[str, str | None]:
    """The console's own settings: broker user `console`; its pages read through CONSOLE_DATABASE_URL (a
    read-only role) when set, and its operator actions then write through the services' DATABASE_URL."""
    own = service_env(CONSOLE, env)
    own["HEALTH_PORT"] = None  # /healthz and /metrics are on CONSOLE_PORT
    if env.get("CONSOLE_DATABASE_URL"):
        own["DATABASE_URL"] = env["CONSOLE_DATABASE_URL"]
        own["DATABASE_PASSWORD_FILE"] = env.get("CONSOLE_DATABASE_PASSWORD_FILE")
        own["DATABASE_PASSWORD"] = None
        own.setdefault(
            "CONSOLE_ACTION_DATABASE_URL", env.get("CONSOLE_ACTION_DATABASE_URL") or env.get("DATABASE_URL")
        )
        if not env.get("CONSOLE_ACTION_DATABASE_URL") and env.get("DATABASE_PASSWORD_FILE"):
            own["CONSOLE_ACTION_DATABASE_PASSWORD_FILE"] = env["DATABASE_PASSWORD_FILE"]
    return own


def housekeeping_env(env: Mapping[str, str]) -> dict[str, str | None]:
    """Retention needs only the database: no broker settings or password reach it."""
    base_port = int(env.get("HEALTH_PORT") or 0)
    return {
        "PYTHONUNBUFFERED": "1",
        "HEALTH_PORT": str(base_port + len(SERVICES)) if base_port else None,
        "MQTT_URL": None,
        "MQTT_PASSWORD": None,
        "MQTT_PASSWORD_FILE": None,
    }


def default_programs(
    env: Mapping[str, str],
    *,
    with_simulators: bool = False,
    with_console: bool = False,
    with_housekeeping: bool = True,
    services: Iterable[str] = SERVICES,
    bin_dir: Path | None = None,
) -> list[Program]:
    """The four services (or a subset), housekeeping (retention, on a daily schedule of its own), optionally
    the console and the two simulators, with their per-service settings.

    `bin_dir` holds the console scripts; default: next to the running Python (the venv's bin)."""
    bin_dir = bin_dir or Path(sys.executable).parent
    programs = simulator_programs(env, bin_dir) if with_simulators else []
    for service in services:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
        index = SERVICES.index(service)
        programs.append(Program(service, [_script(service, bin_dir)], service_env(service, env, index)))
    if with_housekeeping:
        # Nothing waits for it: a purge postponed by a restart runs at its next round.
        programs.append(
            Program(HOUSEKEEPING, [_script(HOUSEKEEPING, bin_dir)], housekeeping_env(env), priority=150)
        )
    if with_console:
        # Started last and stopped first: nothing depends on it, and it changes nothing while it is down.
        programs.append(Program(CONSOLE, [_script(CONSOLE, bin_dir)], console_env(env), priority=200))
    return programs


def program_env(env: Mapping[str, str], program: Program) -> dict[str, str]:
    """Common env minus per-user broker passwords, plus the program's own entries (None removes)."""
    merged = {k: v for k, v in env.items() if not _PER_USER_PASSWORD.match(k) or k == "MQTT_PASSWORD_FILE"}
    for key, value in program.env.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------- config file


def _value(text: str) -> str:
    """A value for supervisord's ini file: `%` starts an interpolation there, and a line break ends the value."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"line break in a supervisord value: {text!r}")
    return text.replace("%", "%%")


def write_supervisor_config(
    run_dir: Path, env: Mapping[str, str], programs: Sequence[Program], *, python: str | None = None
) -> Path:
    """Write `run_dir/supervisord.conf` (and each program's env file); returns the config's path.

    `env` is the common environment of every program (typically `load_env_file(...)`); `python` runs the
    launcher (default: this interpreter)."""
    run_dir = run_dir.resolve()
    names = [p.name for p in programs]
    if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise ValueError(f"program names must be unique and use only letters, digits, '_' and '-': {names}")
    socket_path = run_dir / "supervisor.sock"
    if len(str(socket_path)) > _SOCKET_PATH_MAX:
        raise ValueError(f"run directory path too long for a unix socket ({socket_path}); choose a shorter one")
    logs, env_dir = run_dir / "logs", run_dir / "env"
    for d in (run_dir, logs):
        d.mkdir(parents=True, exist_ok=True)
    env_dir.mkdir(mode=0o700, exist_ok=True)
    env_dir.chmod(0o700)

    python = python or sys.executable
    lines = [
        "; Generated by deploy/supervisord.py: regenerate instead of editing.",
        "[unix_http_server]",
        f"file={_value(str(socket_path))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_value(str(logs / 'supervisord.log'))}",
        "logfile_maxbytes=10MB",
        "logfile_backups=5",
        "loglevel=info",
        f"pidfile={_value(str(run_dir / 'supervisord.pid'))}",
        f"childlogdir={_value(str(logs))}",
        f"directory={_value(str(run_dir))}",
        "identifier=feedmill-edge",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_value(str(socket_path))}",
    ]
    for program in programs:
        env_file = env_dir / f"{program.name}.json"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(program_env(env, program), fh, indent=1, sort_keys=True)
        env_file.chmod(0o600)
        command = shlex.join([python, str(LAUNCHER), str(env_file), "--", *program.command])
        log = logs / f"{program.name}.log"
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={_value(command)}",
            f"directory={_value(str(program.directory or run_dir))}",
            f"priority={program.priority}",
            f"autostart={str(program.autostart).lower()}",
            # Restart whatever the exit code: a service exits only to be restarted (or on SIGTERM from us).
            "autorestart=true",
            f"startsecs={program.startsecs}",
            f"startretries={program.startretries}",
            # Services shut down gracefully on SIGTERM (finish the FINS exchange / transaction, publish
            # "offline"); stopwaitsecs later supervisord sends SIGKILL to the whole process group.
            "stopsignal=TERM",
            f"stopwaitsecs={program.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_value(str(log))}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=5",
        ]
    config = run_dir / "supervisord.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


# ---------------------------------------------------------------- running it


@dataclass
class Supervisor:
    """supervisord in the foreground as a child process (demo, tests), driven through supervisorctl."""

    config: Path
    python: str = sys.executable
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Supervisor:
        out = open(self.config.parent / "logs" / "supervisord.stdout", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [self.python, "-m", "supervisor.supervisord", "-n", "-c", str(self.config)], stdout=out, stderr=out
        )
        deadline = time.monotonic() + timeout
        while self.ctl("pid").returncode != 0:
            if self.process.poll() is not None:
                raise RuntimeError(f"supervisord exited with {self.process.returncode}; see {out.name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"supervisord did not answer within {timeout}s")
            time.sleep(0.1)
        return self

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "supervisor.supervisorctl", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def status(self) -> dict[str, str]:
        """Program name -> state (RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, ...)."""
        states: dict[str, str] = {}
        for line in self.ctl("status").stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isupper():
                states[parts[0]] = parts[1]
        return states

    def pid(self, name: str) -> int:
        out = self.ctl("pid", name).stdout.strip()
        return int(out) if out.isdigit() else 0

    def wait_for_state(self, names: Iterable[str], state: str = "RUNNING", timeout: float = 20.0) -> None:
        wanted = list(names)
        deadline = time.monotonic() + timeout
        while True:
            states = self.status()
            if all(states.get(n) == state for n in wanted):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"programs not {state} after {timeout}s: {states}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every program (SIGTERM, stopwaitsecs) and supervisord itself."""
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("shutdown")
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a supervisord config for the edge gateway's processes.")
    parser.add_argument("--env-file", type=Path, required=True, help="settings (.env syntax), see .env.example")
    parser.add_argument("--run-dir", type=Path, required=True, help="config, socket, logs and env files go here")
    parser.add_argument("--with-simulators", action="store_true", help="also run plc-sim and odoo-sim")
    parser.add_argument("--with-console", action="store_true", help="also run the operators' web console")
    parser.add_argument(
        "--without-housekeeping",
        action="store_true",
        help="leave retention out (run `housekeeping --once` elsewhere)",
    )
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated subset of services")
    parser.add_argument("--bin-dir", type=Path, help="where the console scripts are (default: next to python)")
    args = parser.parse_args(argv)
    try:
        env = load_env_file(args.env_file)
        programs = default_programs(
            env,
            with_simulators=args.with_simulators,
            with_console=args.with_console,
            with_housekeeping=not args.without_housekeeping,
            services=[s for s in args.services.split(",") if s],
            bin_dir=args.bin_dir,
        )
        config = write_supervisor_config(args.run_dir, env, programs)
    except (OSError, ValueError) as exc:
        print(f"supervisord.py: {exc}", file=sys.stderr)
        return 2
    bin_dir = Path(sys.executable).parent
    print(f"wrote {config} ({', '.join(p.name for p in programs)})")
    print(f"start:  {bin_dir / 'supervisord'} -c {config}")
    print(f"status: {bin_dir / 'supervisorctl'} -c {config} status")
    print(f"stop:   {bin_dir / 'supervisorctl'} -c {config} shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
