"""Whole-area polling: three reads per poll (READ slots, WRITE slots, then the failure and manual-weighing areas in
one 0104 read) at any slot count, split only by the chunk limit (at block boundaries), and every block cut from the
reads exactly as it lies in PLC memory."""

from __future__ import annotations

import pytest

from services.plc_gateway.area_poll import BlockAssembler, area_topic, plan_reads
from shared.mqtt.topics import Topics
from shared.plc.memory_map import load_memory_map, with_active_slots

BASE = load_memory_map()


def memory_word(address: int) -> int:
    return (address * 7 + 3) & 0xFFFF  # every address holds a distinct, recognisable word


def run_poll(slots: int, chunk: int, per_slot: bool = False) -> tuple[int, dict[tuple[str, int], list[int]]]:
    m = with_active_slots(BASE, slots)
    reads = plan_reads(m, chunk, per_slot=per_slot)
    assembler = BlockAssembler(m)
    blocks: dict[tuple[str, int], list[int]] = {}
    for read in reads:
        assert 1 <= read.count <= chunk
        addresses = read.addresses or range(read.address, read.address + read.count)
        assert len(addresses) == read.count
        words = [memory_word(a) for a in addresses]
        for area, slot, block in assembler.add(read, words):
            assert (area, slot) not in blocks
            blocks[(area, slot)] = block
    return len(reads), blocks


@pytest.mark.parametrize("slots", range(1, 11))
@pytest.mark.parametrize("chunk", [1, 23, 50, 77, 100, 177, 200, 500, 976, 977, 990, 999])
def test_blocks_are_cut_into_the_right_slots(slots: int, chunk: int) -> None:
    m = with_active_slots(BASE, slots)
    _, blocks = run_poll(slots, chunk)
    expected = {("read_slot", n) for n in m.slots()} | {("write_slot", n) for n in m.slots()}
    expected |= {("failure", 1), ("manual_weighing", 1)}
    assert set(blocks) == expected
    for (area, slot), block in blocks.items():
        base = m.base_address(area, slot)  # type: ignore[arg-type]
        assert block == [memory_word(base + i) for i in range(m.layout_of(area).words)]  # type: ignore[arg-type]


@pytest.mark.parametrize("slots", range(1, 11))
def test_three_reads_per_poll_at_any_slot_count(slots: int) -> None:
    assert run_poll(slots, 990)[0] == 3
    assert run_poll(slots, 999)[0] == 3
    assert run_poll(slots, 990, per_slot=True)[0] == 2 * slots + 2  # the old plan, for comparison


def test_the_ten_slot_area_is_one_977_word_read_and_the_single_areas_one_0104_read() -> None:
    reads = plan_reads(with_active_slots(BASE, 10), 990)
    assert [(r.address, r.count, bool(r.addresses)) for r in reads] == [
        (6000, 977, False),
        (7000, 977, False),
        (8000, 72, True),
    ]
    assert reads[2].addresses == (*range(8000, 8023), *range(9000, 9049))


def test_a_chunk_limit_splits_at_slot_boundaries() -> None:
    reads = plan_reads(with_active_slots(BASE, 10), 300)  # 3 slots fit (277 words), a 4th would not
    slot_reads = [r for r in reads if r.address < 8000]
    assert [len(r.pieces) for r in slot_reads] == [3, 3, 3, 1] * 2
    assert all(p.block_offset == 0 and p.words == 77 for r in slot_reads for p in r.pieces)


def test_a_block_larger_than_the_chunk_is_read_in_pieces() -> None:
    reads = plan_reads(with_active_slots(BASE, 1), 40)
    assert [(r.address, r.count, bool(r.addresses)) for r in reads] == [
        (6000, 40, False),
        (6040, 37, False),
        (7000, 40, False),
        (7040, 37, False),
        (8000, 23, True),  # the failure block fits one read; the weighing block alone does not
        (9000, 40, False),
        (9040, 9, False),
    ]


def test_bad_chunk_and_short_reply_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_words"):
        plan_reads(BASE, 0)
    read = plan_reads(BASE, 990)[0]
    with pytest.raises(ValueError, match="expected 77"):
        BlockAssembler(BASE).add(read, [0] * 76)


def test_topics_of_the_areas() -> None:
    t = Topics("scada/plc01")
    assert area_topic(t, BASE, "read_slot", 3) == "scada/plc01/plc/read/3"
    assert area_topic(t, BASE, "write_slot", 1) == "scada/plc01/plc/write/1"
    assert area_topic(t, BASE, "failure", 1) == "scada/plc01/plc/failure"
    assert area_topic(t, BASE, "manual_weighing", 1) == "scada/plc01/plc/weighing"
