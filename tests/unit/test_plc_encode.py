"""Encoding batch commands: the exact WRITE-slot words of the plant's WH/MO/00014 example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.plc.codecs import CodecError
from shared.plc.memory_map import load_memory_map, parse_memory_map
from shared.plc.snapshot import BatchCommand, decode_batch_slot, encode_batch_command

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
TEN_SLOTS = parse_memory_map({**load_memory_map().model_dump(), "active_slots": 10})

# docs/plc-program.md P2 example: WRITE slot 4 (D7300-D7376) for WH/MO/00014.
D7300 = """
0004 5748 2F4D 4F2F 3030 3031 3400 0000 0000 4A46
2050 4C55 5320 4B55 5200 0000 0000 4A46 2050 4C55
5320 4B55 5200 0000 0000 0001 86A0 0065 0000 1040
0066 0000 3E80 0067 0000 88B8 0068 0000 0000 0069
0000 0000 006A 0000 1B58 006B 0000 30D4 006C 0000
07D0 006D 0000 0000 006E 0000 0000 006F 0000 0000
0070 0000 05DC 0071 0000 0000 0072 0000 0FA0 0073
0000 03E8 0000 0000 0000 0000 0000
"""


def _mo14_targets() -> tuple[dict[str, object], dict[str, float]]:
    reply = json.loads((REFERENCE / "odoo" / "mo-list-detailed-2026-03-04.json").read_text())
    mo = next(m for m in reply["result"]["data"] if m["mo_id"] == "WH/MO/00014")
    targets: dict[str, float] = {}
    for comp in mo["components_consumption"]:
        code = (comp.get("equipment") or {}).get("code")
        if code in TEN_SLOTS.equipment_codes:
            targets[code] = targets.get(code, 0.0) + float(comp["to_consume"])
    return mo, targets


def test_wh_mo_00014_encodes_to_the_documented_words() -> None:
    mo, targets = _mo14_targets()
    cmd = BatchCommand(
        mo_id=str(mo["mo_id"]),
        bom_name="JF PLUS KUR",
        finished_goods="JF PLUS KUR",
        quantity=float(mo["quantity"]),  # type: ignore[arg-type]
        targets=targets,
    )
    words = encode_batch_command(TEN_SLOTS, 4, cmd)
    assert words == [int(w, 16) for w in D7300.split()]
    # And the block decodes back to the same command with the flag 0 (= written, not yet taken).
    snap = decode_batch_slot(TEN_SLOTS, "write_slot", 4, words)
    assert snap.valid and snap.fields["status_read_data"] == 0
    assert snap.fields["targets"]["silo101"] == 41.6


def test_long_product_name_is_cut_but_mo_id_never_is() -> None:
    cmd = BatchCommand("WH/MO/00011", "[10092] JF SAPOT 1B", "[10092] JF SAPOT 1B", 1000, {})
    words = encode_batch_command(TEN_SLOTS, 1, cmd)
    snap = decode_batch_slot(TEN_SLOTS, "write_slot", 1, words)
    assert snap.fields["finished_goods"] == "[10092] JF SAPOT"
    with pytest.raises(CodecError):
        encode_batch_command(TEN_SLOTS, 1, BatchCommand("WH/MO/000111111111111", "x", "x", 1, {}))


@pytest.mark.parametrize(
    ("cmd", "slot", "message"),
    [
        (BatchCommand("WH/MO/00011", "a", "a", 1000, {"silo999": 1.0}), 1, "unknown equipment"),
        (BatchCommand("WH/MO/00011", "a", "a", 1000, {"silo101": -1.0}), 1, "non-negative"),
        (BatchCommand("WH/MO/00011", "a", "a", 1000, {"silo101": 5000.01}), 1, "out of range"),
        (BatchCommand("WH/MO/00011", "a", "a", float("nan"), {}), 1, "finite"),
        (BatchCommand("not an mo", "a", "a", 1000, {}), 1, "does not match"),
        (BatchCommand("WH/MO/00011", "caf\u00e9", "a", 1000, {}), 1, "printable ASCII"),
        (BatchCommand("WH/MO/00011", "a", "a", 1000, {}), 11, "not an active slot"),
    ],
)
def test_bad_commands_are_refused(cmd: BatchCommand, slot: int, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode_batch_command(TEN_SLOTS, slot, cmd)
