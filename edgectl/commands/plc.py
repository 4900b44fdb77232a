"""``edgectl plc read|status|probe``: talk to the PLC directly over FINS/UDP with the gateway's client (probe:
edgectl/commands/plc_probe.py).

Use a source node (SA1) that no other client uses on the PLC's network (docs/fins.md F6): replies go by node.
Reads stay inside the memory map's areas (`--area read-slot --slot 1`, or `--address/--count` within a mapped
area): this is a diagnostic for the gateway's areas, not a general DM browser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from edgectl.commands import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, plc_probe
from shared.fins.client import FinsClient
from shared.fins.errors import FinsError, FinsTimeout
from shared.fins.frames import parse_dm_address
from shared.plc.memory_map import AreaName, MemoryMap, MemoryMapError, load_memory_map
from shared.plc.snapshot import decode_area

AREAS: dict[str, AreaName] = {
    "read-slot": "read_slot",
    "write-slot": "write_slot",
    "failure": "failure",
    "manual-weighing": "manual_weighing",
}


def _address(text: str) -> int:
    try:
        return parse_dm_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("plc", help="direct FINS access to the PLC")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (("read", "read DM words, print them as a JSON list"), ("status", "CPU status/mode")):
        a = actions.add_parser(name, help=helptext)
        a.add_argument("--host", required=True)
        a.add_argument("--port", type=int, default=9600)
        a.add_argument("--node", type=int, default=1, help="the PLC's FINS node (DA1)")
        a.add_argument("--source-node", type=int, default=250, help="our FINS node (SA1), unique on the network")
        a.add_argument("--timeout", type=float, default=1.0, help="seconds per attempt")
        a.add_argument("--retries", type=int, default=2)
        if name == "read":
            where = a.add_mutually_exclusive_group(required=True)
            where.add_argument(
                "--area", choices=sorted(AREAS), help="a mapped area; the address comes from the map"
            )
            where.add_argument("--address", type=_address, help="D6000 or 6000 (inside a mapped area)")
            a.add_argument("--slot", type=int, default=1, help="slot of read-slot/write-slot (1)")
            a.add_argument("--count", type=int, help="words to read with --address")
            a.add_argument("--map", type=Path, default=None, help="memory map YAML (default: the plant's)")
            a.add_argument("--decode", action="store_true", help="with --area: print the decoded snapshot")
        a.set_defaults(func=run)
    plc_probe.register(actions)


async def _run(args: argparse.Namespace) -> Any:
    client = FinsClient(
        host=args.host,
        port=args.port,
        dest_node=args.node,
        source_node=args.source_node,
        timeout=args.timeout,
        retries=args.retries,
    )
    async with client:
        if args.action == "read":
            return await client.read_words(args.address, args.count)
        status = await client.controller_status()
        return {"running": status.running, "mode": status.mode_name, "status": status.status}


def mapped_spans(m: MemoryMap) -> list[tuple[int, int, str]]:
    """(first, words, label) of every slot of every mapped area, all slot_capacity slots."""
    spans = []
    for name, area in m.areas.items():
        words = m.layout_of(name).words
        for slot in range(1, area.slot_capacity + 1):
            spans.append(
                (m.base_address(name, slot), words, f"{name} slot {slot}" if area.slot_capacity > 1 else name)
            )
    return spans


def resolve_read(args: argparse.Namespace) -> str | None:
    """Fill args.address/args.count from the map; the reason the read is refused, or None."""
    try:
        m = load_memory_map(args.map)
    except MemoryMapError as exc:
        return str(exc)
    args.memory_map = m
    if args.area:
        if args.count is not None:
            return "--count goes with --address; --area reads the whole area"
        area = AREAS[args.area]
        capacity = m.areas[area].slot_capacity
        slot = 1 if area in ("failure", "manual_weighing") else args.slot
        if not 1 <= slot <= capacity:
            return f"slot {slot} outside 1..{capacity}"
        args.slot, args.address, args.count = slot, m.base_address(area, slot), m.layout_of(area).words
        return None
    if args.decode:
        return "--decode needs --area"
    if args.count is None or args.count < 1:
        return "--address needs --count (1 or more)"
    for first, words, _label in mapped_spans(m):
        if first <= args.address and args.address + args.count <= first + words:
            return None
    areas = "; ".join(
        f"{name} D{a.base}"
        + (f"+{a.stride}*(slot-1), {a.slot_capacity} slots" if a.slot_capacity > 1 else "")
        + f", {m.layout_of(name).words} words"
        for name, a in m.areas.items()
    )
    return f"D{args.address}+{args.count} is not inside one mapped area ({areas})"


def run(args: argparse.Namespace) -> int:
    if args.action == "read" and (why := resolve_read(args)):
        print(f"edgectl plc read: {why}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(_run(args))
    except FinsTimeout as exc:
        print(
            f"edgectl plc: the PLC at {args.host}:{args.port} (node {args.node}) did not answer: {exc}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except FinsError as exc:
        print(f"edgectl plc: the PLC refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (ValueError, OSError) as exc:
        print(f"edgectl plc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "read" and args.decode:
        snap = decode_area(args.memory_map, AREAS[args.area], args.slot, result)
        result = {"valid": snap.valid, "empty": snap.empty, "errors": list(snap.errors), "fields": snap.fields}
    print(json.dumps(result))
    return EXIT_OK
