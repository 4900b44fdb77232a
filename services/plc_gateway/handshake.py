"""The gateway's commands, executed against the PLC's memory with the handshakes of docs/architecture.md A3.

Every function reads what it needs fresh from the PLC (never from the poll cache), writes only ranges the
memory map allows, and returns a Reply; PLC I/O errors propagate to the caller, which maps them to codes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shared.fins.errors import FinsEndCodeError, FinsError, FinsNotConnected, FinsProtocolError, FinsTimeout
from shared.mqtt.payloads import AckFailure, AckSlot, AckWeighing, Arm, ReadArea, WriteBatch
from shared.plc.codecs import CodecError
from shared.plc.fingerprint import result_fingerprint
from shared.plc.memory_map import AreaName, MemoryMap
from shared.plc.snapshot import BatchCommand, Snapshot, decode_area, encode_batch_command

from .weighing_journal import ItemWrite, WeighingJournal, weighing_key

WRITE_ATTEMPTS = 4  # a write_batch or flag write is sent again only on proof that the earlier one did not land


class PlcIO(Protocol):
    async def read_words(self, address: int, count: int) -> list[int]: ...

    async def read_multiple(self, addresses: Sequence[int]) -> list[int]: ...

    async def write_words(self, address: int, words: Sequence[int]) -> None: ...


class FlagNotTaken(FinsTimeout):
    """No reply to any flag write, and a read after each showed the verified content still pending: proof
    that none landed (a plain FinsTimeout from a read proves nothing)."""


class FlagRefused(FinsError):
    """The PLC refused the flag write (an end code from the CPU: not executed), or it could not be sent, and
    every earlier write was proven not to land: nothing landed."""


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


async def read_slot_sides(io: PlcIO, m: MemoryMap, slot: int) -> tuple[Snapshot, Snapshot]:
    """The WRITE and the READ side of a slot in one `0104` read: one FINS command (one PLC scan) instead of two,
    and both sides from the same scan, so the checks before a write never combine two moments of the program."""
    sides: tuple[AreaName, AreaName] = ("write_slot", "read_slot")
    spans = [(m.base_address(area, slot), m.layout_of(area).words) for area in sides]
    words = await io.read_multiple([a for base, n in spans for a in range(base, base + n)])
    w_count = spans[0][1]
    return decode_area(m, "write_slot", slot, words[:w_count]), decode_area(m, "read_slot", slot, words[w_count:])


async def guarded_write(io: PlcIO, m: MemoryMap, address: int, words: Sequence[int]) -> None:
    """The only way the gateway writes the PLC: inside the map's writable ranges, one command, sent once."""
    if not m.allows_write(address, len(words)):
        raise WriteNotAllowed(f"D{address}+{len(words)} is outside the map's writable ranges")
    await io.write_words(address, words)


async def set_flag(io: PlcIO, m: MemoryMap, before: Snapshot, label: str) -> Reply | None:
    """Write the flag of the area `before` was read from (with the flag 0) to 1; a mismatch reply, or None
    when the PLC has the flag.

    The flag is never written twice without a read in between that proves the area still holds exactly what
    was verified with the flag 0: a second 1 that lands after the PLC took the first one, reset the flag and
    posted its next event (or latched the next batch) would acknowledge that event, which nobody stored. So a
    lost reply leads to a read: flag 1, or a valid non-empty area with other content (the PLC took the flag and
    moved on), is success; the verified content with flag 0 means the write did not land and may be sent
    again; anything else (an area emptied or garbled by a reboot) proves nothing and is a mismatch."""

    async def reread() -> tuple[FlagState, str]:
        after = await read_snapshot(io, m, before.area, before.slot)
        if after.flag == 1 or _moved_on(m, before, after):
            return "taken", "1"
        if _still_pending(m, before, after):
            return "pending", "0"
        return "changed", str(after.flag) if after.flag is not None else "invalid data"

    return await write_flag_verified(io, m, m.flag_address(before.area, before.slot), label, reread)


FlagState = Literal["taken", "pending", "changed"]


