"""Map validation: the shipped map is valid; every broken variant is refused with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.plc.memory_map import DEFAULT_MAP_PATH, MemoryMapError, load_memory_map, parse_memory_map
from shared.plc.snapshot import decode_area

BASE: dict[str, Any] = yaml.safe_load(DEFAULT_MAP_PATH.read_text())
LIVE_MAP = load_memory_map()


def _variant(mutate: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    mutate(data)
    return data


def _field(data: dict[str, Any], layout: str, name: str) -> dict[str, Any]:
    return next(f for f in data["layouts"][layout]["fields"] if f["name"] == name)


def test_default_map_is_the_live_plc_layout() -> None:
    m = load_memory_map()
    assert m.base_address("read_slot", 1) == 6000 and m.flag_address("read_slot", 1) == 6076
    assert m.base_address("write_slot", 3) == 7200 and m.flag_address("write_slot", 10) == 7976
    assert m.flag_address("failure") == 8022
    assert m.layout_of("read_slot").words == 77 and m.layout_of("failure").words == 23
    assert m.active_slots == 1
    assert m.equipment_codes[0] == "silo101" and m.equipment_codes[-1] == "lq115"


def test_gateway_may_write_only_the_mapped_ranges() -> None:
    m = load_memory_map()
    assert m.allows_write(7000, 77) and m.allows_write(7976, 1)
    assert m.allows_write(6076, 1) and m.allows_write(8022, 1)
    assert not m.allows_write(6000, 77)  # READ slot data belongs to the PLC
    assert not m.allows_write(6075, 2)
    assert not m.allows_write(7050, 100)  # spills past the block
    assert not m.allows_write(8000, 1)
    assert not m.allows_write(0, 1)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: _field(d, "batch_slot", "quantity").update(offset=24),
            "quantity: overlaps finished_goods",
        ),
        (
            lambda d: _field(d, "batch_slot", "lq115").update(offset=71),
            "status_manufacturing: overlaps lq115",
        ),
        (
            lambda d: _field(d, "batch_slot", "status_read_data").update(offset=77),
            "status_read_data: words 77..77",
        ),
        (
            lambda d: _field(d, "batch_slot", "quantity").update(words=3),
            "quantity: codec kg_x100 takes 2 words",
        ),
        (lambda d: _field(d, "batch_slot", "mo_id").pop("words"), "mo_id: ascii needs"),
        (lambda d: _field(d, "batch_slot", "batch").update(codec="float"), "unknown codec"),
        (lambda d: _field(d, "failure", "status_read_data").update(codec="uint16"), "single `flag` word"),
        (lambda d: d["layouts"]["failure"].update(flag="nope"), "flag field 'nope' is not defined"),
        (
            lambda d: _field(d, "batch_slot", "silo105_id").update(equipment="silo104"),
            "silo104 needs exactly one",
        ),
        (lambda d: d["areas"]["failure"].update(base=7900), "overlaps"),
        (lambda d: d["areas"]["read_slot"].update(stride=50), "stride 50 is smaller"),
        (lambda d: d["areas"]["failure"].update(base=32760), "leaves the DM area"),
        (lambda d: d.update(active_slots=11), "active_slots 11 exceeds"),
        (lambda d: d.update(mo_name_pattern="(["), "mo_name_pattern"),
        (lambda d: d["equipment"].append({"code": "silo101", "id": 999, "name": "X"}), "unique"),
        (lambda d: d["areas"].pop("failure"), "failure"),
        (lambda d: _field(d, "batch_slot", "batch").update(colour="red"), "colour"),
    ],
)
def test_invalid_maps_are_refused_naming_the_field(mutate: Any, message: str) -> None:
    with pytest.raises(MemoryMapError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_memory_map(_variant(mutate))


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(MemoryMapError, match="cannot read"):
        load_memory_map(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed")
    with pytest.raises(MemoryMapError, match="not valid YAML"):
        load_memory_map(bad)


@settings(max_examples=300)
@given(st.lists(st.integers(0, 0xFFFF), min_size=77, max_size=77), st.integers(1, 10))
def test_garbage_slot_is_either_rejected_or_fully_consistent(words: list[int], slot: int) -> None:
    """Random memory never yields a 'valid' batch with out-of-map values (reject, never repair)."""
    m = LIVE_MAP  # loaded once: parsing the YAML per example made the test trip Hypothesis' deadline under load
    snap = decode_area(m, "read_slot", slot, words)
    if not snap.valid:
        assert snap.errors and snap.fields == {}
    elif not snap.empty:
        assert snap.fields["batch"] == slot
        assert m.mo_name_regex.fullmatch(snap.fields["mo_id"])
        assert all(0 <= v <= 5000 for v in snap.fields["consumption"].values())
