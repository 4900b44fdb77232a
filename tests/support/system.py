"""The whole system as separate processes for end-to-end and fault tests: a private Mosquitto, a fresh
PostgreSQL database (migrated with the real `alembic upgrade head`), plc-sim, odoo-sim and the four services.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.support.procs import Proc, Watcher, console, wait_until
from tests.support.servers import Broker, free_port, fresh_database, start_mosquitto

REPO = Path(__file__).resolve().parents[2]
ROOT = "scada/e2e"
SERVICES = {
    "plc_gateway": "plc-gateway",
    "mo_planner": "mo-planner",
    "odoo_sync": "odoo-sync",
    "failure_monitor": "failure-monitor",
}


def http_json(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


class System:
    def __init__(
        self,
        tmp: Path,
        *,
        slots: int = 1,
        batch_seconds: float = 0.6,
        sim_args: list[str] | None = None,
        odoo_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        extra_mos: int = 30,
    ) -> None:
        self.tmp = tmp
        self.stack = contextlib.ExitStack()
        (tmp / "mosq").mkdir()
        self.broker: Broker = start_mosquitto(workdir=tmp / "mosq")
        self.stack.callback(self.broker.stop)
        self.db_url = self.stack.enter_context(fresh_database("e2e"))
        subprocess.run(
            [console("alembic"), "upgrade", "head"],
            cwd=REPO,
            check=True,
            capture_output=True,
            env={**os.environ, "DATABASE_URL": self.db_url.replace("+psycopg2", "")},
        )
        self.engine = sa.create_engine(self.db_url)
        self.stack.callback(self.engine.dispose)
        self.sim_port, self.sim_control = free_port(2), free_port()
        self.odoo_port = free_port()
        self.procs: dict[str, Proc] = {}
        self.sim_args = [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.sim_port),
            "--control-port",
            str(self.sim_control),
            "--node",
            "1",
            "--slots",
            str(slots),
            "--batch-seconds",
            str(batch_seconds),
            "--seed",
            "11",
            *(sim_args or []),
        ]
        self.odoo_args = [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.odoo_port),
            "--extra-mos",
            str(extra_mos),
            "--rng-seed",
            "5",
            *(odoo_args or []),
        ]
        self.start_proc("plc-sim", [console("plc-sim"), *self.sim_args])
        self.start_proc("odoo-sim", [console("odoo-sim"), *self.odoo_args])
        try:
            wait_until(lambda: self._up(f"http://127.0.0.1:{self.sim_control}/state"), 15, what="plc-sim")
            wait_until(lambda: self._up(f"http://127.0.0.1:{self.odoo_port}/_sim"), 15, what="odoo-sim")
        except BaseException:
            self.stop()  # the caller gets no System to stop: never leave its processes behind
            raise
        self.health_ports = {name: free_port() for name in SERVICES}
        self.env = {
            "MQTT_URL": self.broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "DATABASE_URL": self.db_url.replace("+psycopg2", ""),
            "ODOO_URL": f"http://127.0.0.1:{self.odoo_port}",
            "ODOO_DB": "plant",
            "ODOO_LOGIN": "admin",
            "ODOO_PASSWORD": "admin",
            "PLC_HOST": "127.0.0.1",
            "PLC_PORT": str(self.sim_port),
            "PLC_NODE": "1",
            "GATEWAY_NODE": "10",
            "GATEWAY_STATE_DIR": str(tmp / "gateway-state"),
            "PLC_SLOTS": str(slots),
            "POLL_INTERVAL_MS": "100",
            "SYNC_SWEEP_S": "5",
            "ODOO_POLL_S": "30",
            "REPORT_RETRY_S": "0.5",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.watch = Watcher(self.broker.host, self.broker.port, f"{ROOT}/#")
        self.stack.callback(lambda: self.watch.stop())
        for name in SERVICES:
            self.start_service(name)

    def _up(self, url: str) -> bool:
        try:
            http_json("GET", url)
            return True
        except OSError:
            return False

    def start_proc(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / f"{name}.log"
        self.procs[name] = Proc(name, args, env or {}, log).start()
        return self.procs[name]

    def start_service(self, name: str) -> Proc:
        env = {**self.env, "HEALTH_PORT": str(self.health_ports[name]), "MQTT_CLIENT_ID": f"{name}-e2e"}
        return self.start_proc(name, [console(SERVICES[name])], env)

    def wait_healthy(self, timeout: float = 30) -> None:
        for name, port in self.health_ports.items():
            wait_until(functools.partial(self._healthy, port), timeout, what=f"{name} healthy")

    def _healthy(self, port: int) -> bool:
        try:
            return bool(http_json("GET", f"http://127.0.0.1:{port}/healthz").get("healthy"))
        except OSError:
            return False

    # -- observation

    def plc_state(self) -> dict[str, Any]:
        return dict(http_json("GET", f"http://127.0.0.1:{self.sim_control}/state"))

    def plc(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return http_json(method, f"http://127.0.0.1:{self.sim_control}{path}", body)

    def odoo_state(self) -> dict[str, Any]:
        return dict(http_json("GET", f"http://127.0.0.1:{self.odoo_port}/_sim/state"))

    def odoo(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return http_json(method, f"http://127.0.0.1:{self.odoo_port}{path}", body)

    def sql(self, query: str, **params: Any) -> list[Any]:
        with Session(self.engine) as s:
            return list(s.execute(sa.text(query), params).all())

    def completed(self) -> int:
        return int(self.sql("SELECT count(*) FROM mo_histories WHERE status = 'completed'")[0][0])

    def edgectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The operator CLI against this system's broker and database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MQTT_", "EDGECTL_"))}
        env.update(MQTT_URL=self.env["MQTT_URL"], MQTT_TOPIC_ROOT=ROOT, DATABASE_URL=self.env["DATABASE_URL"])
        return subprocess.run([console("edgectl"), *args], capture_output=True, text=True, timeout=60, env=env)

    def logs(self) -> str:
        return "\n".join(f"===== {n}\n{p.log()[-6000:]}" for n, p in self.procs.items())

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.terminate()
        self.stack.close()
