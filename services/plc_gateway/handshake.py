"""The gateway's commands, executed against the PLC's memory with the handshakes of ARCHITECTURE 3.

Every function reads what it needs fresh from the PLC (never from the poll cache), writes only ranges the
memory map allows, and returns a Reply; PLC I/O errors propagate to the caller, which maps them to codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.fins.errors import FinsTimeout
from shared.mqtt.payloads import AckFailure, AckSlot, Arm, ReadArea, WriteBatch
from shared.plc.codecs import CodecError
from shared.plc.memory_map import AreaName, MemoryMap
from shared.plc.snapshot import BatchCommand, Snapshot, decode_area, encode_batch_command

WRITE_ATTEMPTS = 4


class PlcIO(Protocol):
    async def read_words(self, address: int, count: int) -> list[int]: ...

    async def write_words(self, address: int, words: Sequence[int], *, retries: int | None = None) -> None: ...


class WriteNotAllowed(Exception):
    """A write outside the memory map's writable ranges: a bug, refused before any byte is sent."""


@dataclass(frozen=True)
class Reply:
    ok: bool
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


async def read_snapshot(io: PlcIO, m: MemoryMap, area: AreaName, slot: int = 1) -> Snapshot:
    words = await io.read_words(m.base_address(area, slot), m.layout_of(area).words)
    return decode_area(m, area, slot, words)


async def guarded_write(io: PlcIO, m: MemoryMap, address: int, words: Sequence[int], *, retries: int) -> None:
    if not m.allows_write(address, len(words)):
        raise WriteNotAllowed(f"D{address}+{len(words)} is outside the map's writable ranges")
    await io.write_words(address, words, retries=retries)


async def set_flag(io: PlcIO, m: MemoryMap, before: Snapshot, label: str) -> Reply | None:
    """Write the flag of the area `before` was read from to 1 and read the whole area back; a mismatch
    reply, or None when the PLC has the flag. A single flag word may be retransmitted: writing 1 twice is
    harmless. The PLC may take the flag between our write and our read (reset it to 0 and post the next
    event or latch the next batch): a valid, non-empty area with other content proves it saw the 1. An area
    that became empty or invalid (a PLC reboot) proves nothing."""
    await guarded_write(io, m, m.flag_address(before.area, before.slot), [1], retries=2)
    after = await read_snapshot(io, m, before.area, before.slot)
    if after.flag == 1:
        return None
    if after.valid and not after.empty and _without_flag(m, after) != _without_flag(m, before):
        return None
    shown = after.flag if after.flag is not None else "invalid data"
    return Reply(False, "mismatch", f"{label} reads {shown} after writing 1")


def _without_flag(m: MemoryMap, snap: Snapshot) -> tuple[int, ...]:
    at = m.layout_of(snap.area).flag_offset
    return snap.words[:at] + snap.words[at + 1 :]


def _slot_check(m: MemoryMap, slot: int) -> Reply | None:
    if slot not in m.slots():
        return Reply(False, "invalid_payload", f"slot {slot} is not an active slot (1..{m.active_slots})")
    return None


async def write_batch(io: PlcIO, m: MemoryMap, cmd: WriteBatch) -> Reply:
    if bad := _slot_check(m, cmd.slot):
        return bad
    b = cmd.batch
    try:
        block = encode_batch_command(
            m, cmd.slot, BatchCommand(b.mo_id, b.bom_name, b.finished_goods, b.quantity, dict(b.targets))
        )
    except CodecError as exc:
        return Reply(False, "invalid_payload", f"batch cannot be encoded: {exc}")

    current = await read_snapshot(io, m, "write_slot", cmd.slot)
    if current.valid and current.fields.get("mo_id") == b.mo_id:
        # Idempotent across gateway restarts: the slot already carries this MO, never write it twice.
        return Reply(
            True, "already_written", f"{b.mo_id} is already in WRITE slot {cmd.slot}", {"flag": current.flag}
        )
    if not current.valid:
        return Reply(
            False, "slot_busy", f"WRITE slot {cmd.slot} holds invalid data: {'; '.join(current.errors[:3])}"
        )
    if current.flag != 1:
        return Reply(False, "slot_busy", f"PLC has not taken the previous command in slot {cmd.slot} (W=0)")
    feedback = await read_snapshot(io, m, "read_slot", cmd.slot)
    if not feedback.valid:
        return Reply(False, "slot_busy", f"READ slot {cmd.slot} is invalid; cannot prove it is free")
    if not feedback.empty and feedback.flag != 1:
        return Reply(
            False,
            "slot_busy",
            f"batch {feedback.fields.get('mo_id')} in slot {cmd.slot} is not acknowledged yet (R=0)",
        )

    base = m.base_address("write_slot", cmd.slot)
    # One FINS write with the flag word (0) inside: atomic for the PLC. Never retransmitted blindly: a block
    # resent after a lost reply could land after the PLC took the first one and run the batch twice. After a
    # timeout the slot is read back: our MO there = written; the old content with W = 1 = not landed, resend.
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            await guarded_write(io, m, base, block, retries=0)
            break
        except WriteNotAllowed:
            raise
        except FinsTimeout:
            landed = await read_snapshot(io, m, "write_slot", cmd.slot)
            if landed.valid and landed.fields.get("mo_id") == b.mo_id:
                return Reply(
                    True, "written", f"{b.mo_id} written to slot {cmd.slot} (reply lost, verified by read)"
                )
            if landed.words != current.words or attempt == WRITE_ATTEMPTS:
                raise
    back = await io.read_words(base, len(block))
    flag_at = m.layout_of("write_slot").flag_offset
    same = all(x == y for i, (x, y) in enumerate(zip(back, block, strict=True)) if i != flag_at)
    if not same or back[flag_at] not in (0, 1):
        return Reply(False, "mismatch", f"read-back of WRITE slot {cmd.slot} differs from what was written")
    return Reply(True, "written", f"{b.mo_id} written to slot {cmd.slot}", {"flag": back[flag_at]})


