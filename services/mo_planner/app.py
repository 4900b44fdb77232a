"""mo_planner (seed Tasks 1 and 2): Odoo MOs -> mo_batch -> write_batch; PLC feedback -> mo_batch -> ack_slot.

The worker wires three parts that share its database, command client and events: `refill.py` (Odoo's MOs into
the queue, re-checked right before a write), `dispatch.py` (a queued batch into a free slot) and
`slot_tracking.py` (the slots' snapshots applied to their batches, acknowledgements, lost batches); the
decisions are pure functions in rules.py, the SQL lives in shared/db/repo.py.

One thread owns the database work and the decisions: the worker base (shared/service.py) runs the message
handlers and the periodic step on it; paho's thread only queues messages and the Odoo feed runs on its own
thread. Every acknowledgement is sent after the commit that stored what it acks.
"""

from __future__ import annotations

import time
from typing import Any

from shared.config import ConfigError
from shared.db.batch_state import BatchState
from shared.db.repo import state_counts
from shared.mqtt.client import Message, Route
from shared.mqtt.status import StatusDetails
from shared.odoo.client import OdooClient
from shared.plc.memory_map import MemoryMap, MemoryMapError, load_memory_map, with_active_slots
from shared.service import MqttWorker

from .announce import Announcer
from .dispatch import Dispatcher
from .metrics import PlannerMetrics
from .odoo_feed import OdooFeed
from .refill import QueueRefill
from .settings import SERVICE, PlannerSettings
from .slot_tracking import SlotTracker

TICK_S = 0.25  # periodic work (resends, Odoo refill, dispatch safety net); messages are handled at once
GAUGE_S = 2.0  # the queue-depth gauge is refreshed at most this often


class Planner(MqttWorker[PlannerSettings]):
    service = SERVICE
    settings_class = PlannerSettings

    def __init__(
        self, settings: PlannerSettings, memory_map: MemoryMap | None = None, odoo: OdooClient | None = None
    ) -> None:
        if memory_map is None:
            try:
                memory_map = with_active_slots(load_memory_map(settings.plc_map), settings.plc_slots)
            except MemoryMapError as exc:
                raise ConfigError(str(exc)) from None
        topics = settings.topics
        super().__init__(
            settings,
            routes=[
                Route(topics.plc_read("+"), self._on_snapshot),
                Route(topics.plc_write("+"), self._on_snapshot),
            ],
            birth=StatusDetails(slots=memory_map.active_slots),
            command_ttl_s=settings.command_ttl_s,
            command_resend_s=settings.command_timeout_s,
        )
        self.map = memory_map
        self.metrics = PlannerMetrics(self.registry)
        self.announce = Announcer(self.link, topics.batch_events, self.metrics)
        # The Odoo thread wakes this loop with each answer: a slot may be waiting for exactly that mo-detail.
        self.feed = OdooFeed(odoo or OdooClient(settings), settings.odoo_states, on_result=self.wake)
        self.refill = QueueRefill(settings, memory_map, self.db, self.feed, self.announce, self.metrics)
        self.slots = SlotTracker(
            memory_map, topics, self.db, self.commands, self.announce, self.metrics, after_change=self.dispatch
        )
        self.dispatcher = Dispatcher(
            memory_map, self.db, self.commands, self.slots, self.refill, self.announce, self.metrics
        )
        self.last_gauge = 0.0
        self.last_tick = 0.0

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self.feed.start()

    def on_stop(self) -> None:
        self.feed.stop()

    def started_details(self) -> dict[str, Any]:
        return {"slots": self.map.active_slots, "lookahead": self.settings.lookahead}

    def health_checks(self) -> dict[str, str | None]:
        return {"odoo": self.feed.client.login_error}

    def health_details(self) -> dict[str, Any]:
        return {"pending_commands": len(self.commands)}

    # ------------------------------------------------------------------ work

    def step(self) -> float:
        """Apply what the Odoo thread brought; every TICK_S the periodic work (tick)."""
        self._drain_feed()
        if time.monotonic() - self.last_tick >= TICK_S:
            self.tick()
            self.last_tick = time.monotonic()
        return max(0.0, self.last_tick + TICK_S - time.monotonic())

    def tick(self) -> None:
        self.slots.detect_lost_batches()
        self._drain_feed()
        self.refill.poll()
        self._update_gauge()
        self.dispatch()

    def dispatch(self) -> None:
        self.dispatcher.dispatch()

    def _on_snapshot(self, msg: Message) -> None:
        self.slots.on_snapshot(msg)

    def _drain_feed(self) -> None:
        if self.refill.drain():
            self.dispatch()  # a slot was waiting for exactly this answer

    def _update_gauge(self) -> None:
        mono = time.monotonic()
        if mono - self.last_gauge > GAUGE_S:
            self.last_gauge = mono
            with self.db() as session:
                counts = state_counts(session)
            for state in BatchState:
                self.metrics.queue_depth.labels(state.value).set(counts.get(state.value, 0))
