"""The gateway's flag handshakes against the simulator's PLC program in-process (no sockets): the PLC may scan
between our flag write and our read-back, take the flag and move on. That is success, not a mismatch; a flag
that never lands is a mismatch. (Found by the fault suite: a fast PLC turned an ack into 'mismatch' forever.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from services.plc_gateway import handshake
from services.plc_gateway.weighing_journal import ItemWrite, JournalError, WeighingJournal, weighing_key
from shared.fins.endcodes import EndCode
from shared.fins.errors import FinsError, FinsProtocolError, FinsTimeout, end_code_error
from shared.mqtt.payloads import AckFailure, AckSlot, AckWeighing, Arm
from shared.plc.fingerprint import result_fingerprint
from shared.plc.memory_map import load_memory_map
from shared.plc.snapshot import BatchCommand, encode_batch_command
from simulators.plc.memory import DataMemory
from simulators.plc.program import PlcProgram, ProgramConfig

MAP = load_memory_map()


class InProcessPlc:
    """PlcIO over the simulator's memory; `scan_after_write` runs one PLC scan right after each write."""

    def __init__(
        self,
        *,
        scan_after_write: bool = True,
        drop_flag_writes: bool = False,
        lose_write_replies: int = 0,
        lose_write_requests: int = 0,
        write_errors: Sequence[FinsError] = (),
        reply_errors: Sequence[FinsError] = (),
        read_errors_after_write: int = 0,
    ) -> None:
        self.memory = DataMemory()
        self.program = PlcProgram(self.memory, MAP, ProgramConfig(batch_seconds=1.0), random.Random(7))
        self.scan_after_write = scan_after_write
        self.drop_flag_writes = drop_flag_writes
        self.lose_write_replies = lose_write_replies  # the next N writes land, their replies are lost
        self.lose_write_requests = lose_write_requests  # the next N writes never reach the PLC
        self.write_errors = list(write_errors)  # raised instead of the next writes, which never land
        self.reply_errors = list(reply_errors)  # raised after the next writes landed (their reply is unusable)
        self.read_errors_after_write = read_errors_after_write  # reads failing after a write, N of them
        self.writes: list[tuple[int, tuple[int, ...]]] = []
        self.commands: list[str] = []  # FINS commands in order: "read", "read_multiple", "write"

    async def read_words(self, address: int, count: int) -> list[int]:
        self.commands.append("read")
        if self.read_errors_after_write and "write" in self.commands:
            self.read_errors_after_write -= 1
            raise FinsTimeout("read lost", attempts=3)
        return self.memory.read(address, count)

    async def read_multiple(self, addresses: Sequence[int]) -> list[int]:
        # One command, one scan: every word comes from the same memory state.
        self.commands.append("read_multiple")
        return [self.memory.read(a, 1)[0] for a in addresses]

    async def write_words(self, address: int, words: Sequence[int]) -> None:
        self.commands.append("write")
        self.writes.append((address, tuple(words)))
        if self.lose_write_requests:
            self.lose_write_requests -= 1
            raise FinsTimeout("request lost", attempts=1)
        if self.write_errors:
            raise self.write_errors.pop(0)
        if not (self.drop_flag_writes and len(words) == 1):
            self.program.on_fins_write(address, words)
            self.memory.write(address, words)
        if self.scan_after_write:
            self.program.scan(0.0)
        if self.lose_write_replies:
            self.lose_write_replies -= 1
            raise FinsTimeout("reply lost", attempts=1)
        if self.reply_errors:
            raise self.reply_errors.pop(0)


def _event_id(plc: InProcessPlc) -> str:
    snap = asyncio.run(handshake.read_snapshot(plc, MAP, "failure"))
    assert snap.valid and not snap.empty and snap.flag == 0, snap.errors
    return str(snap.fields["event_id"])


def _post_two_failures(plc: InProcessPlc) -> str:
    plc.program.trigger_failure("silo101", "MOTOR_OVERLOAD")
    plc.program.trigger_failure("silo102", "LEVEL_LOW")
    plc.program.scan(0.0)
    return _event_id(plc)


