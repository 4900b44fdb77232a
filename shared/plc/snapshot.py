"""Decode whole PLC areas into typed, validated snapshots and encode batch commands: pure functions.

Rule: reject, never repair. A snapshot is valid only if every field decodes, BATCH equals the slot (or the slot
is empty), the MO name matches the map's pattern, every ID word equals its equipment ID, flags are exactly 0/1
and every number is finite and inside its limits. An invalid snapshot carries its reasons and no fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.plc.codecs import CodecError, CodecName
from shared.plc.memory_map import AreaName, FieldSpec, Layout, MemoryMap


@dataclass(frozen=True)
class Snapshot:
    """One decoded area. `fields` is empty unless `valid`; `empty` means no batch/event is present."""

    area: AreaName
    slot: int
    words: tuple[int, ...]
    valid: bool
    empty: bool
    errors: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def flag(self) -> int | None:
        value = self.fields.get("status_read_data")
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class BatchCommand:
    """What a WRITE slot carries: targets are kg keyed by equipment code; missing codes mean 0."""

    mo_id: str
    bom_name: str
    finished_goods: str
    quantity: float
    targets: Mapping[str, float]


def _decode_field(spec: FieldSpec, words: Sequence[int]) -> Any:
    return spec.coder.decode(words[spec.offset : spec.end])


def _is_empty(layout: Layout, words: Sequence[int]) -> bool:
    flag_at = layout.flag_offset
    return all(w == 0 for i, w in enumerate(words) if i != flag_at)


def _check_limits(spec: FieldSpec, value: Any, label: str, errors: list[str]) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            errors.append(f"{label} {value} out of range")
        elif spec.codec is CodecName.REAL and value < 0:
            errors.append(f"{label} {value} invalid")


def decode_batch_slot(m: MemoryMap, area: AreaName, slot: int, words: Sequence[int]) -> Snapshot:
    """Decode a READ or WRITE slot (same 77-word layout)."""
    layout = m.layout_of(area)
    if len(words) != layout.words or any(not 0 <= w <= 0xFFFF for w in words):
        return Snapshot(area, slot, tuple(words), False, False, (f"expected {layout.words} 16-bit words",))
    flag_word = words[layout.flag_offset]
    if _is_empty(layout, words) and flag_word in (0, 1):
        return Snapshot(area, slot, tuple(words), True, True, (), {"status_read_data": flag_word})
    errors: list[str] = []
    decoded: dict[str, Any] = {}
    ids = {e.code: e.id for e in m.equipment}
    for spec in layout.fields:
        label = spec.name
        if spec.part == "kg":
            label = f"{spec.equipment} {'consumption' if area == 'read_slot' else 'target'}"
        try:
            value = _decode_field(spec, words)
        except CodecError as exc:
            if spec.codec is CodecName.FLAG:
                errors.append(f"{spec.name} word {words[spec.offset]} is not 0/1")
            elif spec.codec is CodecName.REAL:
                errors.append(f"weight {exc} invalid" if spec.name.startswith("weight") else f"{label}: {exc}")
            else:
                errors.append(f"{label}: {exc}")
            continue
        decoded[spec.name] = value
        if spec.part == "id" and spec.equipment and value != ids[spec.equipment]:
            errors.append(f"equipment id at +{spec.offset} is {value}, expected {ids[spec.equipment]}")
        _check_limits(spec, value, label if spec.codec is not CodecName.REAL else "weight", errors)

    if "batch" in decoded and decoded["batch"] != slot:
        errors.insert(0, f"batch word {decoded['batch']} != slot {slot}")
    mo_id = decoded.get("mo_id")
    if isinstance(mo_id, str) and not m.mo_name_regex.fullmatch(mo_id):
        errors.append(f"mo_id {mo_id!r} does not match {m.mo_name_pattern}")
    if errors:
        return Snapshot(area, slot, tuple(words), False, False, tuple(errors))

    per_equipment = "consumption" if area == "read_slot" else "targets"
    fields: dict[str, Any] = {
        "batch": decoded["batch"],
        "mo_id": decoded["mo_id"],
        "bom_name": decoded["bom_name"],
        "finished_goods": decoded["finished_goods"],
        "quantity": decoded["quantity"],
        per_equipment: {s.equipment: decoded[s.name] for s in layout.fields if s.part == "kg" and s.equipment},
        "status_manufacturing": decoded["status_manufacturing"],
        "status_operation": decoded["status_operation"],
        "weight_finished_good": decoded["weight_finished_good"],
        "status_read_data": decoded["status_read_data"],
    }
    return Snapshot(area, slot, tuple(words), True, False, (), fields)


def failure_event_id(equipment_code: str, description: str, timestamp: str) -> str:
    """Stable id of a failure event: the same event read twice gets the same id."""
    digest = hashlib.sha256(f"{equipment_code}\x1f{description}\x1f{timestamp}".encode()).hexdigest()
    return digest[:20]


def failure_unreportable(m: MemoryMap, equipment_code: str, description: str) -> str | None:
    """Why Odoo can never accept this well-formed event as it is, or None. Such an event is still a real PLC
    event: it is stored and acknowledged (the PLC's one-event buffer must move on), then parked for a person
    instead of being retried forever."""
    codes = [e.code for e in m.equipment]
    if equipment_code not in codes:
        return f"equipment code {equipment_code!r} is not in the memory map's equipment list ({', '.join(codes)})"
    if not description.strip():
        return "the failure description is empty"
    return None


def decode_failure(m: MemoryMap, words: Sequence[int]) -> Snapshot:
    layout = m.layout_of("failure")
    if len(words) != layout.words or any(not 0 <= w <= 0xFFFF for w in words):
        return Snapshot("failure", 1, tuple(words), False, False, (f"expected {layout.words} 16-bit words",))
    errors: list[str] = []
    decoded: dict[str, Any] = {}
    for spec in layout.fields:
        try:
            value = _decode_field(spec, words)
        except CodecError as exc:
            errors.append(
                f"{spec.name} word {words[spec.offset]} is not 0/1"
                if spec.codec is CodecName.FLAG
                else f"{spec.name}: {exc}"
            )
            continue
        decoded[spec.name] = value
    if not errors and _is_empty(layout, words):
        return Snapshot(
            "failure", 1, tuple(words), True, True, (), {"status_read_data": decoded["status_read_data"]}
        )
    for spec in layout.fields:
        if spec.name in decoded:
            _check_limits(spec, decoded[spec.name], spec.name, errors)
    if not errors and not decoded["equipment_code"]:
        errors.append("equipment_code is empty")
    stamp: dt.datetime | None = None
    if not errors:
        try:
            stamp = dt.datetime(
                decoded["year"],
                decoded["month"],
                decoded["day"],
                decoded["hour"],
                decoded["minute"],
                decoded["second"],
            )
        except ValueError as exc:
            errors.append(f"timestamp: {exc}")
    if errors or stamp is None:
        return Snapshot("failure", 1, tuple(words), False, False, tuple(errors))
    timestamp = stamp.strftime("%Y-%m-%d %H:%M:%S")
    fields = {
        "equipment_code": decoded["equipment_code"],
        "description": decoded["description"],
        "timestamp": timestamp,
        "status_read_data": decoded["status_read_data"],
        "event_id": failure_event_id(decoded["equipment_code"], decoded["description"], timestamp),
    }
    # Present only when Odoo can never accept the event as it is (the usual event carries no such key).
    unreportable = failure_unreportable(m, decoded["equipment_code"], decoded["description"])
    if unreportable is not None:
        fields["unreportable"] = unreportable
    return Snapshot("failure", 1, tuple(words), True, False, (), fields)


def weighing_event_id(item: int, batch: int, mo_id: str, product_id: int, kg_words: Sequence[int]) -> str:
    """Content id of a pending weighing: the same item read twice with the same content gets the same id.
    Two identical weighings in a row share it; telling them apart is the storing worker's rule (a stored,
    not yet acknowledged row with this id is the same weighing; after its ack the id names a new one)."""
    raw = "\x1f".join(str(v) for v in (item, batch, mo_id, product_id, *kg_words))
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def decode_manual_weighing(m: MemoryMap, words: Sequence[int]) -> Snapshot:
    """Decode the manual-weighing area: a header (batch, MO name) and ten items (product id, kg, flag).

    Validity is per item, so one wrong entry at the scale never blocks the other nine: an item is valid when
    it is empty (product and kg words all 0) or when the header MO name is printable and matches the map's
    pattern, product id >= the map's min (1), min <= kg <= max (the map's plausibility limit) and its flag is
    0/1. Every valid non-empty item carries its `event_id`; it is `pending` while its flag is 0. The snapshot
    is `valid` only when nothing at all is rejected; `errors` lists every rejection as "item k: ...", and a bad
    non-blank header on its own when no item carries it."""
    layout = m.layout_of("manual_weighing")
    group = layout.item_group
    if len(words) != layout.words or any(not 0 <= w <= 0xFFFF for w in words):
        return Snapshot(
            "manual_weighing", 1, tuple(words), False, False, (f"expected {layout.words} 16-bit words",)
        )
    header: dict[str, Any] = {}
    header_errors: list[str] = []
    for spec in layout.fields:
        try:
            header[spec.name] = _decode_field(spec, words)
        except CodecError as exc:
            header_errors.append(f"{spec.name}: {exc}")
    mo_id = header.get("mo_id")
    if isinstance(mo_id, str):
        if not mo_id:
            header_errors.append("mo_id is empty")
        elif not m.mo_name_regex.fullmatch(mo_id):
            header_errors.append(f"mo_id {mo_id!r} does not match {m.mo_name_pattern}")
    errors: list[str] = []
    items: list[dict[str, Any]] = []
    kg_spec = group.field("kg")
    for k in range(1, group.count + 1):
        at = group.item_offset(k)
        item_words = words[at : at + group.stride]
        item, item_errors = _decode_item(group.fields, item_words)
        flag_word = item_words[group.flag_offset]
        empty = all(w == 0 for i, w in enumerate(item_words) if i != group.flag_offset)
        if not empty:
            item_errors = header_errors + item_errors
        valid = not item_errors
        pending = valid and not empty and flag_word == 0
        event_id = None
        if valid and not empty:  # taken items keep their id too: ack_weighing answers "already acked" by it
            kg_words = item_words[kg_spec.offset : kg_spec.end]
            event_id = weighing_event_id(k, header["batch"], header["mo_id"], item["product_id"], kg_words)
        items.append(
            {
                "item": k,
                **item,
                "empty": empty,
                "valid": valid,
                "errors": item_errors,
                "pending": pending,
                "event_id": event_id,
            }
        )
        errors.extend(f"item {k}: {e}" for e in item_errors)
    header_blank = not any(words[: group.offset])
    if header_errors and all(it["empty"] for it in items) and not header_blank:
        errors[:0] = header_errors  # no item names it, yet the PLC holds a header that does not decode
    fields: dict[str, Any] = {"batch": header.get("batch"), "mo_id": mo_id, "items": items}
    all_empty = all(it["empty"] for it in items) and header_blank
    return Snapshot("manual_weighing", 1, tuple(words), not errors, all_empty, tuple(errors), fields)


def _decode_item(specs: Sequence[FieldSpec], words: Sequence[int]) -> tuple[dict[str, Any], list[str]]:
    """One item's fields (None where a word does not decode) and its own rejections (header aside)."""
    out: dict[str, Any] = {}
    errors: list[str] = []
    empty = all(
        w == 0 for spec in specs if spec.codec is not CodecName.FLAG for w in words[spec.offset : spec.end]
    )
    for spec in specs:
        try:
            value = _decode_field(spec, words)
        except CodecError as exc:
            out[spec.name] = None
            errors.append(
                f"{spec.name} word {words[spec.offset]} is not 0/1"
                if spec.codec is CodecName.FLAG
                else f"{spec.name}: {exc}"
            )
            continue
        out[spec.name] = value
        if empty or spec.codec is CodecName.FLAG:
            continue
        if spec.min is not None and value < spec.min:
            errors.append(f"{spec.name} {value} is below {spec.min:g}")
        elif spec.max is not None and value > spec.max:
            errors.append(f"{spec.name} {value} is above the limit {spec.max:g}")
    return out, errors


