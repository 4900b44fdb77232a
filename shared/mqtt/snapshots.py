"""The snapshots plc_gateway publishes, retained, one per PLC area (`plc/read/N`, `plc/write/N`, `plc/failure`,
`plc/weighing`): one definition for the gateway that builds them and every receiver that validates them
(mo_planner, failure_monitor and its weighing flow, the console, `edgectl watch`).

Shape, as the decoder (shared/plc/snapshot.py) makes it: a valid area with content carries all its fields, a
valid empty slot only its handshake flag, an invalid one no fields and its reasons (reject, never repair).
A message that claims otherwise does not validate: the receiver refuses it like an invalid snapshot.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_serializer, model_validator

from shared.mqtt.payloads import PayloadError, utc_now
from shared.mqtt.wire import ContentId, Envelope, Flag, Kg, SlotNumber, WireModel, Word, parse_message

MoName = Annotated[str, Field(min_length=1, max_length=16)]
PlcTimestamp = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")]
PLC_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class NoFields(WireModel):
    """An invalid snapshot carries no fields: `{}`."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


class SlotFlag(WireModel):
    """A valid area with nothing in it: only its handshake flag."""

    status_read_data: Flag


class BatchSlotFields(WireModel):
    """A batch as a READ or WRITE slot holds it (shared/plc/plant_map.yaml, layout batch_slot)."""

    batch: SlotNumber
    mo_id: MoName
    bom_name: str
    finished_goods: str
    quantity: Kg
    status_manufacturing: Flag
    status_operation: Flag
    weight_finished_good: Kg
    status_read_data: Flag


class ReadSlotFields(BatchSlotFields):
    consumption: dict[str, Kg]  # kg dosed per equipment code

    @property
    def ended(self) -> bool:
        """The PLC reports the batch's end: finished or failed."""
        return self.status_manufacturing == 1 or self.status_operation == 1


class WriteSlotFields(BatchSlotFields):
    targets: dict[str, Kg]  # kg to dose per equipment code


class FailureFields(WireModel):
    equipment_code: str = Field(min_length=1)
    description: str
    timestamp: PlcTimestamp  # the PLC's local wall time
    status_read_data: Flag
    event_id: ContentId
    # Present only when Odoo can never accept the event as it is (stored, acknowledged, then parked).
    unreportable: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _a_real_time(cls, value: str) -> str:
        dt.datetime.strptime(value, PLC_TIME_FORMAT)  # ValueError: not a date (2026-02-30)
        return value

    @property
    def local_time(self) -> dt.datetime:
        """Naive: the plant's wall clock."""
        return dt.datetime.strptime(self.timestamp, PLC_TIME_FORMAT)

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: Any) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        if body.get("unreportable") is None:
            body.pop("unreportable", None)
        return body


class WeighingItem(WireModel):
    """One of the manual-weighing area's items; a value that does not decode is null, with the reason."""

    item: SlotNumber
    product_id: int | None
    kg: Kg | None
    status_manual_weigh_read: Flag | None  # the item's handshake flag
    empty: bool
    valid: bool
    errors: list[str]
    pending: bool  # a valid weighing waits for its acknowledgement (flag 0)
    event_id: ContentId | None  # content id of a valid, non-empty item

    @model_validator(mode="after")
    def _consistent(self) -> WeighingItem:
        if self.valid == bool(self.errors):
            raise ValueError("an item is valid exactly when it lists no errors")
        holds = self.valid and not self.empty
        if (self.event_id is not None) != holds:
            raise ValueError("a valid, non-empty item carries its event_id, and only such an item")
        if self.pending != (holds and self.status_manual_weigh_read == 0):
            raise ValueError("pending means valid, non-empty and flag 0")
        if holds and (self.product_id is None or self.kg is None or self.status_manual_weigh_read is None):
            raise ValueError("a valid, non-empty item has its product, kg and flag")
        return self


class WeighingFields(WireModel):
    batch: int | None  # the shared header; null where it does not decode
    mo_id: str | None
    items: list[WeighingItem]


def _fields_kind(value: Any) -> str:
    """Which shape `fields` has: none ({}), only the flag, or the area's content."""
    if isinstance(value, NoFields) or value == {}:
        return "none"
    if isinstance(value, SlotFlag) or (isinstance(value, dict) and set(value) == {"status_read_data"}):
        return "flag"
    return "content"


# `fields` of an area with one handshake flag: its content, or only the flag (empty), or nothing (invalid).
ReadFields = Annotated[
    Annotated[ReadSlotFields, Tag("content")]
    | Annotated[SlotFlag, Tag("flag")]
    | Annotated[NoFields, Tag("none")],
    Discriminator(_fields_kind),
]
WriteFields = Annotated[
    Annotated[WriteSlotFields, Tag("content")]
    | Annotated[SlotFlag, Tag("flag")]
    | Annotated[NoFields, Tag("none")],
    Discriminator(_fields_kind),
]
FailureAreaFields = Annotated[
    Annotated[FailureFields, Tag("content")] | Annotated[SlotFlag, Tag("flag")] | Annotated[NoFields, Tag("none")],
    Discriminator(_fields_kind),
]