async def write_flag_verified(
    io: PlcIO, m: MemoryMap, address: int, label: str, reread: Callable[[], Awaitable[tuple[FlagState, str]]]
) -> Reply | None:
    """The flag-write rule shared by every handshake flag: write 1 once, then decide on a fresh read
    (`reread`: taken = the PLC has it or moved on; pending = verified content still there with flag 0, so the
    write did not land; changed = proves nothing).

    What the write's own answer proves (docs/fins.md F5): a reply = it landed; the CPU's refusal = it did not
    (FlagRefused); no valid reply (timeout, only invalid frames) or a relay's end code = nothing, so the read
    decides. A second write follows only an unproven write AND a read that shows it did not land. Raises
    FlagNotTaken or FlagRefused only when nothing landed, which is what the weighing journal needs to know."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            await guarded_write(io, m, address, [1])
            confirmed = True
        except FinsEndCodeError as exc:
            if exc.end_code.proves_not_executed:
                raise FlagRefused(f"{label}: the PLC refused the write: {exc}") from exc
            confirmed = False
        except FinsNotConnected as exc:
            raise FlagRefused(f"{label}: the write was not sent: {exc}") from exc
        except (FinsTimeout, FinsProtocolError):
            confirmed = False
        try:
            state, shown = await reread()
        except FinsError:
            if confirmed:
                # The PLC answered the write: the flag is 1 on the PLC. The read-back only checks what the
                # program did with it, and an unreadable PLC must not turn a landed flag into "maybe".
                return None
            raise
        if state == "taken":
            return None
        if state == "changed":
            return Reply(False, "mismatch", f"{label} reads {shown} after writing 1; the area changed")
        if confirmed:
            return Reply(False, "mismatch", f"{label} reads 0 after writing 1")
        if attempt == WRITE_ATTEMPTS:
            raise FlagNotTaken(
                f"{label}: no reply to {WRITE_ATTEMPTS} flag writes, the PLC still shows 0", attempts=attempt
            )
    raise AssertionError("unreachable")


def _moved_on(m: MemoryMap, before: Snapshot, after: Snapshot) -> bool:
    """The area holds a new valid event or batch: the PLC read our 1 and went on (it posts or latches the next
    one only after it saw the flag)."""
    return after.valid and not after.empty and _without_flag(m, after) != _without_flag(m, before)


def _still_pending(m: MemoryMap, before: Snapshot, after: Snapshot) -> bool:
    return after.valid and after.flag == 0 and _without_flag(m, after) == _without_flag(m, before)


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

    flag_at = m.layout_of("write_slot").flag_offset
    current, feedback = await read_slot_sides(io, m, cmd.slot)
    if current.valid and _same_block(current.words, block, flag_at):
        # Idempotent across gateway restarts: the slot already carries this exact batch, never write it twice.
        return Reply(
            True, "already_written", f"{b.mo_id} is already in WRITE slot {cmd.slot}", {"flag": current.flag}
        )
    if current.valid and current.fields.get("mo_id") == b.mo_id:
        return Reply(
            False,
            "conflict",
            f"WRITE slot {cmd.slot} carries {b.mo_id} with other values than this command; not overwritten",
        )
    if not current.valid:
        return Reply(
            False, "slot_busy", f"WRITE slot {cmd.slot} holds invalid data: {'; '.join(current.errors[:3])}"
        )
    if current.flag != 1:
        return Reply(False, "slot_busy", f"PLC has not taken the previous command in slot {cmd.slot} (W=0)")
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
            await guarded_write(io, m, base, block)
            break
        except WriteNotAllowed:
            raise
        except FinsTimeout:
            landed = await read_snapshot(io, m, "write_slot", cmd.slot)
            if landed.valid and _same_block(landed.words, block, flag_at):
                return Reply(
                    True, "written", f"{b.mo_id} written to slot {cmd.slot} (reply lost, verified by read)"
                )
            if landed.words != current.words or attempt == WRITE_ATTEMPTS:
                raise
    back = await io.read_words(base, len(block))
    if not _same_block(back, block, flag_at) or back[flag_at] not in (0, 1):
        return Reply(False, "mismatch", f"read-back of WRITE slot {cmd.slot} differs from what was written")
    return Reply(True, "written", f"{b.mo_id} written to slot {cmd.slot}", {"flag": back[flag_at]})


def _same_block(words: Sequence[int], block: Sequence[int], flag_at: int) -> bool:
    """Every word but the flag equal: the PLC sets W back to 1 once it took the batch."""
    return len(words) == len(block) and all(
        x == y for i, (x, y) in enumerate(zip(words, block, strict=True)) if i != flag_at
    )


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
    held = result_fingerprint(snap.words, m.layout_of("read_slot").flag_offset)
    if held != cmd.fingerprint:
        return Reply(
            False,
            "mismatch",
            f"READ slot {cmd.slot} holds another result of {cmd.mo_id} than the stored one "
            f"(fingerprint {held}, stored {cmd.fingerprint})",
        )
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


def _weighing_item(m: MemoryMap, snap: Snapshot, item: int) -> dict[str, Any] | None:
    items = snap.fields.get("items")
    return items[item - 1] if isinstance(items, list) and 1 <= item <= len(items) else None


def _item_content(m: MemoryMap, words: Sequence[int], item: int) -> tuple[int, ...]:
    """The header and the item's words without its flag: what the stored weighing was read from."""
    group = m.layout_of("manual_weighing").item_group
    at = group.item_offset(item)
    flag_at = at + group.flag_offset
    return tuple(words[: group.offset]) + tuple(
        w for i, w in enumerate(words[at : at + group.stride], at) if i != flag_at
    )