def test_ack_failure_succeeds_when_the_plc_posts_the_next_event_before_the_read_back() -> None:
    plc = InProcessPlc()
    first = _post_two_failures(plc)
    reply = asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert plc.program.failures.acked == 1
    assert _event_id(plc) != first  # the PLC really moved on to the second event


def test_ack_failure_is_a_mismatch_when_the_flag_never_lands() -> None:
    plc = InProcessPlc(drop_flag_writes=True)
    first = _post_two_failures(plc)
    reply = asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    assert (reply.ok, reply.code) == (False, "mismatch")
    assert "F flag reads 0" in reply.message
    assert _event_id(plc) == first


def _write_command(plc: InProcessPlc, mo_id: str) -> None:
    block = encode_batch_command(MAP, 1, BatchCommand(mo_id, "BOM", "FG", 1000.0, {"silo101": 500.0}))
    plc.memory.write(MAP.base_address("write_slot", 1), block)


def _stored_fingerprint(plc: InProcessPlc) -> str:
    words = plc.memory.read(MAP.base_address("read_slot", 1), MAP.layout_of("read_slot").words)
    return result_fingerprint(words, MAP.layout_of("read_slot").flag_offset)


def _ack_slot(plc: InProcessPlc, mo_id: str, fingerprint: str | None = None) -> AckSlot:
    return AckSlot(request_id="r1", slot=1, mo_id=mo_id, fingerprint=fingerprint or _stored_fingerprint(plc))


def test_ack_slot_succeeds_when_the_plc_latches_the_next_command_before_the_read_back() -> None:
    plc = InProcessPlc()
    plc.program.arm()
    _write_command(plc, "WH/MO/00001")
    plc.program.scan(0.0)  # latched
    plc.program.scan(2.0)  # dosed and finished
    assert plc.program.slots[1].phase == "finished"
    _write_command(plc, "WH/MO/00002")  # the look-ahead command waits with W = 0
    reply = asyncio.run(handshake.ack_slot(plc, MAP, _ack_slot(plc, "WH/MO/00001")))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert plc.program.slots[1].mo_id == "WH/MO/00002"
    assert plc.program.slots[1].batches_acked == 1


def test_ack_slot_is_a_mismatch_when_the_flag_never_lands() -> None:
    plc = InProcessPlc(drop_flag_writes=True)
    plc.program.arm()
    _write_command(plc, "WH/MO/00001")
    plc.program.scan(0.0)
    plc.program.scan(2.0)
    reply = asyncio.run(handshake.ack_slot(plc, MAP, _ack_slot(plc, "WH/MO/00001")))
    assert (reply.ok, reply.code) == (False, "mismatch")


def test_arm_reads_the_flag_back() -> None:
    plc = InProcessPlc()
    reply = asyncio.run(handshake.arm(plc, MAP, Arm(request_id="r1", slot=1)))
    assert (reply.ok, reply.code) == (True, "armed")
    assert plc.memory.get(MAP.flag_address("write_slot", 1)) == 1
    refused = InProcessPlc(drop_flag_writes=True)
    reply = asyncio.run(handshake.arm(refused, MAP, Arm(request_id="r2", slot=1)))
    assert (reply.ok, reply.code) == (False, "mismatch")


def test_a_cleared_area_after_the_write_is_not_taken_for_an_ack() -> None:
    """A PLC reboot between our write and our read-back empties the area: that proves nothing."""
    plc = InProcessPlc(scan_after_write=False)
    first = _post_two_failures(plc)
    real_write = plc.write_words

    async def write_then_reboot(address: int, words: Sequence[int]) -> None:
        await real_write(address, words)
        plc.program.reboot(armed=False)

    plc.write_words = write_then_reboot  # type: ignore[method-assign]
    reply = asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    assert (reply.ok, reply.code) == (False, "mismatch")


# ---------------------------------------------------------------- a flag is never written blind (issue 10.1)


