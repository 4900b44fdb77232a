"""The simulator's PLC program, driven only by FINS memory reads/writes over UDP (our client), plus its raw
FINS end codes and its control API."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from shared.fins import frames
from shared.fins.client import FinsClient
from shared.fins.frames import Route
from shared.plc.memory_map import load_memory_map
from shared.plc.snapshot import BatchCommand, Snapshot, decode_area, encode_batch_command
from simulators.plc.faults import Faults
from simulators.plc.program import ProgramConfig
from simulators.plc.server import SimConfig, SimHandle, run_in_thread

MAP = load_memory_map()
LAYOUT = MAP.layout_of("write_slot")
TARGETS = {"silo101": 41.6, "silo102": 160, "silo103": 350, "silo106": 70, "silo107": 125, "lq114": 40}


def command(mo: str) -> list[int]:
    return encode_batch_command(MAP, 1, BatchCommand(mo, "JF PLUS KUR", "JF PLUS KUR", 1000, TARGETS))


def start(**program: Any) -> SimHandle:
    cfg = SimConfig(port=0, seed=9, control_port=0, program=ProgramConfig(**{"batch_seconds": 0.4, **program}))
    return run_in_thread(cfg)


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    handle = start(noise_kg=0.3)
    yield handle
    handle.stop()


def run(sim: SimHandle, scenario: Callable[[FinsClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with FinsClient(port=sim.port, dest_node=1, source_node=20, timeout=0.5) as c:
            await scenario(c)

    asyncio.run(main())


async def snapshot(c: FinsClient, area: Any, slot: int = 1) -> Snapshot:
    words = await c.read_words(MAP.base_address(area, slot), MAP.layout_of(area).words)
    return decode_area(MAP, area, slot, words)


async def wait_for(c: FinsClient, predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_full_batch_cycle_over_fins(sim: SimHandle) -> None:
    w_flag, r_flag = MAP.flag_address("write_slot", 1), MAP.flag_address("read_slot", 1)

    async def scenario(c: FinsClient) -> None:
        assert await c.read_words(w_flag, 1) == [1]  # armed start
        await c.write_words(MAP.base_address("write_slot", 1), command("WH/MO/00014"))

        async def latched() -> bool:
            return (await c.read_words(w_flag, 1)) == [1]

        await wait_for(c, latched)
        running = await snapshot(c, "read_slot")
        assert running.valid, running.errors
        assert running.fields["mo_id"] == "WH/MO/00014" and running.fields["status_read_data"] == 0
        assert running.fields["status_manufacturing"] == 0

        async def finished() -> bool:
            return (await snapshot(c, "read_slot")).fields.get("status_manufacturing") == 1

        await wait_for(c, finished)
        done = await snapshot(c, "read_slot")
        assert done.valid, done.errors
        consumption = done.fields["consumption"]
        for code, target in TARGETS.items():
            assert abs(consumption[code] - target) <= 0.3 + 1e-9
        assert all(consumption[code] == 0 for code in MAP.equipment_codes if code not in TARGETS)
        assert done.fields["weight_finished_good"] == pytest.approx(sum(consumption.values()), abs=0.01)
        assert done.fields["status_operation"] == 0 and done.fields["status_read_data"] == 0
        assert sim.state()["slots"][0]["phase"] == "finished"

        await c.write_words(r_flag, [1])  # the ack, after storing

        async def acked() -> bool:
            return sim.state()["slots"][0]["phase"] == "acked"

        await wait_for(c, acked)
        await c.write_words(MAP.base_address("write_slot", 1), command("WH/MO/00015"))
        await wait_for(c, latched)
        assert (await snapshot(c, "read_slot")).fields["mo_id"] == "WH/MO/00015"

    run(sim, scenario)
    slot = sim.state()["slots"][0]
    assert slot["batches_started"] == 2 and slot["batches_finished"] >= 1 and slot["violations"] == 0


def test_write_while_running_is_a_violation_and_waits_for_the_ack(sim: SimHandle) -> None:
    w_flag, r_flag = MAP.flag_address("write_slot", 1), MAP.flag_address("read_slot", 1)
    base = MAP.base_address("write_slot", 1)

    async def scenario(c: FinsClient) -> None:
        await c.write_words(base, command("WH/MO/00020"))
        await asyncio.sleep(0.1)
        await c.write_words(base, command("WH/MO/00021"))  # previous batch still running
        assert sim.state()["slots"][0]["violations"] == 1
        await asyncio.sleep(0.6)  # first batch finished, not acknowledged: the second must not start
        assert (await snapshot(c, "read_slot")).fields["mo_id"] == "WH/MO/00020"
        assert await c.read_words(w_flag, 1) == [0]
        await c.write_words(r_flag, [1])

        async def second_started() -> bool:
            return (await snapshot(c, "read_slot")).fields.get("mo_id") == "WH/MO/00021"

        await wait_for(c, second_started)
        assert await c.read_words(w_flag, 1) == [1]

    run(sim, scenario)
    assert sim.state()["slots"][0]["batches_started"] == 2


def test_invalid_command_is_counted_and_not_run(sim: SimHandle) -> None:
    garbage = command("WH/MO/00030")
    garbage[27] = 109  # silo101's ID word holds another silo's ID
    sim.write_memory(MAP.base_address("write_slot", 1), garbage)  # flag word 0 inside

    async def scenario(c: FinsClient) -> None:
        await asyncio.sleep(0.2)
        assert await c.read_words(MAP.flag_address("write_slot", 1), 1) == [0]
        assert not any((await snapshot(c, "read_slot")).words)  # READ slot untouched (all zero)

    run(sim, scenario)
    assert sim.state()["slots"][0]["invalid_commands"] == 1
    assert sim.state()["slots"][0]["batches_started"] == 0


def test_batch_failure_sets_status_operation() -> None:
    handle = start(op_failure_rate=1.0)
    try:

        async def scenario(c: FinsClient) -> None:
            await c.write_words(MAP.base_address("write_slot", 1), command("WH/MO/00040"))

            async def failed() -> bool:
                return (await snapshot(c, "read_slot")).fields.get("status_operation") == 1

            await wait_for(c, failed)
            snap = await snapshot(c, "read_slot")
            assert snap.valid and snap.fields["status_manufacturing"] == 0
            assert sum(snap.fields["consumption"].values()) < sum(TARGETS.values())

        run(handle, scenario)
        assert handle.state()["slots"][0]["batches_failed"] == 1
    finally:
        handle.stop()


def test_failure_cycle_one_event_at_a_time(sim: SimHandle) -> None:
    flag = MAP.flag_address("failure")
    sim.trigger_failure("silo105", "MOTOR_OVERLOAD")
    sim.trigger_failure("lq114", "LEVEL_LOW")

    async def scenario(c: FinsClient) -> None:
        async def posted() -> bool:
            return not (await snapshot(c, "failure")).empty

        await wait_for(c, posted)
        first = await snapshot(c, "failure")
        assert first.valid, first.errors
        assert first.fields["equipment_code"] == "silo105" and first.fields["description"] == "MOTOR_OVERLOAD"
        assert first.fields["status_read_data"] == 0
        await asyncio.sleep(0.2)  # the second event must wait for the ack
        assert (await snapshot(c, "failure")).fields["event_id"] == first.fields["event_id"]
        await c.write_words(flag, [1])

        async def second() -> bool:
            return (await snapshot(c, "failure")).fields.get("equipment_code") == "lq114"

        await wait_for(c, second)
        assert (await snapshot(c, "failure")).fields["status_read_data"] == 0

    run(sim, scenario)
    failures = sim.state()["failures"]
    assert failures["posted"] == 2 and failures["acked"] == 1 and failures["waiting"]


def test_failure_events_odoo_can_never_accept_are_posted_as_asked(sim: SimHandle) -> None:
    """The plant's program can raise an equipment code the map does not list, and an empty text: the simulator
    posts both (the gateway must park them, not lose them)."""
    flag = MAP.flag_address("failure")
    sim.trigger_failure("mixer07", "JAM")
    sim.trigger_failure("silo103", "")

    async def scenario(c: FinsClient) -> None:
        async def shows(code: str) -> bool:
            return (await snapshot(c, "failure")).fields.get("equipment_code") == code

        await wait_for(c, lambda: shows("mixer07"))
        first = await snapshot(c, "failure")
        assert first.valid and "not in the memory map" in first.fields["unreportable"], first
        await c.write_words(flag, [1])
        await wait_for(c, lambda: shows("silo103"))
        second = await snapshot(c, "failure")
        assert second.valid and second.fields["description"] == "", second
        assert "description is empty" in second.fields["unreportable"]

    run(sim, scenario)


def test_a_wrong_weighing_waits_until_the_operator_withdraws_it(sim: SimHandle) -> None:
    """A wrong entry at the scale stays on the PLC (flag 0, rejected by the decoder) until it is withdrawn:
    then the item is empty and free, and the withdrawal is counted, not an acknowledgement."""
    mo = "WH/MO/00042"
    assert http(sim, "POST", "/weighing", {"mo_id": mo, "product_id": 0, "kg": 0.7})[0] == 200
    wait_until_posted = time.monotonic() + 5
    while not sim.state()["weighings"]["waiting"] and time.monotonic() < wait_until_posted:
        time.sleep(0.02)
    weighings = sim.state()["weighings"]
    assert weighings["waiting_items"] == [{"item": 1, "mo_id": mo, "product_id": 0, "kg": 0.7}], weighings

    async def rejected(c: FinsClient) -> None:
        item = (await snapshot(c, "manual_weighing")).fields["items"][0]
        assert not item["valid"] and not item["empty"] and item["status_manual_weigh_read"] == 0, item

    run(sim, rejected)
    assert http(sim, "POST", "/weighing/withdraw", {"item": 2})[0] == 400  # nothing waits there
    status, withdrawn = http(sim, "POST", "/weighing/withdraw", {"item": 1})
    assert status == 200 and withdrawn == {"item": 1, "mo_id": mo, "product_id": 0, "kg": 0.7}

    async def emptied(c: FinsClient) -> None:
        item = (await snapshot(c, "manual_weighing")).fields["items"][0]
        assert item["empty"] and item["valid"], item

    run(sim, emptied)
    weighings = sim.state()["weighings"]
    assert (weighings["posted"], weighings["acked"], weighings["withdrawn"], weighings["waiting"]) == (1, 0, 1, [])
    assert http(sim, "POST", "/weighing/withdraw", {"item": 1})[0] == 400  # once only


def test_reboot_clears_memory_and_arm_restores_w(sim: SimHandle) -> None:
    sim.write_memory(100, [1, 2, 3])
    sim.reboot(armed=False)
    assert sim.read_memory(100, 3) == [0, 0, 0]
    time.sleep(0.1)  # a few scans over the empty, unarmed slot
    assert sim.read_memory(MAP.flag_address("write_slot", 1), 1) == [0]
    state = sim.state()
    assert state["reboots"] == 1 and state["slots"][0]["invalid_commands"] == 0  # empty slot: nothing to run
    sim.call(sim.sim.program.arm)
    assert sim.read_memory(MAP.flag_address("write_slot", 1), 1) == [1]


# ------------------------------------------------------------------------------- raw FINS end codes


def raw_exchange(port: int, frame: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(frame, ("127.0.0.1", port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None


HEADER = "80 00 02 00 01 00 00 14 00 21"  # DA1 1, SA1 20, SID 0x21


@pytest.mark.parametrize(
    ("body", "end_code"),
    [
        ("01 01 B0 00 64 00 00 01", 0x1101),  # CIO area: not simulated
        ("01 01 82 9C 40 00 00 01", 0x1103),  # D40000
        ("01 01 82 17 70 05 00 01", 0x1103),  # bit number on a word read
        ("01 01 82 7F F8 00 00 14", 0x1104),  # D32760 + 20 runs past D32767
        ("01 01 82 17 70 00 03 E8", 0x110B),  # 1000 words
        ("01 01 82 17 70 00 00", 0x1002),  # count missing
        ("01 01 82 17 70 00 00 01 00", 0x1001),
        ("01 02 82 1B 58 00 00 02 00 01", 0x1003),  # 2 items, 1 word of data
        ("01 04 82 17 70", 0x1003),
        ("06 01 00", 0x1001),
        ("04 01 FF FF 02", 0x0401),  # RUN: not accepted by the simulator
        ("07 01 00", 0x1001),  # clock read takes no parameters
        ("06 20 02", 0x110C),  # cycle time: 00 reset, 01 read
        ("07 02", 0x0401),  # clock write: not simulated
    ],
)
def test_raw_end_codes(sim: SimHandle, body: str, end_code: int) -> None:
    reply = raw_exchange(sim.port, bytes.fromhex(HEADER + body))
    assert reply is not None
    parsed = frames.parse_reply(reply)
    assert parsed.end_code.raw == end_code and parsed.data == b""
    assert parsed.header.sid == 0x21 and parsed.header.da1 == 0x14 and parsed.header.sa1 == 1
    assert parsed.command == int(body[:5].replace(" ", ""), 16)


def test_node_addressing(sim: SimHandle) -> None:
    read = frames.memory_area_read(7076, 1)
    assert raw_exchange(sim.port, frames.encode_command(Route(da1=5, sa1=20), 1, read), 0.2) is None
    reply = raw_exchange(sim.port, frames.encode_command(Route(da1=0, sa1=20), 2, read))
    assert reply is not None and frames.parse_reply(reply).data == b"\x00\x01"
    no_response = bytearray(frames.encode_command(Route(da1=1, sa1=20), 3, read))
    no_response[0] |= 0x01  # ICF: response not required
    assert raw_exchange(sim.port, bytes(no_response), 0.2) is None
    assert sim.state()["fins"]["wrong_node"] == 1


# ---------------------------------------------------------------------------------------- control API


def http(sim: SimHandle, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert sim.control_url is not None
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(sim.control_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_control_api(sim: SimHandle) -> None:
    status, state = http(sim, "GET", "/state")
    assert status == 200 and state["mode"] == "RUN" and state["slots"][0]["phase"] == "idle"
    assert http(sim, "POST", "/words", {"address": "D500", "words": [7, 8]})[0] == 200
    assert http(sim, "GET", "/memory?address=D500&count=2")[1]["words"] == [7, 8]
    status, faults = http(sim, "POST", "/faults", {"program_mode": True, "end_code": "0x0204"})
    assert status == 200 and faults["program_mode"] and faults["end_code"] == 0x0204
    assert http(sim, "GET", "/state")[1]["mode"] == "PROGRAM"
    http(sim, "POST", "/faults", Faults().as_dict())
    assert http(sim, "POST", "/failure", {"equipment": "silo101"})[1]["queued"] >= 0
    status, rebooted = http(sim, "POST", "/reboot", {})
    assert status == 200 and rebooted["reboots"] == 1
    assert http(sim, "GET", "/memory?address=D500&count=2")[1]["words"] == [0, 0]
    assert http(sim, "POST", "/arm")[0] == 200
    assert http(sim, "POST", "/faults", {"drop": 2})[0] == 400
    assert http(sim, "POST", "/faults", {"nonsense": 1})[0] == 400
    assert http(sim, "POST", "/words", {"address": 32767, "words": [1, 2]})[0] == 400
    assert http(sim, "POST", "/failure", {"equipment": ""})[0] == 400
    assert http(sim, "POST", "/failure", {"equipment": "x" * 17})[0] == 400  # more than its 8 words hold
    assert http(sim, "GET", "/nowhere")[0] == 404