def decode_area(m: MemoryMap, area: AreaName, slot: int, words: Sequence[int]) -> Snapshot:
    if area == "manual_weighing":
        return decode_manual_weighing(m, words)
    return decode_failure(m, words) if area == "failure" else decode_batch_slot(m, area, slot, words)


def encode_batch_command(m: MemoryMap, slot: int, cmd: BatchCommand) -> list[int]:
    """The full WRITE-slot block: command fields, statuses 0, weight 0 and the flag word 0 (= written)."""
    layout = m.layout_of("write_slot")
    if slot not in m.slots():
        raise CodecError(f"slot {slot} is not an active slot (1..{m.active_slots})")
    unknown = set(cmd.targets) - set(m.equipment_codes)
    if unknown:
        raise CodecError(f"unknown equipment codes in targets: {sorted(unknown)}")
    if not m.mo_name_regex.fullmatch(cmd.mo_id):
        raise CodecError(f"mo_id {cmd.mo_id!r} does not match {m.mo_name_pattern}")
    ids = {e.code: e.id for e in m.equipment}
    values: dict[str, Any] = {
        "batch": slot,
        "mo_id": cmd.mo_id,
        "bom_name": cmd.bom_name,
        "finished_goods": cmd.finished_goods,
        "quantity": cmd.quantity,
        "status_manufacturing": 0,
        "status_operation": 0,
        "weight_finished_good": 0.0,
        "status_read_data": 0,
    }
    words = [0] * layout.words
    for spec in layout.fields:
        if spec.part == "id" and spec.equipment:
            value: Any = ids[spec.equipment]
        elif spec.part == "kg" and spec.equipment:
            value = float(cmd.targets.get(spec.equipment, 0.0))
        else:
            value = values[spec.name]
        encoded = encode_field(spec, value)
        words[spec.offset : spec.end] = encoded
    return words


def encode_field(spec: FieldSpec, value: Any) -> list[int]:
    """Encode one field's value, enforcing its limits (a command must be as valid as a snapshot)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and ((spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)):
        raise CodecError(f"{spec.name} {value} out of range")
    return spec.coder.encode(value, spec.size, spec.overflow == "truncate")