class AreaSnapshot(Envelope):
    """What every snapshot carries. `seq` counts changes per topic; a heartbeat repeats the last one."""

    slot: SlotNumber
    seq: int = Field(ge=0)
    heartbeat: bool
    valid: bool
    empty: bool
    errors: list[str]
    words: list[Word]
    fields: Any

    @model_validator(mode="after")
    def _reasons_match_the_verdict(self) -> AreaSnapshot:
        if self.valid == bool(self.errors):
            raise ValueError("a snapshot is invalid exactly when it names its reasons (errors)")
        return self

    @model_validator(mode="after")
    def _fields_match_the_verdict(self) -> AreaSnapshot:
        if not self.valid:
            if not isinstance(self.fields, NoFields):
                raise ValueError("an invalid snapshot carries no fields")
        elif self.empty and not isinstance(self.fields, SlotFlag):
            raise ValueError("a valid empty snapshot carries only its flag")
        elif not self.empty and isinstance(self.fields, SlotFlag | NoFields):
            raise ValueError("a valid snapshot carries its content")
        return self

    @property
    def flag(self) -> int | None:
        """The area's handshake flag (R, W or F); None when the snapshot is invalid."""
        value = getattr(self.fields, "status_read_data", None)
        return value if isinstance(value, int) else None


class BatchSlotSnapshot(AreaSnapshot):
    """A READ or WRITE slot."""

    @model_validator(mode="after")
    def _batch_matches_the_slot(self) -> BatchSlotSnapshot:
        if isinstance(self.fields, BatchSlotFields) and self.fields.batch != self.slot:
            raise ValueError(f"batch word {self.fields.batch} != slot {self.slot}")
        return self

    @property
    def mo_id(self) -> str | None:
        """The MO the slot holds (None: invalid or empty)."""
        return self.fields.mo_id if isinstance(self.fields, BatchSlotFields) else None

    @classmethod
    def refused(cls, slot: int, reason: str, receiver: str) -> Self:
        """What a receiver holds for a message on this slot's topic that it refused: an invalid snapshot with
        the reason, handled like any invalid one (alarm, nothing applied)."""
        return cls(
            ts=utc_now(),
            source=receiver,
            slot=slot,
            seq=0,
            heartbeat=False,
            valid=False,
            empty=False,
            errors=[reason],
            words=[],
            fields=NoFields(),
        )

    @classmethod
    def received(cls, raw: bytes, slot: int, receiver: str, log: logging.Logger | None = None) -> Self:
        """The snapshot of `slot` as received on its topic, or `refused` with the reason (logged to `log`) when
        the message does not fit or names another slot (anything can be published on a topic: never trusted)."""
        try:
            snap = parse_message(cls, raw)
            if snap.slot != slot:
                raise PayloadError("invalid_payload", f"slot {snap.slot} on the topic of slot {slot}")
        except PayloadError as exc:
            if log is not None:
                log.warning("snapshot refused", extra={"area": cls.__name__, "slot": slot, "reason": str(exc)})
            return cls.refused(slot, f"malformed snapshot: {exc}", receiver)
        return snap


class ReadSlotSnapshot(BatchSlotSnapshot):
    area: Literal["read_slot"] = "read_slot"
    fields: ReadFields

    @property
    def batch(self) -> ReadSlotFields | None:
        """The batch the slot holds (None: invalid or empty)."""
        return self.fields if isinstance(self.fields, ReadSlotFields) else None


class WriteSlotSnapshot(BatchSlotSnapshot):
    area: Literal["write_slot"] = "write_slot"
    fields: WriteFields

    @property
    def batch(self) -> WriteSlotFields | None:
        return self.fields if isinstance(self.fields, WriteSlotFields) else None


class FailureSnapshot(AreaSnapshot):
    area: Literal["failure"] = "failure"
    fields: FailureAreaFields
    # An event is pending for failure_monitor only while the PLC waits for its acknowledgement (F = 0).
    pending: bool
    event_id: ContentId | None

    @model_validator(mode="after")
    def _pending_matches(self) -> FailureSnapshot:
        shown = self.failure
        if self.pending != (shown is not None and shown.status_read_data == 0):
            raise ValueError("pending means a valid event with F = 0")
        if self.event_id != (shown.event_id if self.pending and shown is not None else None):
            raise ValueError("event_id names the pending event, and only a pending one")
        return self

    @property
    def failure(self) -> FailureFields | None:
        """The event the area shows (None: invalid or empty)."""
        return self.fields if isinstance(self.fields, FailureFields) else None


class WeighingSnapshot(AreaSnapshot):
    """Validity is per item: one wrong entry at the scale never hides the other nine, so `fields` holds the
    items even when the snapshot as a whole is not `valid`; only a block of the wrong size has no fields."""

    area: Literal["manual_weighing"] = "manual_weighing"
    fields: WeighingFields | NoFields

    @model_validator(mode="after")
    def _fields_match_the_verdict(self) -> WeighingSnapshot:
        if self.valid and isinstance(self.fields, NoFields):
            raise ValueError("a valid weighing snapshot carries its items")
        return self

    @property
    def items(self) -> list[WeighingItem]:
        return self.fields.items if isinstance(self.fields, WeighingFields) else []


PlcSnapshot = ReadSlotSnapshot | WriteSlotSnapshot | FailureSnapshot | WeighingSnapshot
SNAPSHOT_MODELS: dict[str, type[AreaSnapshot]] = {
    "read_slot": ReadSlotSnapshot,
    "write_slot": WriteSlotSnapshot,
    "failure": FailureSnapshot,
    "manual_weighing": WeighingSnapshot,
}
