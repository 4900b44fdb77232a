"""``edgectl decode {read-slot,write-slot,failure,manual-weighing} --words W1,W2,...``: decode raw PLC words with the memory map.

Prints {"valid", "empty", "errors", "fields"} as JSON; exit 0 whether or not the words are valid, 2 when the
arguments are wrong (not integers, not 16-bit, wrong word count for the area).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgectl.commands import EXIT_OK, EXIT_USAGE
from shared.plc.memory_map import AreaName, MemoryMapError, load_memory_map
from shared.plc.snapshot import decode_area

AREAS: dict[str, AreaName] = {
    "read-slot": "read_slot",
    "write-slot": "write_slot",
    "failure": "failure",
    "manual-weighing": "manual_weighing",
}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "decode", help="decode raw PLC words (a slot, the failure or the manual-weighing area)"
    )
    p.add_argument("area", choices=sorted(AREAS))
    p.add_argument("--slot", type=int, default=1, help="slot number (read-slot/write-slot)")
    p.add_argument("--map", type=Path, default=None, help="memory map YAML (default: the plant's)")
    p.add_argument("--words", required=True, help="comma-separated words, decimal or 0x-hex")
    p.set_defaults(func=run)


def parse_words(text: str) -> list[int]:
    words: list[int] = []
    for i, item in enumerate(text.replace(" ", "").split(",")):
        try:
            value = int(item, 16) if item.lower().startswith("0x") else int(item, 10)
        except ValueError:
            raise ValueError(f"word {i + 1} ({item!r}) is not an integer") from None
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"word {i + 1} ({value}) is not a 16-bit value (0..65535)")
        words.append(value)
    return words


def run(args: argparse.Namespace) -> int:
    area = AREAS[args.area]
    try:
        mmap = load_memory_map(args.map)
        words = parse_words(args.words)
    except (MemoryMapError, ValueError) as exc:
        print(f"edgectl decode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    expected = mmap.layout_of(area).words
    if len(words) != expected:
        print(f"edgectl decode: {args.area} takes {expected} words, got {len(words)}", file=sys.stderr)
        return EXIT_USAGE
    slot = 1 if area in ("failure", "manual_weighing") else args.slot
    capacity = mmap.areas[area].slot_capacity
    if not 1 <= slot <= capacity:
        print(f"edgectl decode: slot {slot} outside 1..{capacity}", file=sys.stderr)
        return EXIT_USAGE
    snap = decode_area(mmap, area, slot, words)
    doc = {"valid": snap.valid, "empty": snap.empty, "errors": list(snap.errors), "fields": snap.fields}
    print(json.dumps(doc, indent=2, sort_keys=True))
    return EXIT_OK
