"""What mo_planner tells the plant about its batches: lifecycle events on `{root}/events/batch`, and an alarm
for a READ snapshot it did not apply (once per slot, reason and memory content: snapshots repeat)."""

from __future__ import annotations

import logging
from typing import Any

from shared.mqtt.client import MqttLink
from shared.mqtt.events import BatchEvent, BatchEventKind
from shared.mqtt.payloads import utc_now
from shared.mqtt.snapshots import ReadSlotSnapshot

from .metrics import PlannerMetrics
from .settings import SERVICE

log = logging.getLogger("mo_planner")
ALARMS_REMEMBERED = 1000  # alarms already raised, kept to say each once; forgotten all at once beyond this


class Announcer:
    def __init__(self, link: MqttLink, topic: str, metrics: PlannerMetrics) -> None:
        self.link = link
        self.topic = topic
        self.metrics = metrics
        self.alarmed: set[tuple[int, str, str]] = set()

    def event(self, event: BatchEventKind, mo_id: str | None, slot: int | None, **details: Any) -> None:
        message = BatchEvent(ts=utc_now(), source=SERVICE, event=event, mo_id=mo_id, slot=slot, **details)
        self.link.publish_json(self.topic, message.wire())

    def alarm(self, slot: int, snap: ReadSlotSnapshot, reason: str) -> None:
        key = (slot, reason, str(snap.words))
        if key in self.alarmed:
            return
        self.alarmed.add(key)
        if len(self.alarmed) > ALARMS_REMEMBERED:
            self.alarmed.clear()
        self.metrics.alarms.inc()
        log.error("snapshot not applied", extra={"slot": slot, "reason": reason})
        self.event("alarm", snap.mo_id, slot, reason=reason)
