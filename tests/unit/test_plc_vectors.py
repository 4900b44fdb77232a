"""The reference vectors (real PLC memory) decode to their expectations; files are loaded, never copied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.plc.memory_map import load_memory_map
from shared.plc.snapshot import decode_area

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "vectors"
MAP = load_memory_map()


def _vectors() -> list[Path]:
    files = sorted(VECTORS.glob("*.json"))
    assert len(files) >= 13, f"reference vectors missing under {VECTORS}"
    return files


@pytest.mark.parametrize("path", _vectors(), ids=lambda p: p.stem)
def test_vector_decodes_to_expectation(path: Path) -> None:
    vector: dict[str, Any] = json.loads(path.read_text())
    snap = decode_area(MAP, vector["area"], vector.get("slot", 1), vector["words"])
    expect = vector["expect"]
    assert snap.valid is expect["valid"], snap.errors
    if expect["valid"]:
        assert snap.errors == ()
        want = dict(expect["fields"])
        got = dict(snap.fields)
        got.pop("event_id", None)
        assert got.pop("unreportable", None) is None  # real PLC events name mapped equipment
        assert got == want
    else:
        assert snap.fields == {}
        # Every rule the vector names as broken is reported (a decoder may report more).
        for reason in expect["why"]:
            assert reason in snap.errors, f"missing reason {reason!r}; got {snap.errors}"


def test_failure_vector_has_stable_event_id() -> None:
    vector = json.loads((VECTORS / "failure-area-silo101.json").read_text())
    a = decode_area(MAP, "failure", 1, vector["words"])
    b = decode_area(MAP, "failure", 1, list(vector["words"]))
    assert a.fields["event_id"] == b.fields["event_id"]
    changed = list(vector["words"])
    changed[21] = 0x36  # second 35 -> 36: another event
    assert decode_area(MAP, "failure", 1, changed).fields["event_id"] != a.fields["event_id"]


def test_silo110_off_by_one_anomaly_is_rejected() -> None:
    """docs/plc-program.md P6 vector B: D6054 = 109, D6055-6056 = [110, 2100]."""
    hexwords = (
        "0001 5748 2F4D 4F2F 3030 3031 3100 0000 0000 5B31 3030 3932 5D20 4A46 2053 4150 4F54 5B31 3030 3932 "
        "5D20 4A46 2053 4150 4F54 0001 86A0 0065 0000 1FA4 0066 0000 3584 0067 0000 8980 0068 0000 0000 0069 "
        "0000 1194 006A 0000 0000 006B 0000 34BC 006C 0000 24B8 006D 0000 0000 006D 006E 0834 006F 0000 044C "
        "0070 0000 0000 0071 0000 0898 0072 0000 08FC 0073 0000 08FC 0001 0000 0000 0000 0001"
    )
    words = [int(w, 16) for w in hexwords.split()]
    snap = decode_area(MAP, "read_slot", 1, words)
    assert not snap.valid
    assert "equipment id at +54 is 109, expected 110" in snap.errors
    assert "silo110 consumption 72110.6 out of range" in snap.errors


def test_empty_slots_are_valid_and_empty_whatever_the_flag() -> None:
    for area in ("read_slot", "write_slot"):
        for flag in (0, 1):
            snap = decode_area(MAP, area, 1, [0] * 76 + [flag])
            assert snap.valid and snap.empty and snap.fields == {"status_read_data": flag}
        assert not decode_area(MAP, area, 1, [0] * 76 + [2]).valid
    snap = decode_area(MAP, "failure", 1, [0] * 22 + [1])
    assert snap.valid and snap.empty


def test_a_well_formed_event_odoo_cannot_accept_is_marked_unreportable() -> None:
    """Issue 10.6: decoded (it is a real PLC event that must be stored and acked), but marked, never sent."""
    vector = json.loads((VECTORS / "failure-area-silo101.json").read_text())
    unknown = list(vector["words"])
    unknown[0:4] = [0x6D69, 0x7865, 0x7230, 0x3100]  # "mixer01"
    snap = decode_area(MAP, "failure", 1, unknown)
    assert snap.valid and "'mixer01' is not in the memory map's equipment list" in snap.fields["unreportable"]
    blank = list(vector["words"])
    blank[8:16] = [0x2020, 0x2020, 0, 0, 0, 0, 0, 0]
    snap = decode_area(MAP, "failure", 1, blank)
    assert snap.valid and snap.fields["unreportable"] == "the failure description is empty"