def _flag_writes(plc: InProcessPlc) -> int:
    return sum(1 for _, words in plc.writes if len(words) == 1)


def test_a_lost_flag_reply_is_never_followed_by_a_second_write_once_the_plc_moved_on() -> None:
    """The reply to our F = 1 is lost; the PLC took it and posted its next event. A second 1 would acknowledge
    that event, which nobody stored: the gateway reads, sees the area moved on, and stops."""
    plc = InProcessPlc(lose_write_replies=1)
    first = _post_two_failures(plc)
    reply = asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert _flag_writes(plc) == 1
    assert plc.program.failures.acked == 1
    second = _event_id(plc)
    assert second != first  # the next event waits with F = 0, unacknowledged


def test_a_flag_write_that_never_landed_is_sent_again_on_proof() -> None:
    """The request was lost: the area still holds the verified event with F = 0, so writing again is safe."""
    plc = InProcessPlc(lose_write_requests=2)
    first = _post_two_failures(plc)
    reply = asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert _flag_writes(plc) == 3
    assert plc.program.failures.acked == 1


def test_a_flag_write_without_any_reply_gives_up_after_bounded_attempts() -> None:
    plc = InProcessPlc(lose_write_requests=100)
    first = _post_two_failures(plc)
    try:
        asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    except FinsTimeout:
        pass
    else:
        raise AssertionError("expected FinsTimeout")
    assert _flag_writes(plc) == handshake.WRITE_ATTEMPTS
    assert plc.program.failures.acked == 0


def test_ack_slot_names_the_stored_result_and_is_refused_for_any_other() -> None:
    plc = InProcessPlc()
    plc.program.arm()
    _write_command(plc, "WH/MO/00001")
    plc.program.scan(0.0)
    plc.program.scan(2.0)
    wrong = _ack_slot(plc, "WH/MO/00001", fingerprint="0" * 16)
    reply = asyncio.run(handshake.ack_slot(plc, MAP, wrong))
    assert (reply.ok, reply.code) == (False, "mismatch")
    assert "another result" in reply.message
    assert plc.memory.get(MAP.flag_address("read_slot", 1)) == 0 and _flag_writes(plc) == 0
    reply = asyncio.run(handshake.ack_slot(plc, MAP, _ack_slot(plc, "WH/MO/00001")))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message


def test_write_batch_is_idempotent_only_for_the_identical_block() -> None:
    from shared.mqtt.payloads import WriteBatch

    plc = InProcessPlc(scan_after_write=False)
    plc.program.arm()

    def cmd(rid: str, kg: float) -> WriteBatch:
        return WriteBatch.model_validate(
            {
                "request_id": rid,
                "slot": 1,
                "batch": {
                    "mo_id": "WH/MO/00001",
                    "bom_name": "BOM",
                    "finished_goods": "FG",
                    "quantity": 1000.0,
                    "targets": {"silo101": kg},
                },
            }
        )

    first = asyncio.run(handshake.write_batch(plc, MAP, cmd("r1", 500.0)))
    assert (first.ok, first.code) == (True, "written"), first.message
    again = asyncio.run(handshake.write_batch(plc, MAP, cmd("r2", 500.0)))
    assert (again.ok, again.code) == (True, "already_written")
    other = asyncio.run(handshake.write_batch(plc, MAP, cmd("r3", 600.0)))
    assert (other.ok, other.code) == (False, "conflict"), other.message
    assert sum(1 for _, words in plc.writes if len(words) > 1) == 1


