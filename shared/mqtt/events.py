"""Lifecycle events: `{root}/events/batch` (what happened to which MO), `{root}/events/weighing` (manual
weighings), `{root}/events/failure` (failure events that need a person) and `{root}/events/gateway` (PLC alarms:
mode, clock), for operators and triggers. Typed messages (shared/mqtt/wire.py): senders build them, receivers
validate them.

On the wire an event carries only the details that apply (an absent detail is left out, not null).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import model_serializer

from shared.mqtt.wire import ContentId, Envelope

BatchEventKind = Literal[
    "queued",
    "written",
    "accepted",
    "running",
    "finished",
    "failed",
    "reported",
    "archived",
    "cancelled",
    "attention",
    "alarm",
    "retry",
]


class _Event(Envelope):
    # Keys on the wire even when null; every other None detail is left out.
    ALWAYS_SENT: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_absent_details(self, handler: Any) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        return {k: v for k, v in body.items() if v is not None or k in self.ALWAYS_SENT}


class BatchEvent(_Event):
    ALWAYS_SENT = frozenset({"mo_id", "slot"})

    event: BatchEventKind
    mo_id: str | None
    slot: int | None = None
    reason: str | None = None  # why (attention, alarm, cancelled, a re-queue)
    code: str | None = None  # the gateway's reply code of a write, or how it was seen (seen_on_plc)
    weight: float | None = None  # finished weight (finished, failed)
    warnings: list[str] | None = None  # mapping warnings (queued, alarm)
    status: str | None = None  # the archive status (archived)


class FailureEvent(_Event):
    event: Literal["attention", "retry"]
    event_id: ContentId
    reason: str | None = None


class GatewayEvent(_Event):
    event: Literal["alarm", "cleared"]
    alarm: str
    message: str | None = None
    mode: str | None = None
    clock_offset_s: float | None = None


WeighingEventKind = Literal["stored", "acked", "reported", "attention", "retry"]


class WeighingEvent(_Event):
    """What happened to one stored manual weighing (its row id + the PLC content id)."""

    event: WeighingEventKind
    weighing_id: int
    event_id: ContentId
    item: int | None = None
    mo_id: str | None = None
    product_id: int | None = None
    kg: float | None = None
    applied_kg: float | None = None
    code: str | None = None
    reason: str | None = None
