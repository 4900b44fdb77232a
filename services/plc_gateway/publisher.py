"""What the gateway publishes about PLC memory: change detection, sequence numbers, heartbeats. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.mqtt.payloads import utc_now
from shared.mqtt.snapshots import SNAPSHOT_MODELS, AreaSnapshot
from shared.mqtt.wire import validation_reasons
from shared.plc.snapshot import Snapshot


@dataclass
class _Published:
    words: tuple[int, ...]
    seq: int
    at: float  # monotonic time of the last publication (change or heartbeat)


class SnapshotTracker:
    """Decides per topic whether a snapshot is news (changed), due (heartbeat) or neither."""

    def __init__(self, heartbeat_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self._last: dict[str, _Published] = {}
        self._force = True

    def force_all(self) -> None:
        """After a (re)connect every retained topic is republished once."""
        self._force = True

    def end_cycle(self) -> None:
        self._force = False

    def observe(self, topic: str, snap: Snapshot, now: float) -> tuple[bool, bool, int] | None:
        """(changed, heartbeat, seq) when the snapshot should be published, else None."""
        last = self._last.get(topic)
        if last is None or last.words != snap.words:
            seq = (last.seq + 1) if last else 1
            self._last[topic] = _Published(snap.words, seq, now)
            return True, False, seq
        if self._force or now - last.at >= self.heartbeat_s:
            last.at = now
            return False, True, last.seq
        return None

    def forget(self, topic: str) -> None:
        self._last.pop(topic, None)


def snapshot_message(snap: Snapshot, seq: int, heartbeat: bool, source: str) -> AreaSnapshot:
    """The typed message of a decoded area (shared/mqtt/snapshots.py). The decoder's output always fits it; if a
    bug ever broke that, the area is published as invalid with the reason, never as something receivers refuse
    one by one."""
    body: dict[str, Any] = {
        "ts": utc_now(),
        "source": source,
        "area": snap.area,
        "slot": snap.slot,
        "seq": seq,
        "heartbeat": heartbeat,
        "valid": snap.valid,
        "empty": snap.empty,
        "errors": list(snap.errors),
        "fields": snap.fields,
        "words": list(snap.words),
    }
    model = SNAPSHOT_MODELS[snap.area]
    if snap.area == "failure":
        # An event is pending for failure_monitor only while the PLC waits for its acknowledgement.
        body["pending"] = snap.valid and not snap.empty and snap.flag == 0
        body["event_id"] = snap.fields.get("event_id") if body["pending"] else None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        reason = f"decoded fields do not fit the {snap.area} message: {validation_reasons(exc)}"
        invalid = body | {"valid": False, "empty": False, "errors": [reason], "fields": {}}
        if snap.area == "failure":
            invalid |= {"pending": False, "event_id": None}
        return model.model_validate(invalid)