def test_write_batch_costs_three_fins_commands_and_sees_both_slot_sides_in_one_read() -> None:
    """Each FINS command costs the PLC at least one scan: the checks before the write read the WRITE and the
    READ side of the slot in one 0104 read (issue 12: write_batch reply within 8 scans), then the write and
    its read-back. A READ side still holding an unacknowledged batch refuses the write after that one read."""
    from shared.mqtt.payloads import WriteBatch

    def cmd(rid: str, mo: str) -> WriteBatch:
        batch = {"mo_id": mo, "bom_name": "BOM", "finished_goods": "FG", "quantity": 1000.0, "targets": {}}
        return WriteBatch.model_validate({"request_id": rid, "slot": 1, "batch": batch})

    plc = InProcessPlc(scan_after_write=False)
    plc.program.arm()
    reply = asyncio.run(handshake.write_batch(plc, MAP, cmd("r1", "WH/MO/00001")))
    assert (reply.ok, reply.code) == (True, "written"), reply.message
    assert plc.commands == ["read_multiple", "write", "read"]

    # The PLC latches the batch; its READ side now holds it with R = 0: the next write is refused.
    plc.program.scan(0.0)
    plc.commands.clear()
    busy = asyncio.run(handshake.write_batch(plc, MAP, cmd("r2", "WH/MO/00002")))
    assert (busy.ok, busy.code) == (False, "slot_busy") and "not acknowledged" in busy.message, busy.message
    assert plc.commands == ["read_multiple"]


# ---------------------------------------------------------------- manual weighing: one flag per item (issue 14)


def _weighing(plc: InProcessPlc, item: int) -> dict[str, object]:
    snap = asyncio.run(handshake.read_snapshot(plc, MAP, "manual_weighing"))
    found = snap.fields["items"][item - 1]
    assert isinstance(found, dict)
    return found


def _post_weighing(plc: InProcessPlc, **doc: object) -> None:
    plc.program.weighing.request({"mo_id": "WH/MO/00011", "product_id": 61, "kg": 12.5, **doc})
    plc.program.scan(0.0)


def _ack(
    plc: InProcessPlc,
    item: int,
    event_id: object,
    journal: WeighingJournal | None = None,
    weighing_id: int = 1,
    earlier_write_lost: bool = False,
    request_id: str = "w1",
) -> handshake.Reply:
    cmd = AckWeighing(
        request_id=request_id,
        item=item,
        event_id=str(event_id),
        weighing_id=weighing_id,
        stored_at=STORED_AT,
        earlier_write_lost=earlier_write_lost,
    )
    journal = journal or WeighingJournal(Path(tempfile.mkdtemp(prefix="journal-")))
    return asyncio.run(handshake.ack_weighing(plc, MAP, cmd, journal))


def test_ack_weighing_sets_only_that_items_flag() -> None:
    plc = InProcessPlc()
    _post_weighing(plc)
    _post_weighing(plc, product_id=62)
    first, second = _weighing(plc, 1), _weighing(plc, 2)
    assert first["pending"] and second["pending"]
    reply = _ack(plc, 1, first["event_id"])
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert plc.writes == [(MAP.item_flag_address("manual_weighing", 1), (1,))]
    assert _weighing(plc, 2)["pending"]  # the other item still waits
    assert plc.program.weighing.state.acked == 1
    again = _ack(plc, 1, first["event_id"])
    assert (again.ok, again.code) == (True, "already_acked") and len(plc.writes) == 1


def test_ack_weighing_refuses_another_weighing_or_an_invalid_item() -> None:
    plc = InProcessPlc()
    _post_weighing(plc)
    _post_weighing(plc, product_id=0)  # a wrong entry at the scale: item 2, rejected by the decoder
    assert _ack(plc, 1, "0123abcd").code == "mismatch"
    bad = _ack(plc, 2, "0123abcd")
    assert (bad.ok, bad.code) == (False, "mismatch") and "product_id 0 is below 1" in bad.message
    assert _ack(plc, 3, "0123abcd").code == "mismatch"  # empty item
    assert plc.writes == []


def test_two_identical_weighings_in_one_item_and_a_lost_ack_reply() -> None:
    """The PLC reuses the item once its flag is 1: the same content again is a new weighing with the same
    content id. A lost reply to our flag write never leads to a blind second 1 that would take it unseen."""
    plc = InProcessPlc(lose_write_replies=1)
    _post_weighing(plc, item=1)
    _post_weighing(plc, item=1)  # queued: item 1 is busy until its flag is 1
    event_id = _weighing(plc, 1)["event_id"]
    reply = _ack(plc, 1, event_id)  # our reply is lost; the read-back shows flag 1: taken
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert _flag_writes(plc) == 1
    assert not _weighing(plc, 1)["pending"]
    plc.program.scan(3.0)  # the operator weighs the same again: item 1 is reused
    again = _weighing(plc, 1)
    assert again["pending"] and again["event_id"] == event_id
    assert plc.program.weighing.state.posted == 2 and plc.program.weighing.state.acked == 1


