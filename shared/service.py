"""The one shape of a threaded worker (odoo_sync, failure_monitor, mo_planner, housekeeping); the settings
every service shares are in shared/settings.py.

Model: Home Assistant's DataUpdateCoordinator: one base owns the I/O, health and errors, a service provides
its work. `Worker` owns the settings, the SQLAlchemy engine built from DATABASE_* (pool size, connect timeout,
`application_name` = the service), the session factory, the metrics registry, /healthz and /metrics with one
stall policy, and the run loop: `step()` -> seconds until it is due again, then sleep until then, a `wake()`
or stop. `MqttWorker` adds the broker link (messages routed to handlers that run on the worker's own thread,
between steps) and the gateway-command client. A worker with more than one cycle (failure_monitor's Odoo
reporters) adds a `Reporter` per thread; each has the same database policy.

Database policy (every loop, every message handler): an OperationalError (PostgreSQL away, a broken
connection) is logged, turns /healthz's `database` check red, and the loop tries again after DB_RETRY_S. Work
that was not committed was not acknowledged or sent: the PLC re-delivers its events, snapshots repeat, rows
stay due. Any other exception ends the worker (the supervisor restarts it), except in a loop made with
`keep_going` (a reporter that must not die silently while the rest runs on).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from shared import __version__
from shared.config import ConfigError, load
from shared.db.session import DatabaseSettings, make_session_factory
from shared.health import readiness, start_health_server
from shared.logging import register_secret, setup_logging
from shared.mqtt.client import Delivery, Message, MqttLink, Route, json_object
from shared.mqtt.commands import CommandClient
from shared.mqtt.status import StatusDetails
from shared.settings import RuntimeSettings, ServiceSettings

log = logging.getLogger(__name__)

DB_RETRY_S = 1.0  # after an OperationalError: PostgreSQL restarts take seconds, not minutes
BUG_RETRY_S = 10.0  # after an unexpected error in a `keep_going` loop (logged with its traceback)
# /healthz says "loop stalled" when the worker's main loop has missed its planned wake-up by this much. One
# value for every worker: long enough for the slowest single unit of work (an Odoo call that runs into its
# read timeout, renews the session and reads again), short enough for a restart to matter.
STALL_GRACE_S = 120.0
POLL_STOP_S = 1.0  # a sleeping loop looks at the stop event at least this often


class DatabaseWorkerSettings(RuntimeSettings, DatabaseSettings):
    """A worker on PostgreSQL only (housekeeping)."""


class WorkerSettings(ServiceSettings, DatabaseWorkerSettings):
    """A worker on the broker and PostgreSQL (odoo_sync, failure_monitor, mo_planner)."""


S = TypeVar("S", bound=DatabaseWorkerSettings)
W = TypeVar("W", bound=WorkerSettings)


class Loop:
    """One thread's cycle: `step()` returns the seconds until it is due again; the loop sleeps until then, a
    `wake()` or stop, and applies the database policy (module docstring) to every step."""

    def __init__(self, name: str, step: Callable[[], float], *, keep_going: bool = False) -> None:
        self.name = name
        self.step = step
        self.keep_going = keep_going
        self.db_ok = True
        self.stop = threading.Event()
        self._woken = threading.Event()
        self._beat = time.monotonic()
        self._due_in = 0.0

    def wake(self) -> None:
        """Run the step now (thread-safe): new work arrived."""
        self._woken.set()

    def beat(self) -> None:
        """Progress: a long step (a backlog of rows) calls this per unit, so it is not taken for a stall."""
        self._beat = time.monotonic()

    def overdue_s(self) -> float:
        """How long the loop is past its planned wake-up (negative while it sleeps as planned)."""
        return time.monotonic() - (self._beat + self._due_in)

    def failed(self, exc: Exception) -> float:
        """The database policy, called with what a step or handler raised: how long to wait before the next
        attempt. Re-raises what no wait can fix, unless the loop is `keep_going`."""
        if isinstance(exc, OperationalError):
            self.db_ok = False
            log.error("database unavailable", extra={"loop": self.name, "error": str(exc.orig)})
            return DB_RETRY_S
        if not self.keep_going:
            raise exc
        log.exception("loop failed; continuing", extra={"loop": self.name})
        return BUG_RETRY_S

    def run(self, stop: threading.Event) -> None:
        self.stop = stop
        while not stop.is_set():
            try:
                delay = self.step()
                self.db_ok = True
            except Exception as exc:
                delay = self.failed(exc)
            self._due_in = delay
            self.beat()
            self.sleep(delay)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self._woken.wait(min(POLL_STOP_S, left)):
                break
        self._woken.clear()


class Reporter(Loop):
    """A loop that works off due rows: `one()` handles one and says whether it did (more may be due); then the
    loop sleeps `due_in()` seconds, until the next row is due. Kept going after a bug (logged): a reporter that
    died silently would leave the rest of the worker looking healthy."""

    def __init__(self, name: str, one: Callable[[], bool], due_in: Callable[[], float]) -> None:
        super().__init__(name, self._work_off, keep_going=True)
        self.one = one
        self.due_in = due_in

    def _work_off(self) -> float:
        while not self.stop.is_set() and self.one():
            self.beat()
        return self.due_in()


_NOTHING = Delivery(lambda message: None, Message("", b"", False))


class InboxLoop(Loop):
    """The main loop of a worker on the broker: while it sleeps it runs the handlers of the messages its link
    hands over (in arrival order, on this thread), each under the database policy."""

    def __init__(self, name: str, step: Callable[[], float], inbox: queue.Queue[Delivery]) -> None:
        super().__init__(name, step)
        self.inbox = inbox

    def wake(self) -> None:
        super().wake()
        self.inbox.put(_NOTHING)  # ends the wait for the next message at once

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            try:
                # A step due at once still lets one waiting message through: a busy step never starves them.
                delivery = self.inbox.get(timeout=min(POLL_STOP_S, left)) if left > 0 else self.inbox.get_nowait()
            except queue.Empty:
                if left <= 0:
                    break
                continue
            if delivery is not _NOTHING:
                try:
                    delivery.run()
                    self.db_ok = True
                except Exception as exc:
                    # Not stored = not acknowledged: the PLC keeps its event, snapshots repeat. Messages wait.
                    self.stop.wait(self.failed(exc))
                self.beat()
            if self._woken.is_set() or left <= 0:
                break
        self._woken.clear()


def seconds_until_due(
    db: sessionmaker[Session], column: InstrumentedAttribute[Any], *where: Any, cap: float
) -> float:
    """Seconds until the earliest `column` (a next_attempt_at) of the rows `where` selects, within [0.05, cap]:
    a worker sleeps until its next due retry, and never longer than its safety sweep."""
    with db() as session:
        nxt: dt.datetime | None = session.scalar(
            select(column).where(column.is_not(None), *where).order_by(column).limit(1)
        )
    if nxt is None:
        return cap
    return max(0.05, min(cap, (nxt - dt.datetime.now(dt.UTC)).total_seconds()))


L = TypeVar("L", bound=Loop)


class Worker(Generic[S]):
    """A threaded worker with PostgreSQL (see the module docstring). Subclasses set `service`, implement
    `step()`, and may add health checks and details, loops, and start/stop hooks."""

    service: ClassVar[str]
    settings_class: ClassVar[type[DatabaseWorkerSettings]]

    @classmethod
    def main(cls) -> None:
        """The service's console script (`python -m services.<service>`)."""
        run_worker(cls)

    def __init__(self, settings: S, inbox: queue.Queue[Delivery] | None = None) -> None:
        self.settings = settings
        self.engine = settings.make_engine(application_name=self.service)
        self.db = make_session_factory(self.engine)
        self.registry = CollectorRegistry()
        self.main_loop: Loop = (
            InboxLoop(self.service, self._main_step, inbox)
            if inbox is not None
            else Loop(self.service, self._main_step)
        )
        self.loops: list[Loop] = []  # further cycles, each on its own thread

    # -- what a service provides

    def step(self) -> float:
        """The worker's periodic work; returns the seconds until it is due again."""
        raise NotImplementedError

    def health_checks(self) -> dict[str, str | None]:
        """The service's own /healthz checks (e.g. `odoo`), each None when fine."""
        return {}

    def health_details(self) -> dict[str, Any]:
        return {}

    def started_details(self) -> dict[str, Any]:
        return {}

    def on_start(self) -> None:
        """Start the service's own helpers (threads) before the first step."""

    def on_stop(self) -> None:
        """Stop them after the last step."""

    # -- what the base provides

    def add_loop(self, loop: L) -> L:
        """A further cycle (a reporter), run on its own thread from start to stop."""
        self.loops.append(loop)
        return loop

    def wake(self) -> None:
        self.main_loop.wake()

    def beat(self) -> None:
        self.main_loop.beat()

    def broker_ok(self) -> bool | None:
        """None: the worker has no broker link."""
        return None

    def health(self) -> dict[str, Any]:
        broker = self.broker_ok()
        db_ok = all(loop.db_ok for loop in (self.main_loop, *self.loops))
        stalled = self.main_loop.overdue_s() > STALL_GRACE_S
        checks: dict[str, str | None] = {}
        details: dict[str, Any] = {}
        if broker is not None:
            checks["broker"] = None if broker else "not connected"
            details["mqtt_connected"] = broker
        checks["database"] = None if db_ok else "unavailable"
        checks.update(self.health_checks())
        checks["loop"] = f"stalled for more than {STALL_GRACE_S:g} s" if stalled else None
        return readiness(checks, **details, database_ok=db_ok, **self.health_details())

    def run(self, stop: threading.Event) -> None:
        health = start_health_server(
            self.settings.health_port, self.registry, self.health, self.settings.health_host
        )
        threads = [
            threading.Thread(target=loop.run, args=(stop,), name=loop.name, daemon=True) for loop in self.loops
        ]
        self.on_start()
        for thread in threads:
            thread.start()
        self._connect()
        log.info("%s started", self.service, extra=self.started_details())
        try:
            self.main_loop.run(stop)
        finally:
            for loop in self.loops:
                loop.wake()
            for thread in threads:
                thread.join(5)
            self.on_stop()
            self._disconnect()
            if health:
                health.stop()
            self.engine.dispose()
            log.info("%s stopped", self.service)

    def _main_step(self) -> float:
        return self.step()

    def _connect(self) -> None:
        """Start the broker link, if any (after the helpers: no message finds them missing)."""

    def _disconnect(self) -> None:
        """Stop the broker link, if any."""


