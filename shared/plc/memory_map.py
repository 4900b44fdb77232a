"""The PLC memory map as data: loaded from YAML, validated once, then read-only.

Validation at load (errors name the field): codec known, word counts match the codec, every field inside its
layout, no two fields overlap, the flag is a single `flag` word, every equipment appears once as `id` and once
as `kg` in a batch layout, and no two areas (all slots counted) overlap or leave the DM area.
"""

from __future__ import annotations

import itertools
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.plc.codecs import CODECS, Codec, CodecName

DEFAULT_MAP_PATH = Path(__file__).with_name("plant_map.yaml")
DM_WORDS = 32768  # CJ2M data memory D0..D32767


class MemoryMapError(ValueError):
    """The memory map file is invalid; the message names the offending field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Equipment(_Frozen):
    code: str = Field(pattern=r"^[a-z]+[0-9]+$")
    id: int = Field(ge=1, le=0xFFFF)
    name: str


class FieldSpec(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    offset: int = Field(ge=0)
    codec: CodecName
    words: int | None = None
    equipment: str | None = None
    part: Literal["id", "kg"] | None = None
    overflow: Literal["reject", "truncate"] = "reject"
    min: float | None = None
    max: float | None = None

    @field_validator("codec", mode="before")
    @classmethod
    def _known_codec(cls, value: object) -> object:
        if isinstance(value, str) and value not in {c.value for c in CodecName}:
            raise ValueError(f"unknown codec {value!r} (known: {', '.join(CodecName)})")
        return value

    @model_validator(mode="after")
    def _codec_and_size(self) -> FieldSpec:
        fixed = self.coder.words
        if fixed is None:
            if not self.words:
                raise ValueError(f"field {self.name}: {self.codec} needs an explicit `words`")
        elif self.words not in (None, fixed):
            raise ValueError(f"field {self.name}: codec {self.codec} takes {fixed} words, not {self.words}")
        if (self.equipment is None) != (self.part is None):
            raise ValueError(f"field {self.name}: `equipment` and `part` go together")
        return self

    @property
    def coder(self) -> Codec:
        return CODECS[self.codec]

    @property
    def size(self) -> int:
        return self.coder.words or self.words or 0

    @property
    def end(self) -> int:
        return self.offset + self.size


class ItemGroup(_Frozen):
    """Repeated items inside one layout (the manual-weighing area: ten items after a shared header), each
    with its own handshake flag. Field offsets are relative to the item's first word."""

    offset: int = Field(ge=0)
    stride: int = Field(ge=1)
    count: int = Field(ge=1, le=99)
    flag: str
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def flag_offset(self) -> int:
        return self.field(self.flag).offset

    def item_offset(self, item: int) -> int:
        """Offset of item `item` (1-based) inside the layout."""
        if not 1 <= item <= self.count:
            raise MemoryMapError(f"item {item} outside 1..{self.count}")
        return self.offset + self.stride * (item - 1)

    @property
    def end(self) -> int:
        return self.offset + self.stride * self.count


class Layout(_Frozen):
    words: int = Field(ge=1, le=999)
    # One handshake flag for the whole layout, or (with `items`) one per item and none here.
    flag: str | None = None
    fields: tuple[FieldSpec, ...]
    items: ItemGroup | None = None

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def flag_offset(self) -> int:
        if self.flag is None:
            raise MemoryMapError("this layout has one flag per item, not one flag")
        return self.field(self.flag).offset

    @property
    def item_group(self) -> ItemGroup:
        if self.items is None:
            raise MemoryMapError("this layout has no items")
        return self.items


class Area(_Frozen):
    memory: Literal["DM"]
    base: int = Field(ge=0, lt=DM_WORDS)
    stride: int = 0
    slot_capacity: int = Field(default=1, ge=1, le=99)
    layout: str
    gateway_writes: Literal["block", "flag", "item_flags", "none"]


AreaName = Literal["read_slot", "write_slot", "failure", "manual_weighing"]