def test_a_changed_header_alone_never_counts_as_taken() -> None:
    """The header (MO) is shared by all ten items: if it changes while our item still shows flag 0 after the
    write, nothing proves the PLC took our 1, so the ack is a mismatch (never a silent success)."""
    plc = InProcessPlc(drop_flag_writes=True, scan_after_write=False)
    _post_weighing(plc)
    event_id = _weighing(plc, 1)["event_id"]
    real_write = plc.write_words
    base = MAP.base_address("manual_weighing")

    async def write_then_new_header(address: int, words: Sequence[int]) -> None:
        await real_write(address, words)
        plc.memory.write(base + 1, [0x5748, 0x2F4D, 0x4F2F, 0x3030, 0x3031, 0x3200, 0, 0])  # WH/MO/00012

    plc.write_words = write_then_new_header  # type: ignore[method-assign]
    reply = _ack(plc, 1, event_id)
    assert (reply.ok, reply.code) == (False, "mismatch"), reply.message
    assert _flag_writes(plc) == 1


# ---------------------------------------------------------------- the weighing-flag journal (issue 14, soak seed 20261202)


STORED_AT = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


def _key(weighing_id: int, stored_at: dt.datetime = STORED_AT) -> str:
    return weighing_key(weighing_id, stored_at)


def _item_content(plc: InProcessPlc, item: int) -> tuple[int, ...]:
    snap = asyncio.run(handshake.read_snapshot(plc, MAP, "manual_weighing"))
    return handshake._item_content(MAP, snap.words, item)


def test_a_repeated_ack_after_a_gateway_restart_never_takes_the_next_identical_weighing(tmp_path: Path) -> None:
    """The 1,000-MO soak's one loss: the gateway wrote item 3's flag and was killed before its reply left; the
    scale put an identical weighing into the item; the restarted gateway got the ack again, saw "the verified
    content with flag 0" and acknowledged the second weighing, which nobody stored. The journal answers from
    what the gateway did for that stored row instead."""
    plc = InProcessPlc()
    _post_weighing(plc, item=3)
    _post_weighing(plc, item=3)  # the operator weighs the same again; the PLC queues it until item 3 is free
    event_id = _weighing(plc, 3)["event_id"]
    first = _ack(plc, 3, event_id, WeighingJournal(tmp_path), weighing_id=41)
    assert (first.ok, first.code) == (True, "acked"), first.message
    plc.program.scan(3.0)  # the second, identical weighing appears in item 3 (flag 0)
    assert _weighing(plc, 3)["pending"] and _weighing(plc, 3)["event_id"] == event_id

    restarted = WeighingJournal(tmp_path)  # a new gateway process reads the journal from disk
    again = _ack(plc, 3, event_id, restarted, weighing_id=41)
    assert (again.ok, again.code) == (True, "already_acked"), again.message
    assert _flag_writes(plc) == 1 and _weighing(plc, 3)["pending"]  # the second weighing was not touched
    assert plc.program.weighing.state.acked == 1

    second = _ack(plc, 3, event_id, restarted, weighing_id=42)  # its own stored row: acknowledged normally
    assert (second.ok, second.code) == (True, "acked"), second.message
    assert plc.program.weighing.state.acked == 2


def test_a_row_id_handed_out_again_after_a_database_restore_never_matches_the_journal(tmp_path: Path) -> None:
    """A database restored from a dump gives the next weighing an id the journal has seen: the insert time
    tells them apart, so the new row's ack writes the flag instead of being answered `already_acked`."""
    plc = InProcessPlc()
    _post_weighing(plc, item=1)
    journal = WeighingJournal(tmp_path)
    journal.record(1, ItemWrite(_key(41, STORED_AT - dt.timedelta(days=1)), _item_content(plc, 1), "taken", "w0"))
    reply = _ack(plc, 1, _weighing(plc, 1)["event_id"], journal, weighing_id=41)
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert plc.program.weighing.state.acked == 1


