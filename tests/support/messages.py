"""Snapshots and events for tests, built the way the gateway builds them: PLC words encoded with the map's
codecs, decoded by the real decoder, wrapped by the gateway's publisher into the typed message. No test
restates the wire format by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from services.plc_gateway.publisher import snapshot_message
from shared.mqtt.snapshots import FailureSnapshot, ReadSlotSnapshot, WeighingSnapshot, WriteSlotSnapshot
from shared.mqtt.status import PlcLinkStatus, ServiceStatus, StatusDetails, StatusState
from shared.plc.memory_map import AreaName, MemoryMap, load_memory_map, with_active_slots
from shared.plc.snapshot import BatchCommand, Snapshot, decode_area, encode_batch_command, encode_field

MAP: MemoryMap = with_active_slots(load_memory_map(), 10)
SOURCE = "test"


def message(snap: Snapshot, *, seq: int = 1, heartbeat: bool = False, ts: dt.datetime | None = None) -> Any:
    """The gateway's message for a decoded area (`ts`: when the gateway read it; default now)."""
    built = snapshot_message(snap, seq, heartbeat, SOURCE)
    return built if ts is None else built.model_copy(update={"ts": ts})


def batch_words(
    area: AreaName,
    slot: int,
    mo_id: str,
    *,
    kg: Mapping[str, float] | None = None,
    quantity: float = 1000.0,
    mfg: int = 0,
    op: int = 0,
    weight: float = 0.0,
    flag: int = 0,
) -> list[int]:
    """A READ or WRITE slot holding `mo_id` (`kg`: consumption or targets per equipment code)."""
    words = encode_batch_command(MAP, slot, BatchCommand(mo_id, "JF BOM", "JF", quantity, dict(kg or {})))
    layout = MAP.layout_of(area)
    values = {"status_manufacturing": mfg, "status_operation": op, "weight_finished_good": weight}
    for name, value in (*values.items(), ("status_read_data", flag)):
        spec = layout.field(name)
        words[spec.offset : spec.end] = encode_field(spec, value)
    return words


def empty_words(area: AreaName, flag: int) -> list[int]:
    layout = MAP.layout_of(area)
    words = [0] * layout.words
    words[layout.flag_offset] = flag
    return words


def read_slot(
    mo_id: str | None = "WH/MO/00011",
    slot: int = 1,
    *,
    r: int = 0,
    mfg: int = 0,
    op: int = 0,
    kg: Mapping[str, float] | None = None,
    weight: float = 0.0,
    seq: int = 1,
    heartbeat: bool = False,
    ts: dt.datetime | None = None,
) -> ReadSlotSnapshot:
    """plc/read/{slot}: `mo_id` None = an empty slot with R = `r`."""
    words = (
        empty_words("read_slot", r)
        if mo_id is None
        else batch_words("read_slot", slot, mo_id, kg=kg, mfg=mfg, op=op, weight=weight, flag=r)
    )
    snap: ReadSlotSnapshot = message(
        decode_area(MAP, "read_slot", slot, words), seq=seq, heartbeat=heartbeat, ts=ts
    )
    return snap


def invalid_read_slot(slot: int = 1) -> ReadSlotSnapshot:
    """A READ slot whose batch word names another slot: rejected by the decoder."""
    words = batch_words("read_slot", slot, "WH/MO/00011")
    words[MAP.layout_of("read_slot").field("batch").offset] = slot % 10 + 1
    snap: ReadSlotSnapshot = message(decode_area(MAP, "read_slot", slot, words))
    assert not snap.valid
    return snap


def write_slot(
    mo_id: str | None = "WH/MO/00011",
    slot: int = 1,
    *,
    w: int = 1,
    targets: Mapping[str, float] | None = None,
    ts: dt.datetime | None = None,
) -> WriteSlotSnapshot:
    """plc/write/{slot}: `mo_id` None = an empty slot with W = `w`."""
    words = (
        empty_words("write_slot", w)
        if mo_id is None
        else batch_words("write_slot", slot, mo_id, kg=targets or {"silo101": 10.0}, flag=w)
    )
    snap: WriteSlotSnapshot = message(decode_area(MAP, "write_slot", slot, words), ts=ts)
    return snap


def failure_words(
    equipment: str, description: str, stamp: str = "2026-12-01 08:15:30", flag: int = 0
) -> list[int]:
    """A failure area as the PLC writes it (encoded with the map's own codecs), F = `flag`."""
    when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    values = {
        "equipment_code": equipment,
        "description": description,
        "year": when.year,
        "month": when.month,
        "day": when.day,
        "hour": when.hour,
        "minute": when.minute,
        "second": when.second,
        "status_read_data": flag,
    }
    layout = MAP.layout_of("failure")
    words = [0] * layout.words
    for spec in layout.fields:
        words[spec.offset : spec.end] = encode_field(spec, values[spec.name])
    return words


def failure_area(words: list[int]) -> FailureSnapshot:
    snap: FailureSnapshot = message(decode_area(MAP, "failure", 1, words))
    return snap


def weighing_area(words: list[int], *, seq: int = 1) -> WeighingSnapshot:
    snap: WeighingSnapshot = message(decode_area(MAP, "manual_weighing", 1, words), seq=seq)
    return snap


def status(state: StatusState = "online", *, client_id: str = "test", **details: Any) -> ServiceStatus:
    """A service's retained status as its broker link builds it (shared/mqtt/status.py): `details` only go out
    with `online`; `plc` is a PlcLinkStatus (see plc_link)."""
    return ServiceStatus.build(SOURCE, client_id, state, StatusDetails.model_validate(details))


def plc_link(reachable: bool = True, **fields: Any) -> PlcLinkStatus:
    """The gateway status's PLC link; `fields` as the gateway sets them (diagnostics, alarms, rtt_ms...)."""
    return PlcLinkStatus.model_validate(
        {"host": "10.0.0.1", "port": 9600, "node": 1, "reachable": reachable, **fields}
    )