class MemoryMap(_Frozen):
    version: str
    equipment: tuple[Equipment, ...]
    mo_name_pattern: str
    active_slots: int = Field(ge=1)
    areas: dict[AreaName, Area]
    layouts: dict[str, Layout]

    @model_validator(mode="after")
    def _consistent(self) -> MemoryMap:
        try:
            re.compile(self.mo_name_pattern)
        except re.error as exc:
            raise ValueError(f"mo_name_pattern: {exc}") from None
        codes = [e.code for e in self.equipment]
        if len(set(codes)) != len(codes) or len({e.id for e in self.equipment}) != len(codes):
            raise ValueError("equipment: codes and ids must be unique")
        for name in ("read_slot", "write_slot", "failure"):
            if name not in self.areas:
                raise ValueError(f"areas: {name} is missing")
        for lname, layout in self.layouts.items():
            _check_layout(lname, layout, codes)
        for aname, area in self.areas.items():
            if area.layout not in self.layouts:
                raise ValueError(f"areas.{aname}: unknown layout {area.layout!r}")
            layout = self.layouts[area.layout]
            size = layout.words
            if area.slot_capacity > 1 and area.stride < size:
                raise ValueError(f"areas.{aname}: stride {area.stride} is smaller than the layout ({size} words)")
            if (area.gateway_writes == "item_flags") != (layout.items is not None):
                raise ValueError(
                    f"areas.{aname}: gateway_writes item_flags goes with a layout that has items, and only with it"
                )
        if "manual_weighing" in self.areas:
            _check_weighing_layout(
                self.areas["manual_weighing"], self.layouts[self.areas["manual_weighing"].layout]
            )
        slot_areas: tuple[AreaName, ...] = ("read_slot", "write_slot")
        for name in slot_areas:
            if self.active_slots > self.areas[name].slot_capacity:
                raise ValueError(f"active_slots {self.active_slots} exceeds areas.{name}.slot_capacity")
        _check_no_area_overlap(self)
        return self

    # ---- addressing

    def layout_of(self, area: AreaName) -> Layout:
        return self.layouts[self.areas[area].layout]

    def slots(self) -> range:
        return range(1, self.active_slots + 1)

    def base_address(self, area: AreaName, slot: int = 1) -> int:
        spec = self.areas[area]
        if not 1 <= slot <= spec.slot_capacity:
            raise MemoryMapError(f"{area}: slot {slot} outside 1..{spec.slot_capacity}")
        return spec.base + spec.stride * (slot - 1)

    def flag_address(self, area: AreaName, slot: int = 1) -> int:
        return self.base_address(area, slot) + self.layout_of(area).flag_offset

    def item_flag_address(self, area: AreaName, item: int) -> int:
        """The flag word of item `item` (1-based) of an area whose layout has items."""
        group = self.layout_of(area).item_group
        return self.base_address(area) + group.item_offset(item) + group.flag_offset

    @cached_property
    def equipment_codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.equipment)

    @cached_property
    def mo_name_regex(self) -> re.Pattern[str]:
        return re.compile(self.mo_name_pattern)

    def writable_ranges(self) -> list[tuple[int, int]]:
        """(first, count) DM ranges the gateway may write, all slot_capacity slots counted."""
        ranges: list[tuple[int, int]] = []
        for aname, area in self.areas.items():
            layout = self.layouts[area.layout]
            for slot in range(1, area.slot_capacity + 1):
                base = self.base_address(aname, slot)
                if area.gateway_writes == "block":
                    ranges.append((base, layout.words))
                elif area.gateway_writes == "flag":
                    ranges.append((base + layout.flag_offset, 1))
                elif area.gateway_writes == "item_flags":
                    group = layout.item_group
                    for item in range(1, group.count + 1):
                        ranges.append((base + group.item_offset(item) + group.flag_offset, 1))
        return ranges

    def largest_write_words(self) -> int:
        """The longest write the gateway makes (a WRITE slot block): it must fit one FINS command."""
        return max((n for _, n in self.writable_ranges()), default=1)

    def allows_write(self, address: int, count: int) -> bool:
        return any(first <= address and address + count <= first + n for first, n in self.writable_ranges())


def _check_layout(lname: str, layout: Layout, equipment_codes: list[str]) -> None:
    where = f"layouts.{lname}"
    names = [f.name for f in layout.fields]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: duplicate field names")
    occupied: dict[int, str] = {}
    for f in layout.fields:
        if f.end > layout.words:
            raise ValueError(
                f"{where}.{f.name}: words {f.offset}..{f.end - 1} outside the {layout.words}-word layout"
            )
        for w in range(f.offset, f.end):
            if w in occupied:
                raise ValueError(f"{where}.{f.name}: overlaps {occupied[w]} at +{w}")
            occupied[w] = f.name
        if f.equipment is not None and f.equipment not in equipment_codes:
            raise ValueError(f"{where}.{f.name}: unknown equipment {f.equipment!r}")
    if layout.items is not None:
        _check_items(where, layout, occupied)
    elif layout.flag is None:
        raise ValueError(f"{where}: a layout without items needs a `flag`")
    else:
        if layout.flag not in names:
            raise ValueError(f"{where}: flag field {layout.flag!r} is not defined")
        flag = layout.field(layout.flag)
        if flag.codec is not CodecName.FLAG or flag.size != 1:
            raise ValueError(f"{where}.{flag.name}: a handshake flag must be a single `flag` word")
    parts = [(f.equipment, f.part) for f in layout.fields if f.equipment]
    if parts:
        for code in equipment_codes:
            for part in ("id", "kg"):
                n = parts.count((code, part))
                if n != 1:
                    raise ValueError(f"{where}: equipment {code} needs exactly one `{part}` field, has {n}")


