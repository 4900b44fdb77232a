"""The base of every typed message the services publish (snapshots, lifecycle events): the envelope, the value
types they share, and the one way a receiver turns bytes into a message.

Like paho's `ConnectFlags` (a value object instead of a dict of flags) and Home Assistant's typed coordinator
data: a sender builds a model, a receiver gets a model or a refusal with the reason, and nobody reads a
snapshot with `.get("...")`. Anything can be published on a topic (a bug, version skew, a misconfigured ACL),
so a receiver validates what it gets; a message that does not fit is refused, never repaired.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_serializer

from shared.mqtt.payloads import PayloadError, iso
from shared.mqtt.topics import SCHEMA_VERSION

# Values as the gateway decodes them from PLC memory (shared/plc/codecs.py): exact types, no coercion.
Word = Annotated[int, Field(ge=0, le=0xFFFF)]
Flag = Annotated[int, Field(ge=0, le=1)]
Kg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
SlotNumber = Annotated[int, Field(ge=1, le=99)]
ContentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]

# Strict: a string is not a number and a bool is not a flag. Unknown keys are ignored (a newer sender may
# add one); a missing or mistyped key refuses the message.
STRICT = ConfigDict(frozen=True, strict=True, extra="ignore")


class WireModel(BaseModel):
    """A part of a message (no envelope of its own)."""

    model_config = STRICT


class Envelope(WireModel):
    """`schema`, `ts` (UTC ISO-8601, when the sender made the message) and `source` (the sending service)."""

    schema_: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1)
    ts: AwareDatetime
    source: str = Field(min_length=1, max_length=100)

    @field_serializer("ts")
    def _iso(self, ts: dt.datetime) -> str:
        return iso(ts)

    def wire(self) -> dict[str, Any]:
        """The JSON object to publish (MqttLink.publish_json keeps this envelope: body keys win)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> bytes:
        return json.dumps(self.wire(), separators=(",", ":"), allow_nan=False).encode()


M = TypeVar("M", bound=BaseModel)


def validation_reasons(exc: ValidationError, limit: int = 5) -> str:
    """`field.path: message; ...`, the first few problems of a refused message."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()[:limit]
    )


def parse_message(model: type[M], raw: bytes) -> M:
    """Validate a received payload as `model`; raises PayloadError("invalid_payload", reasons)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError("invalid_payload", validation_reasons(exc)) from None


def receive(model: type[M], raw: bytes, topic: str, logger: logging.Logger) -> M | None:
    """The message as `model`, or None after logging why it was refused (never repaired, never acted on)."""
    try:
        return parse_message(model, raw)
    except PayloadError as exc:
        logger.warning("message refused", extra={"topic": topic, "model": model.__name__, "reason": str(exc)})
        return None