async def ack_slot(io: PlcIO, m: MemoryMap, cmd: AckSlot) -> Reply:
    if bad := _slot_check(m, cmd.slot):
        return bad
    snap = await read_snapshot(io, m, "read_slot", cmd.slot)
    if not snap.valid or snap.empty:
        why = "; ".join(snap.errors[:3]) or "slot is empty"
        return Reply(False, "mismatch", f"READ slot {cmd.slot} does not hold {cmd.mo_id}: {why}")
    f = snap.fields
    if f["mo_id"] != cmd.mo_id:
        return Reply(False, "mismatch", f"READ slot {cmd.slot} holds {f['mo_id']}, not {cmd.mo_id}")
    if f["status_manufacturing"] != 1 and f["status_operation"] != 1:
        return Reply(False, "not_finished", f"{cmd.mo_id} in slot {cmd.slot} is neither finished nor failed")
    if f["status_read_data"] == 1:
        return Reply(True, "already_acked", f"{cmd.mo_id} in slot {cmd.slot} was already acknowledged")
    if failed := await set_flag(io, m, snap, f"R flag of slot {cmd.slot}"):
        return failed
    return Reply(True, "acked", f"{cmd.mo_id} in slot {cmd.slot} acknowledged (R=1)")


async def ack_failure(io: PlcIO, m: MemoryMap, cmd: AckFailure) -> Reply:
    snap = await read_snapshot(io, m, "failure")
    if not snap.valid or snap.empty:
        return Reply(False, "mismatch", "failure area holds no valid event")
    if snap.fields["event_id"] != cmd.event_id:
        return Reply(False, "mismatch", f"failure area holds event {snap.fields['event_id']}, not {cmd.event_id}")
    if snap.flag == 1:
        return Reply(True, "already_acked", f"failure {cmd.event_id} was already acknowledged")
    if failed := await set_flag(io, m, snap, "F flag"):
        return failed
    return Reply(True, "acked", f"failure {cmd.event_id} acknowledged (F=1)")


async def arm(io: PlcIO, m: MemoryMap, cmd: Arm) -> Reply:
    if bad := _slot_check(m, cmd.slot):
        return bad
    snap = await read_snapshot(io, m, "write_slot", cmd.slot)
    if not snap.valid:
        return Reply(False, "mismatch", f"WRITE slot {cmd.slot} is invalid: {'; '.join(snap.errors[:3])}")
    if snap.flag == 1:
        return Reply(True, "already_armed", f"WRITE slot {cmd.slot} is already armed (W=1)")
    if not snap.empty:
        return Reply(
            False,
            "slot_not_empty",
            f"WRITE slot {cmd.slot} holds {snap.fields.get('mo_id')}: the PLC has not taken it",
        )
    if failed := await set_flag(io, m, snap, f"W flag of slot {cmd.slot}"):
        return failed
    return Reply(True, "armed", f"WRITE slot {cmd.slot} armed (W=1)")


async def read_area(io: PlcIO, m: MemoryMap, cmd: ReadArea) -> Reply:
    if cmd.area != "failure" and (bad := _slot_check(m, cmd.slot)):
        return bad
    snap = await read_snapshot(io, m, cmd.area, cmd.slot)
    return Reply(True, "read", f"{cmd.area} {cmd.slot} read", snapshot_body(snap))


def snapshot_body(snap: Snapshot) -> dict[str, Any]:
    return {
        "area": snap.area,
        "slot": snap.slot,
        "valid": snap.valid,
        "empty": snap.empty,
        "errors": list(snap.errors),
        "fields": snap.fields,
        "words": list(snap.words),
    }
