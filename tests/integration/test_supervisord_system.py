"""The real system under the supervisord configuration of deploy/supervisord.py: the four services,
housekeeping and both simulators as supervised programs against a private broker and a fresh, migrated database.

Proves what an integrator relies on when running without docker: every program reaches RUNNING and reports
healthy, housekeeping applies the retention policy, `supervisorctl restart mo_planner` restarts that one service
and leaves the others' processes alone, batches keep flowing across the restart, and a shutdown stops every
program.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from deploy.demo import free_port_block, http_json
from deploy.supervisord import (
    HEALTH_PORTS,
    HOUSEKEEPING,
    SERVICES,
    Supervisor,
    default_programs,
    write_supervisor_config,
)
from tests.support.procs import console, wait_until
from tests.support.servers import Broker, free_port, fresh_database, start_mosquitto

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = ("plc_sim", "odoo_sim", *SERVICES, HOUSEKEEPING)
HEALTHZ = (*SERVICES, HOUSEKEEPING)  # in the order of their health ports
OLD_AUDIT = "SELECT count(*) FROM audit_event WHERE actor = 'test-old-row'"
pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Running:
    sup: Supervisor
    engine: sa.Engine
    health: dict[str, int]
    plc_control: int

    def completed(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.text("SELECT count(*) FROM mo_histories WHERE status = 'completed'")) or 0)

    def count(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.text(sql)) or 0)

    def healthy(self, name: str) -> bool:
        try:
            return bool(http_json(f"http://127.0.0.1:{self.health[name]}/healthz").get("healthy"))
        except (OSError, ValueError):
            return False

    def pids(self) -> dict[str, int]:
        return {name: self.sup.pid(name) for name in PROGRAMS}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[Running]:
    (tmp_path / "mosq").mkdir()
    broker: Broker = start_mosquitto(workdir=tmp_path / "mosq")
    try:
        with fresh_database("sup") as db_url:
            database_url = db_url.replace("+psycopg2", "")
            subprocess.run(
                [console("alembic"), "upgrade", "head"],
                cwd=REPO,
                check=True,
                capture_output=True,
                env={**os.environ, "DATABASE_URL": database_url},
            )
            # An audit row older than the retention (180 days): housekeeping's first round deletes it.
            seed = sa.create_engine(db_url)
            with seed.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_event (at, actor, action) "
                        "VALUES (now() - interval '200 days', 'test-old-row', 'old')"
                    )
                )
            seed.dispose()
            health = free_port_block(HEALTH_PORTS)
            plc_control, odoo = free_port(), free_port()
            env = {
                "MQTT_URL": broker.url,
                "MQTT_TOPIC_ROOT": "scada/supervised",
                "HEALTH_PORT": str(health),
                "HEALTH_HOST": "127.0.0.1",
                "DATABASE_URL": database_url,
                "ODOO_URL": f"http://127.0.0.1:{odoo}",
                "ODOO_DB": "plant",
                "ODOO_LOGIN": "admin",
                "ODOO_PASSWORD": "admin",
                "ODOO_SIM_EXTRA_MOS": "40",
                "PLC_HOST": "127.0.0.1",
                "PLC_PORT": str(free_port(2)),
                "PLC_NODE": "1",
                "GATEWAY_STATE_DIR": str(tmp_path / "gateway-state"),
                "PLC_SLOTS": "1",
                "PLC_SIM_CONTROL_PORT": str(plc_control),
                "POLL_INTERVAL_MS": "100",
                "SYNC_SWEEP_S": "5",
                "ODOO_POLL_S": "30",
                "REPORT_RETRY_S": "0.5",
                "RETENTION_FIRST_DELAY_S": "2",
            }
            programs = [
                # supervisord.py passes the production-relevant sim flags; short batches are a test choice.
                dataclasses.replace(p, command=[*p.command, "--batch-seconds", "0.8", "--seed", "7"])
                if p.name == "plc_sim"
                else p
                for p in default_programs(env, with_simulators=True)
            ]
            conf = write_supervisor_config(tmp_path / "run", env, programs)
            sup = Supervisor(conf).start()
            engine = sa.create_engine(db_url)
            try:
                yield Running(sup, engine, {n: health + i for i, n in enumerate(HEALTHZ)}, plc_control)
            finally:
                sup.stop()
                engine.dispose()
    finally:
        broker.stop()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _log_tail(sup: Supervisor) -> str:
    logs = sup.config.parent / "logs"
    return "\n".join(
        f"===== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log"))
    )


def test_supervised_system_runs_restarts_one_service_and_stops(system: Running) -> None:
    sup = system.sup
    sup.wait_for_state(PROGRAMS, "RUNNING", timeout=30)
    for name in HEALTHZ:
        wait_until(functools.partial(system.healthy, name), 30, interval=0.3, what=f"{name} /healthz healthy")
    wait_until(lambda: system.completed() >= 2, 60, interval=0.3, what="two batches completed")
    wait_until(lambda: system.count(OLD_AUDIT) == 0, 30, interval=0.3, what="housekeeping's purge")

    before = system.pids()
    assert all(before.values()), before
    done = sup.ctl("restart", "mo_planner")
    assert done.returncode == 0, done.stdout + done.stderr
    sup.wait_for_state(PROGRAMS, "RUNNING", timeout=30)
    after = system.pids()
    assert after["mo_planner"] not in (0, before["mo_planner"])
    assert {n: p for n, p in after.items() if n != "mo_planner"} == {
        n: p for n, p in before.items() if n != "mo_planner"
    }, "restarting mo_planner must not touch any other program"
    wait_until(lambda: system.healthy("mo_planner"), 30, interval=0.3, what="mo_planner healthy again")

    # batches keep flowing through the restarted planner
    base = system.completed()
    try:
        wait_until(lambda: system.completed() >= base + 3, 60, interval=0.3, what="batches after the restart")
    except TimeoutError:
        raise AssertionError(_log_tail(sup)) from None
    plc = http_json(f"http://127.0.0.1:{system.plc_control}/state")
    assert all(s["violations"] == 0 and s["invalid_commands"] == 0 for s in plc["slots"]), plc["slots"]
    for name in SERVICES:
        assert system.healthy(name), name

    # shutdown: every program stopped, supervisord exits cleanly
    pids = system.pids()
    cmdlines = {name: _cmdline(pid) for name, pid in pids.items()}
    sup.stop()
    assert sup.process is not None and sup.process.returncode == 0
    for name, pid in pids.items():
        # the pid is gone (or reused by an unrelated process)
        assert _cmdline(pid) != cmdlines[name], f"{name} (pid {pid}) still runs after the shutdown"
