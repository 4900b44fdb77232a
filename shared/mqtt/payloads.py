"""JSON payloads on the wire, as pydantic models: one definition for publisher and subscriber.

Every payload carries `schema`, `ts` (UTC ISO-8601) and `source`. Commands are strict (unknown top-level
fields refused, types not coerced); anything malformed is refused with a reason, never repaired.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.mqtt.topics import SCHEMA_VERSION

MAX_COMMAND_BYTES = 16 * 1024  # a write_batch is ~600 bytes; anything near this is not a command


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PayloadError(ValueError):
    """A message is not acceptable; `code` is machine readable (invalid_payload, too_large...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def envelope(source: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "ts": iso(utc_now()), "source": source, **body}


def dumps(source: str, body: dict[str, Any]) -> bytes:
    return json.dumps(envelope(source, body), separators=(",", ":"), allow_nan=False).encode()


def loads_object(raw: bytes, limit: int = MAX_COMMAND_BYTES) -> dict[str, Any]:
    if len(raw) > limit:
        raise PayloadError("too_large", f"payload of {len(raw)} bytes exceeds {limit}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise PayloadError("invalid_payload", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("invalid_payload", "payload must be a JSON object")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# ---------------------------------------------------------------- commands (to plc_gateway)

_Strict = ConfigDict(extra="forbid", strict=True, frozen=True)
Kg = Annotated[float, Field(ge=0, le=1_000_000)]
RequestId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
ReplyTo = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^#+\x00]+$")]


def aware_time(v: Any, name: str) -> Any:
    """An ISO-8601 string -> an aware datetime (the models are strict: they take no string otherwise)."""
    if isinstance(v, str):
        try:
            parsed = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} must be ISO-8601") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{name} needs a timezone (UTC)")
        return parsed
    return v


class CommandBase(BaseModel):
    """A gateway command; `command` (the name in its topic `cmd/<command>`) is set by each subclass."""

    model_config = _Strict
    command: ClassVar[str]
    request_id: RequestId
    reply_to: ReplyTo | None = None
    expires_at: dt.datetime | None = None
    schema_: int | None = Field(default=None, alias="schema")
    ts: str | None = None
    source: str | None = Field(default=None, max_length=100)

    @field_validator("expires_at", mode="before")
    @classmethod
    def _parse_time(cls, v: Any) -> Any:
        return aware_time(v, "expires_at")

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utc_now())


class BatchPayload(BaseModel):
    """The batch inside write_batch; extra optional fields are allowed and ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    mo_id: Annotated[str, Field(min_length=1, max_length=16)]
    bom_name: Annotated[str, Field(max_length=200)]
    finished_goods: Annotated[str, Field(max_length=200)]
    quantity: Annotated[float, Field(gt=0, le=1_000_000)]
    targets: dict[Annotated[str, Field(max_length=32)], Kg] = Field(default_factory=dict, max_length=64)

    @field_validator("quantity", mode="before")
    @classmethod
    def _int_is_a_number(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("targets", mode="before")
    @classmethod
    def _targets_numbers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                    raise ValueError(f"target {k!r} must be a finite number of kg")
                out[k] = float(x)
            return out
        return v


class WriteBatch(CommandBase):
    command = "write_batch"
    slot: Annotated[int, Field(ge=1, le=99)]
    batch: BatchPayload


class AckSlot(CommandBase):
    command = "ack_slot"
    slot: Annotated[int, Field(ge=1, le=99)]
    mo_id: Annotated[str, Field(min_length=1, max_length=16)]
    # shared/plc/fingerprint.py of the READ slot words that were stored: the gateway acks only that result.
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class AckFailure(CommandBase):
    command = "ack_failure"
    event_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


class AckWeighing(CommandBase):
    """Set the flag of one manual-weighing item, only while it holds the stored weighing `event_id`."""

    command = "ack_weighing"
    item: Annotated[int, Field(ge=1, le=99)]
    event_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]
    # The stored row this ack is for (id and insert time, so a database restored from a dump, which hands out
    # the same ids again, never matches an older row): the gateway's journal tells identical weighings apart.
    weighing_id: Annotated[int, Field(ge=1)]
    stored_at: dt.datetime
    # An operator decided that an earlier flag write of unknown outcome for this weighing never landed.
    earlier_write_lost: bool = False

    @field_validator("stored_at", mode="before")
    @classmethod
    def _parse_stored_at(cls, v: Any) -> Any:
        return aware_time(v, "stored_at")


class Arm(CommandBase):
    command = "arm"
    slot: Annotated[int, Field(ge=1, le=99)]


class ReadArea(CommandBase):
    command = "read_area"
    area: Literal["read_slot", "write_slot", "failure", "manual_weighing"]
    slot: Annotated[int, Field(ge=1, le=99)] = 1


C = TypeVar("C", bound=CommandBase)


def parse_command(model: type[C], raw: bytes) -> C:
    """Parse a command payload; raises PayloadError with a reason."""
    data = loads_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise PayloadError("invalid_payload", reasons) from None


_ENVELOPE_FIELDS = frozenset({"request_id", "reply_to", "expires_at", "schema_", "ts", "source"})


def command_args(cmd: CommandBase) -> dict[str, Any]:
    """The command's own arguments, echoed in its reply so the sender can check the reply answers exactly
    the command it sent (a request id alone can be steered onto another sender's reply topic)."""
    return cmd.model_dump(mode="json", exclude=set(_ENVELOPE_FIELDS))


def request_id_of(raw: bytes) -> str | None:
    """Best-effort request_id of a rejected payload, so the sender can correlate the error reply."""
    try:
        data = loads_object(raw)
    except PayloadError:
        return None
    rid = data.get("request_id")
    return rid if isinstance(rid, str) and 0 < len(rid) <= 100 else None


class CommandReply(BaseModel):
    """The gateway's answer to one command. `command` and `args` echo the command it answers (`answers`); a
    command's own results (read_area's snapshot, arm's flag) are extra fields, kept."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    request_id: str | None
    command: str
    args: dict[str, Any] = Field(default_factory=dict)
    ok: bool
    code: str
    message: str
    duplicate: bool = False  # answered from the gateway's reply cache (a resend of an executed command)

    def answers(self, cmd: CommandBase) -> bool:
        """This reply answers exactly `cmd`: same request id, command and arguments. A request id alone is not
        enough: anyone who saw it could steer another reply onto our topic."""
        return (
            self.request_id == cmd.request_id
            and self.command == cmd.command
            and all(self.args.get(k) == v for k, v in command_args(cmd).items())
        )
