"""The gateway's flag handshakes against the simulator's PLC program in-process (no sockets): the PLC may scan
between our flag write and our read-back, take the flag and move on. That is success, not a mismatch; a flag
that never lands is a mismatch. (Found by the fault suite: a fast PLC turned an ack into 'mismatch' forever.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from services.plc_gateway import handshake
from shared.mqtt.payloads import AckFailure, AckSlot, Arm
from shared.plc.memory_map import load_memory_map
from shared.plc.snapshot import BatchCommand, encode_batch_command
from simulators.plc.memory import DataMemory
from simulators.plc.program import PlcProgram, ProgramConfig

MAP = load_memory_map()


class InProcessPlc:
    """PlcIO over the simulator's memory; `scan_after_write` runs one PLC scan right after each write."""

    def __init__(self, *, scan_after_write: bool = True, drop_flag_writes: bool = False) -> None:
        self.memory = DataMemory()
        self.program = PlcProgram(self.memory, MAP, ProgramConfig(batch_seconds=1.0), random.Random(7))
        self.scan_after_write = scan_after_write
        self.drop_flag_writes = drop_flag_writes

    async def read_words(self, address: int, count: int) -> list[int]:
        return self.memory.read(address, count)

    async def write_words(self, address: int, words: Sequence[int], *, retries: int | None = None) -> None:
        if not (self.drop_flag_writes and len(words) == 1):
            self.program.on_fins_write(address, words)
            self.memory.write(address, words)
        if self.scan_after_write:
            self.program.scan(0.0)


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


def test_ack_slot_succeeds_when_the_plc_latches_the_next_command_before_the_read_back() -> None:
    plc = InProcessPlc()
    plc.program.arm()
    _write_command(plc, "WH/MO/00001")
    plc.program.scan(0.0)  # latched
    plc.program.scan(2.0)  # dosed and finished
    assert plc.program.slots[1].phase == "finished"
    _write_command(plc, "WH/MO/00002")  # the look-ahead command waits with W = 0
    reply = asyncio.run(handshake.ack_slot(plc, MAP, AckSlot(request_id="r1", slot=1, mo_id="WH/MO/00001")))
    assert (reply.ok, reply.code) == (True, "acked"), reply.message
    assert plc.program.slots[1].mo_id == "WH/MO/00002"
    assert plc.program.slots[1].batches_acked == 1


def test_ack_slot_is_a_mismatch_when_the_flag_never_lands() -> None:
    plc = InProcessPlc(drop_flag_writes=True)
    plc.program.arm()
    _write_command(plc, "WH/MO/00001")
    plc.program.scan(0.0)
    plc.program.scan(2.0)
    reply = asyncio.run(handshake.ack_slot(plc, MAP, AckSlot(request_id="r1", slot=1, mo_id="WH/MO/00001")))
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

    async def write_then_reboot(address: int, words: Sequence[int], *, retries: int | None = None) -> None:
        await real_write(address, words, retries=retries)
        plc.program.reboot(armed=False)

    plc.write_words = write_then_reboot  # type: ignore[method-assign]
    reply = asyncio.run(handshake.ack_failure(plc, MAP, AckFailure(request_id="r1", event_id=first)))
    assert (reply.ok, reply.code) == (False, "mismatch")