def test_a_write_without_its_read_back_and_the_same_content_again_is_left_to_a_person(tmp_path: Path) -> None:
    """Stopped between writing the flag and reading it back: if the item shows that content with flag 0 again,
    one weighing (the write never landed) and two identical ones cannot be told apart: outcome_unknown, no
    write. The item showing flag 1 settles it; an operator's "the write was lost" lets it be written."""
    plc = InProcessPlc()
    _post_weighing(plc, item=2)
    event_id = _weighing(plc, 2)["event_id"]
    journal = WeighingJournal(tmp_path)
    journal.record(2, ItemWrite(_key(7), _item_content(plc, 2), "intent", "w0"))

    unknown = _ack(plc, 2, event_id, WeighingJournal(tmp_path), weighing_id=7)
    assert (unknown.ok, unknown.code) == (False, "outcome_unknown"), unknown.message
    assert plc.writes == []

    # The operator's "that write was lost" covers the write of w0, never one its own ack made: interrupted
    # again (intent of w2, same content), a resend of w2 is undecidable again.
    journal.record(2, ItemWrite(_key(7), _item_content(plc, 2), "intent", "w2"))
    again = _ack(
        plc, 2, event_id, WeighingJournal(tmp_path), weighing_id=7, earlier_write_lost=True, request_id="w2"
    )
    assert (again.ok, again.code) == (False, "outcome_unknown") and plc.writes == []

    lost = _ack(
        plc, 2, event_id, WeighingJournal(tmp_path), weighing_id=7, earlier_write_lost=True, request_id="w3"
    )
    assert (lost.ok, lost.code) == (True, "acked"), lost.message
    assert WeighingJournal(tmp_path).last_write(2) == ItemWrite(_key(7), _item_content(plc, 2), "taken", "w3")
    assert _ack(plc, 2, event_id, WeighingJournal(tmp_path), weighing_id=7).code == "already_acked"


def test_a_flag_write_proven_not_to_land_leaves_no_intent_behind(tmp_path: Path) -> None:
    """Every write timed out and every read after it showed the weighing still pending: nothing landed, so a
    later ack (after a restart) writes normally instead of parking the weighing for a person."""
    plc = InProcessPlc(lose_write_requests=handshake.WRITE_ATTEMPTS)
    _post_weighing(plc, item=1)
    event_id = _weighing(plc, 1)["event_id"]
    with pytest.raises(handshake.FlagNotTaken):
        _ack(plc, 1, event_id, WeighingJournal(tmp_path), weighing_id=5)
    assert WeighingJournal(tmp_path).last_write(1) is None
    retried = _ack(plc, 1, event_id, WeighingJournal(tmp_path), weighing_id=5)
    assert (retried.ok, retried.code) == (True, "acked"), retried.message


def _refusal(raw: int) -> FinsError:
    return end_code_error(EndCode(raw), command=0x0102, detail="D9020")


