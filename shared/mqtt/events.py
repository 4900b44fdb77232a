"""Lifecycle events: `{root}/events/batch` (what happened to which MO), `{root}/events/weighing` (manual
weighings), `{root}/events/failure` (failure events that need a person) and `{root}/events/gateway` (PLC alarms:
mode, clock), for operators and triggers."""

from __future__ import annotations

from typing import Any, Literal

BatchEvent = Literal[
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


def batch_event(event: BatchEvent, mo_id: str | None, slot: int | None = None, **details: Any) -> dict[str, Any]:
    return {"event": event, "mo_id": mo_id, "slot": slot, **details}


FailureEventKind = Literal["attention", "retry"]


def failure_event(event: FailureEventKind, event_id: str, **details: Any) -> dict[str, Any]:
    return {"event": event, "event_id": event_id, **details}


GatewayEventKind = Literal["alarm", "cleared"]


def gateway_event(event: GatewayEventKind, alarm: str, **details: Any) -> dict[str, Any]:
    return {"event": event, "alarm": alarm, **details}


WeighingEventKind = Literal["stored", "acked", "reported", "attention", "retry"]


def weighing_event(event: WeighingEventKind, weighing_id: int, event_id: str, **details: Any) -> dict[str, Any]:
    """`{root}/events/weighing`: what happened to one stored manual weighing (row id + the PLC content id)."""
    return {"event": event, "weighing_id": weighing_id, "event_id": event_id, **details}