# The fields the manual-weighing decoder reads by name, with their codecs (the rest of the layout is free).
WEIGHING_HEADER = {"batch": CodecName.UINT16, "mo_id": CodecName.ASCII}
WEIGHING_ITEM = {"product_id": CodecName.UINT16, "kg": CodecName.KG_X100}
# The item's flag, by the name the weighing message carries it under (shared/mqtt/snapshots.py WeighingItem).
WEIGHING_ITEM_FLAG = "status_manual_weigh_read"


def _check_weighing_layout(area: Area, layout: Layout) -> None:
    where = "areas.manual_weighing"
    if area.slot_capacity != 1:
        raise ValueError(f"{where}: one area (its items are the slots), slot_capacity 1")
    if layout.items is None:
        raise ValueError(f"{where}: its layout needs `items`")
    if layout.items.flag != WEIGHING_ITEM_FLAG:
        raise ValueError(
            f"{where}: the item flag must be named {WEIGHING_ITEM_FLAG!r} (the weighing message's name)"
        )
    for fields, wanted, label in (
        (layout.fields, WEIGHING_HEADER, "header"),
        (layout.items.fields, WEIGHING_ITEM, "item"),
    ):
        codecs = {f.name: f.codec for f in fields}
        for name, codec in wanted.items():
            if codecs.get(name) != codec:
                raise ValueError(f"{where}: the {label} needs a field {name!r} with codec {codec}")


def _check_items(where: str, layout: Layout, header: dict[int, str]) -> None:
    group = layout.item_group
    if layout.flag is not None:
        raise ValueError(f"{where}: a layout with items has one flag per item (items.flag), not `flag`")
    if group.end > layout.words:
        raise ValueError(
            f"{where}.items: {group.count} items of {group.stride} words from +{group.offset} "
            f"end at +{group.end - 1}, outside the {layout.words}-word layout"
        )
    for w in range(group.offset, group.end):
        if w in header:
            raise ValueError(f"{where}.items: item words overlap the header field {header[w]} at +{w}")
    names = [f.name for f in group.fields]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}.items: duplicate field names")
    occupied: dict[int, str] = {}
    for f in group.fields:
        if f.equipment is not None:
            raise ValueError(f"{where}.items.{f.name}: item fields carry no equipment")
        if f.end > group.stride:
            raise ValueError(
                f"{where}.items.{f.name}: words {f.offset}..{f.end - 1} outside the {group.stride}-word item"
            )
        for w in range(f.offset, f.end):
            if w in occupied:
                raise ValueError(f"{where}.items.{f.name}: overlaps {occupied[w]} at +{w}")
            occupied[w] = f.name
    if group.flag not in names:
        raise ValueError(f"{where}.items: flag field {group.flag!r} is not defined")
    flag = group.field(group.flag)
    if flag.codec is not CodecName.FLAG or flag.size != 1:
        raise ValueError(f"{where}.items.{flag.name}: a handshake flag must be a single `flag` word")


def _check_no_area_overlap(m: MemoryMap) -> None:
    spans: list[tuple[int, int, str]] = []
    for aname, area in m.areas.items():
        size = m.layouts[area.layout].words
        for slot in range(1, area.slot_capacity + 1):
            first = area.base + area.stride * (slot - 1)
            label = f"areas.{aname}" + (f" slot {slot}" if area.slot_capacity > 1 else "")
            if first + size > DM_WORDS:
                raise ValueError(f"{label}: D{first}..D{first + size - 1} leaves the DM area")
            spans.append((first, first + size, label))
    spans.sort()
    for (a0, a1, alabel), (b0, _b1, blabel) in itertools.pairwise(spans):
        if b0 < a1:
            raise ValueError(f"{blabel} (D{b0}) overlaps {alabel} (D{a0}..D{a1 - 1})")


def parse_memory_map(data: object) -> MemoryMap:
    try:
        return MemoryMap.model_validate(data)
    except ValidationError as exc:
        reasons = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            reasons.append(f"{loc}: {msg}" if loc else msg)
        raise MemoryMapError("invalid memory map: " + "; ".join(reasons)) from None


def load_memory_map(path: str | Path | None = None) -> MemoryMap:
    """Load and validate a map file (default: the plant's live layout shipped with the code)."""
    p = Path(path) if path else DEFAULT_MAP_PATH
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MemoryMapError(f"cannot read memory map {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MemoryMapError(f"memory map {p} is not valid YAML: {exc}") from None
    return parse_memory_map(data)


def with_active_slots(m: MemoryMap, slots: int | None) -> MemoryMap:
    """The same map with another active slot count (PLC_SLOTS), validated like the file itself."""
    if slots is None or slots == m.active_slots:
        return m
    return parse_memory_map({**m.model_dump(), "active_slots": slots})
