"""Whole-area polling: which FINS reads one poll makes, and how each read is cut into slot blocks. Pure.

A CJ2M serves FINS at the end of a scan (one or two scans per command), so a poll costs PLC scans, not bytes.
The gateway therefore reads each batch slot area in ONE `0101` read: all active READ slots (D6000 .. D6976 for
10 slots: 977 words, inside the 999-word limit), all active WRITE slots; and the single areas (the failure
event, the manual-weighing area and any the map adds) together in ONE `0104` read of their words: they lie too
far apart for one `0101` (D8000 .. D9048 is 1,049 words) and are small (72 words, 0104 takes 167). Three
commands per poll whatever the slot count. A read is split only when the chunk limit (`FINS_CHUNK_WORDS`, and
167 items for 0104) forces it, and then at block boundaries, so a block always comes from one read (one scan);
a single block larger than the limit is split into pieces (the map would have to allow that).

`per_slot=True` keeps the old plan (one read per block, 2N + 2 per poll) for comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from shared.fins.frames import MAX_MULTIPLE_ITEMS
from shared.mqtt.topics import Topics
from shared.plc.memory_map import AreaName, MemoryMap

SLOT_AREAS: tuple[str, ...] = ("read_slot", "write_slot")


@dataclass(frozen=True, slots=True)
class Piece:
    """Words [at, at + words) of a read are words [block_offset, ...) of one area block (area, slot)."""

    area: AreaName
    slot: int
    at: int
    block_offset: int
    words: int


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """`count` words from `address` (0101); or, when `addresses` is set, exactly those words (0104)."""

    address: int
    count: int
    pieces: tuple[Piece, ...]
    addresses: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Block:
    area: AreaName
    slot: int
    address: int
    words: int


def polled_slots(m: MemoryMap, area: AreaName) -> range:
    """The batch slot areas poll the active slots; any other area every slot it has (usually one)."""
    if area in SLOT_AREAS:
        return m.slots()
    return range(1, m.areas[area].slot_capacity + 1)


def area_topic(topics: Topics, m: MemoryMap, area: AreaName, slot: int) -> str:
    """Where a block's snapshot is published: plc/read/N, plc/write/N, plc/failure, plc/weighing, else
    plc/<area>[/N]."""
    if area == "read_slot":
        return topics.plc_read(slot)
    if area == "write_slot":
        return topics.plc_write(slot)
    if area == "failure":
        return topics.plc_failure
    if area == "manual_weighing":
        return topics.plc_weighing
    base = f"{topics.root}/plc/{area}"
    return f"{base}/{slot}" if m.areas[area].slot_capacity > 1 else base


def _blocks(m: MemoryMap, area: AreaName) -> list[_Block]:
    words = m.layout_of(area).words
    return [_Block(area, slot, m.base_address(area, slot), words) for slot in polled_slots(m, area)]


def _split(block: _Block, chunk_words: int) -> Iterator[PlannedRead]:
    for offset in range(0, block.words, chunk_words):
        n = min(chunk_words, block.words - offset)
        yield PlannedRead(block.address + offset, n, (Piece(block.area, block.slot, 0, offset, n),))


def _contiguous(group: Sequence[_Block]) -> PlannedRead:
    """One 0101 read spanning the blocks (they lie in address order)."""
    first = group[0].address
    pieces = tuple(Piece(b.area, b.slot, b.address - first, 0, b.words) for b in group)
    return PlannedRead(first, group[-1].address + group[-1].words - first, pieces)


def _scattered(group: Sequence[_Block]) -> PlannedRead:
    """One 0104 read of exactly the blocks' words, wherever they lie."""
    pieces: list[Piece] = []
    addresses: list[int] = []
    for b in group:
        pieces.append(Piece(b.area, b.slot, len(addresses), 0, b.words))
        addresses.extend(range(b.address, b.address + b.words))
    return PlannedRead(group[0].address, len(addresses), tuple(pieces), tuple(addresses))


def _pack(
    blocks: Sequence[_Block], limit: int, build: Callable[[Sequence[_Block]], PlannedRead]
) -> Iterator[PlannedRead]:
    """Whole blocks into as few reads as `limit` words per read allows (a read's size is what `build` makes of
    its blocks); a block larger than the limit alone is read in contiguous pieces."""
    group: list[_Block] = []
    for block in blocks:
        if block.words > limit:
            if group:
                yield build(group)
                group = []
            yield from _split(block, limit)
            continue
        if group and build([*group, block]).count > limit:
            yield build(group)
            group = []
        group.append(block)
    if group:
        yield build(group)


def plan_reads(m: MemoryMap, chunk_words: int, *, per_slot: bool = False) -> list[PlannedRead]:
    """The reads of one poll: the slot areas in map order, then the single areas together."""
    if chunk_words < 1:
        raise ValueError(f"chunk_words {chunk_words} must be >= 1")
    reads: list[PlannedRead] = []
    singles: list[_Block] = []
    for area in m.areas:
        blocks = sorted(_blocks(m, area), key=lambda b: b.address)
        if per_slot:
            for block in blocks:
                reads.extend(_pack([block], chunk_words, _contiguous))
        elif area in SLOT_AREAS:
            reads.extend(_pack(blocks, chunk_words, _contiguous))
        else:
            singles.extend(blocks)
    reads.extend(_pack(singles, min(chunk_words, MAX_MULTIPLE_ITEMS), _scattered))
    return reads


class BlockAssembler:
    """Collects the words of each block across the reads of one poll; a block is done when all words came."""

    def __init__(self, m: MemoryMap) -> None:
        self.map = m
        self._parts: dict[tuple[AreaName, int], dict[int, list[int]]] = {}

    def add(self, read: PlannedRead, words: Sequence[int]) -> list[tuple[AreaName, int, list[int]]]:
        """Feed one read's words; returns the blocks (area, slot, words) completed by it, in read order."""
        if len(words) != read.count:
            raise ValueError(f"read of D{read.address} returned {len(words)} words, expected {read.count}")
        done: list[tuple[AreaName, int, list[int]]] = []
        for p in read.pieces:
            key = (p.area, p.slot)
            parts = self._parts.setdefault(key, {})
            parts[p.block_offset] = list(words[p.at : p.at + p.words])
            size = self.map.layout_of(p.area).words
            if sum(len(v) for v in parts.values()) == size:
                block = [w for offset in sorted(parts) for w in parts[offset]]
                del self._parts[key]
                done.append((p.area, p.slot, block))
        return done