class MqttWorker(Worker[W]):
    """A worker on the broker: `routes` name a handler per subscription (run on the worker's thread, between
    steps); `commands` sends gateway commands, settles their replies and resends the overdue ones after every
    step. A worker that sends commands gives their expiry (`command_ttl_s`) and resend period."""

    def __init__(
        self,
        settings: W,
        *,
        routes: list[Route],
        birth: StatusDetails,
        command_ttl_s: float | None = None,
        command_resend_s: float | None = None,
    ) -> None:
        inbox: queue.Queue[Delivery] = queue.Queue()
        super().__init__(settings, inbox)
        self.topics = settings.topics
        self.commands = CommandClient(
            self.topics,
            self.service,
            lambda topic, body: self.link.publish_json(topic, body),
            ttl_s=command_ttl_s or 0.0,
            resend_after_s=command_resend_s,
        )
        if command_ttl_s is not None:  # a worker that sends no command may not read a reply topic (ACL)
            routes = [*routes, Route(self.commands.reply_topic, self._on_command_reply)]
        self.link = MqttLink(
            address=settings.broker(),
            client_id=settings.client_id(self.service),
            status_topic=self.topics.svc_status(self.service),
            source=self.service,
            routes=routes,
            birth=birth.model_copy(update={"version": __version__}),
            inbox=inbox,
        )

    def _on_command_reply(self, msg: Message) -> None:
        body = json_object(msg.payload)
        if body is not None:
            self.commands.on_reply(body)

    def broker_ok(self) -> bool:
        return self.link.connected.is_set()

    def _main_step(self) -> float:
        delay = self.step()
        due = self.commands.resend_overdue()
        return delay if due is None else min(delay, due)

    def _connect(self) -> None:
        self.link.start()

    def _disconnect(self) -> None:
        self.link.stop()


def run_worker(worker: type[Worker[Any]]) -> None:
    """Console-script main of a worker: validate config (exit 2 with a clear message), JSON logs, every secret
    of the settings masked in logs, SIGTERM/SIGINT -> graceful stop."""
    name = worker.service
    try:
        settings = load(worker.settings_class)
        setup_logging(name, settings.log_level)
        for field in type(settings).model_fields:
            value = getattr(settings, field)
            if isinstance(value, SecretStr):
                register_secret(value.get_secret_value())
        service = worker(settings)
    except ConfigError as exc:
        print(f"{name.replace('_', '-')}: {exc}", file=sys.stderr)
        sys.exit(2)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.run(stop)
