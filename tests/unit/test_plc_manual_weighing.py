"""The manual-weighing area (D9000-D9048) decoded from hand-made words: kg x100 high word first, per-item
reject-never-repair, stable event ids, and the map's rules for the area."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from shared.plc.memory_map import DEFAULT_MAP_PATH, MemoryMapError, load_memory_map, parse_memory_map
from shared.plc.snapshot import decode_area, decode_manual_weighing

MAP = load_memory_map()
# "WH/MO/00011" as the PLC holds it: two ASCII chars per word, high byte first, NUL padded to 8 words.
MO_WORDS = [0x5748, 0x2F4D, 0x4F2F, 0x3030, 0x3031, 0x3100, 0, 0]


def area(header: list[int], items: dict[int, list[int]]) -> list[int]:
    """49 words: header (batch + 8 MO words), then 10 items of [product, kg hi, kg lo, flag]."""
    words = header + [0] * 40
    for k, item in items.items():
        at = 9 + 4 * (k - 1)
        words[at : at + 4] = item
    return words


GOLDEN = area(
    [3, *MO_WORDS],
    {
        1: [61, 1, 17664, 0],  # 83 200 -> 832.00 kg, pending
        2: [62, 0, 3330, 1],  # 33.30 kg, already taken (flag 1)
        3: [0, 0, 1500, 0],  # product id 0: rejected
        4: [63, 2, 0, 0],  # 131 072 -> 1310.72 kg, above the 1000 kg limit: rejected
        5: [0, 0, 0, 2],  # flag word 2: rejected
        6: [64, 0, 38069, 0],  # 380.69 kg: the low word above 32767 stays unsigned
    },
)


def test_area_is_mapped_at_d9000_with_item_flags() -> None:
    assert MAP.base_address("manual_weighing") == 9000
    assert MAP.layout_of("manual_weighing").words == 49
    assert [MAP.item_flag_address("manual_weighing", k) for k in (1, 2, 10)] == [9012, 9016, 9048]
    assert MAP.allows_write(9012, 1) and MAP.allows_write(9048, 1)
    assert not MAP.allows_write(9009, 1)  # an item's data belongs to the PLC
    assert not MAP.allows_write(9000, 1) and not MAP.allows_write(9012, 2)


def test_golden_words_decode_item_by_item() -> None:
    snap = decode_area(MAP, "manual_weighing", 1, GOLDEN)
    assert snap.fields["batch"] == 3 and snap.fields["mo_id"] == "WH/MO/00011"
    items = {it["item"]: it for it in snap.fields["items"]}
    one = items[1]
    assert (one["product_id"], one["kg"], one["status_manual_weigh_read"]) == (61, 832.0, 0)
    assert one["valid"] and one["pending"] and isinstance(one["event_id"], str)
    assert items[2]["kg"] == 33.3 and items[2]["valid"] and not items[2]["pending"]
    assert isinstance(items[2]["event_id"], str)  # a taken item keeps its id (ack_weighing: already acked)
    assert items[6]["kg"] == 380.69 and items[6]["pending"]
    assert not items[3]["valid"] and not items[3]["pending"] and items[3]["event_id"] is None
    assert items[3]["errors"] == ["product_id 0 is below 1"]
    assert not items[4]["valid"] and items[4]["errors"] == ["kg 1310.72 is above the limit 1000"]
    assert not items[5]["valid"] and items[5]["errors"] == ["status_manual_weigh_read word 2 is not 0/1"]
    assert all(items[k]["empty"] and items[k]["valid"] and not items[k]["pending"] for k in (7, 8, 9, 10))
    # Any rejection makes the area as a whole not valid, but the valid items stay usable.
    assert not snap.valid and not snap.empty
    assert snap.errors == (
        "item 3: product_id 0 is below 1",
        "item 4: kg 1310.72 is above the limit 1000",
        "item 5: status_manual_weigh_read word 2 is not 0/1",
    )


def test_a_bad_mo_name_rejects_every_weighing() -> None:
    garbage = area([3, 0x7768, 0x2F6D, 0x6F2F, 0, 0, 0, 0, 0], {1: [61, 1, 17664, 0]})  # "wh/mo/"
    snap = decode_manual_weighing(MAP, garbage)
    item = snap.fields["items"][0]
    assert not item["valid"] and not item["pending"] and item["event_id"] is None
    assert "does not match" in item["errors"][0]
    unprintable = area([3, 0x5701, *MO_WORDS[1:]], {1: [61, 1, 17664, 0]})
    assert "non-printable" in decode_manual_weighing(MAP, unprintable).fields["items"][0]["errors"][0]
    no_mo = area([3, 0, 0, 0, 0, 0, 0, 0, 0], {2: [61, 0, 100, 0]})
    assert decode_manual_weighing(MAP, no_mo).fields["items"][1]["errors"] == ["mo_id is empty"]


def test_event_id_names_item_and_content() -> None:
    a = decode_manual_weighing(MAP, GOLDEN).fields["items"][0]["event_id"]
    again = decode_manual_weighing(MAP, list(GOLDEN)).fields["items"][0]["event_id"]
    other_kg = list(GOLDEN)
    other_kg[11] += 1  # 832.01 kg
    moved = area([3, *MO_WORDS], {2: [61, 1, 17664, 0]})  # the same weighing in item 2
    assert a == again
    assert decode_manual_weighing(MAP, other_kg).fields["items"][0]["event_id"] != a
    assert decode_manual_weighing(MAP, moved).fields["items"][1]["event_id"] != a


def test_fresh_plc_is_empty_and_valid() -> None:
    snap = decode_manual_weighing(MAP, [0] * 49)
    assert snap.valid and snap.empty and snap.errors == ()
    assert not any(it["pending"] for it in snap.fields["items"])


def test_wrong_length_is_rejected_whole() -> None:
    snap = decode_manual_weighing(MAP, [0] * 48)
    assert not snap.valid and snap.fields == {} and snap.errors == ("expected 49 16-bit words",)


BASE: dict[str, Any] = yaml.safe_load(DEFAULT_MAP_PATH.read_text())


def _rename_item_flag(data: dict[str, Any]) -> None:
    items = data["layouts"]["manual_weighing"]["items"]
    items["flag"] = "taken"
    next(f for f in items["fields"] if f["name"] == "status_manual_weigh_read")["name"] = "taken"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["layouts"]["manual_weighing"]["items"].update(count=11), "outside the 49-word layout"),
        (lambda d: d["layouts"]["manual_weighing"]["items"].update(offset=8), "overlap the header field mo_id"),
        (lambda d: d["layouts"]["manual_weighing"]["items"].update(stride=2), "outside the 2-word item"),
        (lambda d: d["layouts"]["manual_weighing"]["items"].update(flag="kg"), "single `flag` word"),
        (lambda d: d["layouts"]["manual_weighing"].update(flag="batch"), "one flag per item"),
        (lambda d: d["areas"]["manual_weighing"].update(gateway_writes="flag"), "item_flags"),
        (lambda d: d["areas"]["failure"].update(gateway_writes="item_flags"), "item_flags"),
        (lambda d: d["areas"]["manual_weighing"].update(base=8010), "overlaps"),
        (lambda d: d["layouts"]["manual_weighing"]["items"]["fields"][1].update(name="weight"), "field 'kg'"),
        (lambda d: d["layouts"]["manual_weighing"]["fields"][1].update(codec="uint16", words=None), "'mo_id'"),
        (_rename_item_flag, "item flag must be named 'status_manual_weigh_read'"),
    ],
)
def test_broken_weighing_maps_are_refused(mutate: Any, message: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(MemoryMapError, match=message):
        parse_memory_map(data)