def test_a_flag_write_the_plc_refused_leaves_no_intent_behind(tmp_path: Path) -> None:
    """CI's fault run (seed 792718497): the PLC answered item 3's flag write with end code 0x2502, which the
    gateway left in the journal as "written, not read back"; the next ack was `outcome_unknown` and the weighing
    waited for a person. A refusal from the CPU proves the write was not executed."""
    plc = InProcessPlc(write_errors=[_refusal(0x2502)])
    _post_weighing(plc, item=3)
    event_id = _weighing(plc, 3)["event_id"]
    with pytest.raises(handshake.FlagRefused, match="0x2502"):
        _ack(plc, 3, event_id, WeighingJournal(tmp_path), weighing_id=5)
    assert WeighingJournal(tmp_path).last_write(3) is None and _weighing(plc, 3)["pending"]
    again = _ack(plc, 3, event_id, WeighingJournal(tmp_path), weighing_id=5, request_id="w2")
    assert (again.ok, again.code) == (True, "acked"), again.message
    assert plc.program.weighing.state.acked == 1


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(FinsProtocolError("only a reply under another SID"), id="invalid-reply"),
        pytest.param(_refusal(0x0205), id="relay-response-timeout"),
        pytest.param(_refusal(0x8000 | 0x2502), id="relay-error-bit"),
    ],
)
def test_a_flag_write_whose_answer_proves_nothing_is_settled_by_the_read(tmp_path: Path, error: FinsError) -> None:
    """No valid reply, or an end code a relay gives after forwarding: the write may have landed. Landed (the
    read shows it taken): acked and journalled as taken; not landed (pending): written again, once."""
    landed = InProcessPlc(reply_errors=[error])
    _post_weighing(landed, item=1)
    reply = _ack(landed, 1, _weighing(landed, 1)["event_id"], WeighingJournal(tmp_path / "a"))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert _flag_writes(landed) == 1 and WeighingJournal(tmp_path / "a").last_write(1).state == "taken"  # type: ignore[union-attr]

    lost = InProcessPlc(write_errors=[error])
    _post_weighing(lost, item=1)
    reply = _ack(lost, 1, _weighing(lost, 1)["event_id"], WeighingJournal(tmp_path / "b"))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert _flag_writes(lost) == 2 and lost.program.weighing.state.acked == 1


def test_a_confirmed_flag_write_stays_taken_when_the_read_back_fails(tmp_path: Path) -> None:
    """The PLC answered the write, then the read-back got no reply: the flag is on the PLC. Journalled as taken,
    so the same ack later is `already_acked` even after the scale refilled the item identically."""
    plc = InProcessPlc(read_errors_after_write=1)
    _post_weighing(plc, item=4)
    _post_weighing(plc, item=4)
    event_id = _weighing(plc, 4)["event_id"]
    reply = _ack(plc, 4, event_id, WeighingJournal(tmp_path), weighing_id=9)
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    plc.program.scan(3.0)  # the identical second weighing appears in item 4
    again = _ack(plc, 4, event_id, WeighingJournal(tmp_path), weighing_id=9, request_id="w2")
    assert (again.ok, again.code) == (True, "already_acked"), again.message
    assert _flag_writes(plc) == 1 and plc.program.weighing.state.acked == 1


def test_end_codes_that_prove_a_command_was_not_executed() -> None:
    refused = [0x2502, 0x1103, 0x0401, 0x2203, 0x2101, 0x0204, 0x0040 | 0x2203]
    unproven = [0x0205, 0x0001, 0x8000 | 0x1103, 0x0000, 0x0040]
    assert all(EndCode(raw).proves_not_executed for raw in refused)
    assert not any(EndCode(raw).proves_not_executed for raw in unproven)


def test_the_journal_survives_a_restart_and_refuses_a_damaged_file(tmp_path: Path) -> None:
    journal = WeighingJournal(tmp_path / "state")
    journal.record(4, ItemWrite(_key(9), (1, 2, 3), "intent", "r1"))
    journal.record(4, ItemWrite(_key(9), (1, 2, 3), "taken", "r1"))
    journal.record(5, ItemWrite(_key(10), (4,), "intent", "r2"))
    journal.record(5, None)
    assert WeighingJournal(tmp_path / "state").last_write(4) == ItemWrite(_key(9), (1, 2, 3), "taken", "r1")
    assert WeighingJournal(tmp_path / "state").last_write(5) is None
    assert not list((tmp_path / "state").glob("*.tmp"))
    for damaged in ("{not json", '{"version": 2, "items": {}}', '{"version": 1, "items": {"4": {"state": "x"}}}'):
        (tmp_path / "state" / "weighing_flags.json").write_text(damaged)
        with pytest.raises(JournalError, match="unreadable"):
            WeighingJournal(tmp_path / "state")
