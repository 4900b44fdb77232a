"""mo_planner in-process: the real `Planner` worker, its main loop driven step by step on the test's thread
(`run_until`), so a test can look at the database, the broker and the worker's own state between steps.

Everything around it is real, as in production: a migrated PostgreSQL database, a private Mosquitto, the Odoo
simulator over HTTP (in a thread) and, when the test needs the PLC side (`plc=True`), plc-sim over UDP behind the
real `plc-gateway` process. No mocks of the broker, the database or the network; what the planner sends and
receives is what the gateway and Odoo really answer.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.mo_planner.app import Planner
from services.mo_planner.settings import PlannerSettings
from shared.db.migrate import upgrade
from shared.db.models import AuditEvent, MoBatch
from shared.mqtt.status import ServiceStatus
from shared.mqtt.topics import Topics
from simulators.odoo.server import SimServer, start_server
from tests.support.plcsim import PlcSimProcess, start_plc_sim
from tests.support.procs import Proc, Watcher, console, wait_until
from tests.support.servers import Broker, free_port

ROOT = "scada/harness"
T = TypeVar("T")


def _status(body: dict[str, Any]) -> ServiceStatus:
    """A status message as a receiver takes it (validated; a message that is not one fails the test)."""
    return ServiceStatus.model_validate_json(json.dumps(body))


class PlannerHarness:
    """One planner with its surroundings; `close()` stops what it started (use it as a context manager)."""

    def __init__(
        self,
        tmp: Path,
        broker: Broker,
        database_url: str,
        *,
        slots: int = 1,
        lookahead: int = 0,
        odoo_mos: int = 4,
        plc: bool = True,
        batch_seconds: float = 1.0,
        **settings: Any,
    ) -> None:
        self.tmp = tmp
        self.topics = Topics(ROOT)
        self.stack = contextlib.ExitStack()
        try:
            upgrade(database_url)
            self.engine = sa.create_engine(database_url)
            self.stack.callback(self.engine.dispose)
            self.odoo: SimServer = start_server(extra_mos=odoo_mos, seed=None, rng_seed=3)
            self.stack.callback(self.odoo.stop)
            self.watch = Watcher(broker.host, broker.port, f"{ROOT}/#")
            self.stack.callback(self.watch.stop)
            self.plc: PlcSimProcess | None = None
            self.gateway: Proc | None = None
            if plc:
                self._start_plc(broker, slots, batch_seconds)
            values: dict[str, Any] = {
                "database_url": database_url,
                "mqtt_url": broker.url,
                "mqtt_topic_root": ROOT,
                "mqtt_client_id": "mo_planner-harness",
                "odoo_url": self.odoo.url,
                "odoo_db": "plant",
                "odoo_login": "admin",
                "odoo_password": "admin",
                "odoo_read_timeout": 3.0,
                "plc_slots": slots,
                "lookahead": lookahead,
                **settings,
            }
            self.planner = Planner(PlannerSettings(**values))
            self.stack.callback(self.planner.engine.dispose)
            self.planner.on_start()  # the Odoo feed's thread
            self.stack.callback(self.planner.on_stop)
            self.planner.link.start()
            self.stack.callback(self.planner.link.stop)
            wait_until(self.planner.link.connected.is_set, 10, what="the planner's broker link")
        except BaseException:
            self.stack.close()
            raise

    def _start_plc(self, broker: Broker, slots: int, batch_seconds: float) -> None:
        self.plc = start_plc_sim("--slots", str(slots), "--batch-seconds", str(batch_seconds), "--node", "1")
        self.stack.callback(self.plc.stop)
        env = {
            "MQTT_URL": broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "MQTT_CLIENT_ID": "plc_gateway-harness",
            "PLC_HOST": self.plc.host,
            "PLC_PORT": str(self.plc.port),
            "PLC_NODE": "1",
            "GATEWAY_NODE": "10",
            "GATEWAY_STATE_DIR": str(self.tmp / "gateway-state"),
            "PLC_SLOTS": str(slots),
            "POLL_INTERVAL_MS": "100",
            "HEALTH_PORT": str(free_port()),
        }
        self.gateway = Proc("plc_gateway", [console("plc-gateway")], env, self.tmp / "gateway.log").start()
        self.stack.callback(self.gateway.terminate)
        self.watch.wait_for(lambda t, b: t == self.topics.gateway_status and _status(b).online, 20)

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> PlannerHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- driving the worker

    def run_until(self, done: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
        """Run the planner's main loop (its step, then the messages that arrived, in order, on this thread)
        until `done()` returns something true, and return that. An exception of a step or a handler fails
        the test at once (the worker's database policy still retries an OperationalError)."""
        loop = self.planner.main_loop
        deadline = time.monotonic() + timeout
        while not (result := done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached within {timeout:g} s{self._gateway_log()}")
            delay = loop.step()
            loop.beat()
            loop.sleep(min(delay, 0.05))
        return result

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.run_until(lambda: time.monotonic() >= end, seconds + 5, what="time")

    def _gateway_log(self) -> str:
        return f"\n--- gateway log\n{self.gateway.log()[-3000:]}" if self.gateway else ""

    # -- observation

    def batches(self, **where: Any) -> list[MoBatch]:
        """mo_batch rows (filtered by column = value), oldest first, detached."""
        with Session(self.engine, expire_on_commit=False) as s:
            stmt = sa.select(MoBatch).filter_by(**where).order_by(MoBatch.id)
            return list(s.scalars(stmt).all())

    def audit(self, mo_id: str) -> list[AuditEvent]:
        with Session(self.engine) as s:
            return list(s.scalars(sa.select(AuditEvent).where(AuditEvent.mo_id == mo_id).order_by(AuditEvent.id)))

    def plc_slot(self, slot: int) -> dict[str, Any]:
        """plc-sim's own view of a slot (phase, MO, counters)."""
        assert self.plc is not None, "started without the PLC side"
        return dict(self.plc.get("/state")["slots"][slot - 1])

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The batch events the planner published (as the broker delivered them), optionally of one kind."""
        with self.watch._lock:
            bodies = [b for _, t, b, _ in self.watch.messages if t == self.topics.batch_events and b]
        return [b for b in bodies if kind is None or b.get("event") == kind]

    def odoo_confirmed(self) -> list[str]:
        """Names of the MOs Odoo lists as confirmed, in its order."""
        return [m["mo_id"] for m in self.odoo.sim.domain.snapshot()["mos"] if m["state"] == "confirmed"]