async def ack_weighing(io: PlcIO, m: MemoryMap, cmd: AckWeighing, journal: WeighingJournal) -> Reply:
    """Flag = 1 on one manual-weighing item, only while it holds the stored weighing `event_id` with flag 0;
    the same never-blind rule as every other flag (write_flag_verified), plus the journal: an item's content
    says nothing about which of two identical weighings it is, so what the gateway did earlier for this stored
    weighing (`cmd.weighing_id` and `stored_at`) decides a repeated ack (weighing_journal.py)."""
    if "manual_weighing" not in m.areas:
        return Reply(False, "not_mapped", "the memory map has no manual_weighing area")
    count = m.layout_of("manual_weighing").item_group.count
    if not 1 <= cmd.item <= count:
        return Reply(False, "invalid_payload", f"item {cmd.item} is outside 1..{count}")
    snap = await read_snapshot(io, m, "manual_weighing")
    held = _weighing_item(m, snap, cmd.item)
    label = f"weighing item {cmd.item} flag"
    if held is None or not held["valid"] or held["empty"]:
        why = "; ".join(held["errors"][:3]) if held and held["errors"] else "it is empty"
        return Reply(False, "mismatch", f"weighing item {cmd.item} holds no valid weighing: {why}")
    if held["event_id"] != cmd.event_id:
        return Reply(False, "mismatch", f"weighing item {cmd.item} holds {held['event_id']}, not {cmd.event_id}")
    if held["status_manual_weigh_read"] == 1:
        return Reply(True, "already_acked", f"weighing {cmd.event_id} in item {cmd.item} was already acknowledged")
    content = _item_content(m, snap.words, cmd.item)
    weighing = weighing_key(cmd.weighing_id, cmd.stored_at)
    earlier = journal.last_write(cmd.item)
    if earlier is not None and earlier.weighing == weighing:
        if earlier.state == "taken":
            return Reply(
                True,
                "already_acked",
                f"the flag of item {cmd.item} was written and read back for weighing {cmd.weighing_id} before; "
                "the item now holds the next weighing (same content)",
            )
        # An operator's "that write was lost" covers the write they judged, never one this same ack made since.
        if not cmd.earlier_write_lost or earlier.request_id == cmd.request_id:
            return Reply(
                False,
                "outcome_unknown",
                f"item {cmd.item}'s flag was written for weighing {cmd.weighing_id} without proof that it landed "
                "(the gateway stopped, or neither the write's reply nor a read-back came), and the item again "
                "holds that content with flag 0: either the write never landed (one weighing) or the scale "
                "refilled the item identically (two); a person decides",
            )
    header = m.layout_of("manual_weighing").item_group.offset

    async def reread() -> tuple[FlagState, str]:
        after = await read_snapshot(io, m, "manual_weighing")
        item = _weighing_item(m, after, cmd.item)
        if item is None:
            return "changed", "invalid data"
        if item["status_manual_weigh_read"] == 1:
            return "taken", "1"
        same = _item_content(m, after.words, cmd.item) == content
        own_changed = _item_content(m, after.words, cmd.item)[header:] != content[header:]
        if item["valid"] and not item["empty"] and own_changed:
            # The PLC took our 1 and posted its next weighing in this item. A changed header alone proves
            # nothing: the header is shared by all ten items.
            return "taken", "0"
        if item["valid"] and same and item["status_manual_weigh_read"] == 0:
            return "pending", "0"
        return "changed", str(item["status_manual_weigh_read"]) if item["valid"] else "invalid data"

    # Written ahead of the flag: from here on a restart cannot take this content with flag 0 for "not written".
    journal.record(cmd.item, ItemWrite(weighing, content, "intent", cmd.request_id))
    try:
        failed = await write_flag_verified(io, m, m.item_flag_address("manual_weighing", cmd.item), label, reread)
    except (FlagNotTaken, FlagRefused):
        journal.record(cmd.item, earlier)  # refused, or read back pending after every write: nothing landed
        raise
    if failed:
        return failed  # the intent stays: a mismatch proves nothing either way
    journal.record(cmd.item, ItemWrite(weighing, content, "taken", cmd.request_id))
    return Reply(True, "acked", f"weighing {cmd.event_id} in item {cmd.item} acknowledged (flag=1)")


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
    if cmd.area not in m.areas:
        return Reply(False, "not_mapped", f"the memory map has no {cmd.area} area")
    if cmd.area in ("read_slot", "write_slot") and (bad := _slot_check(m, cmd.slot)):
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
