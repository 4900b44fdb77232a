"""The PLC program's manual weighing (D9000-D9048), as the plant's program behaves.

An operator weighs an additive by hand; the program puts MO (in the shared header), product id and kg into a
free item and sets its flag to 0. An item is free once its flag reads 1 (the gateway took it) or while it was
never used (all zero), but a taken item is filled again only REFILL_S later: a hand weighing takes seconds,
and the gateway's flag write and read-back take milliseconds. (An item refilled with identical content inside
that window would be indistinguishable from our own flag write not landing: docs/architecture.md.) The header's
MO is shared by all ten items, so a weighing for another MO waits until no item still waits with flag 0.
Weighings are posted as asked, invalid ones included (tests need what a wrong entry at the scale looks like):
the values are encoded without the map's limits, and an invalid item stays waiting, as it would on the real
PLC, until the operator withdraws it at the scale (`withdraw`: the program clears the item).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from shared.plc import codecs
from shared.plc.codecs import CodecError
from shared.plc.memory_map import MemoryMap
from simulators.plc.memory import DataMemory

log = logging.getLogger("plc_sim.weighing")
REFILL_S = 3.0  # the shortest time between an item's flag 1 and the next weighing in it (simulated seconds)


@dataclass(frozen=True)
class Weighing:
    mo_id: str
    product_id: int
    kg: float
    batch: int = 1
    item: int | None = None  # None = the lowest free item


@dataclass
class WeighingState:
    posted: int = 0
    acked: int = 0
    withdrawn: int = 0
    requested: list[Weighing] = field(default_factory=list)
    waiting: dict[int, Weighing] = field(default_factory=dict)  # items posted by us whose flag still reads 0
    freed_at: dict[int, float] = field(default_factory=dict)  # item -> simulated time its flag read 1
    clock: float = 0.0  # simulated seconds since start
    last: dict[str, Any] | None = None


class WeighingProgram:
    def __init__(self, memory: DataMemory, mmap: MemoryMap, rng: random.Random) -> None:
        self.memory = memory
        self.map = mmap
        self.rng = rng
        self.state = WeighingState()
        self.mapped = "manual_weighing" in mmap.areas
        # Random weighings (the demo): per hour, for the MO a slot runs now and one of these product ids.
        self.rate_per_hour = 0.0
        self.products: tuple[int, ...] = ()

    # ------------------------------------------------------------------ requests

    def request(self, doc: dict[str, Any]) -> Weighing:
        """A weighing from the control API: {mo_id, product_id, kg, batch?, item?}; raises ValueError."""
        if not self.mapped:
            raise ValueError("the memory map has no manual_weighing area")
        count = self.map.layout_of("manual_weighing").item_group.count
        try:
            w = Weighing(
                mo_id=str(doc["mo_id"]),
                product_id=int(doc["product_id"]),
                kg=float(doc["kg"]),
                batch=int(doc.get("batch", 1)),
                item=None if doc.get("item") is None else int(doc["item"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a weighing needs mo_id, product_id, kg (and optional batch, item): {exc}") from None
        if w.item is not None and not 1 <= w.item <= count:
            raise ValueError(f"item {w.item} outside 1..{count}")
        try:
            self._encode(w)  # only what the words can hold at all is refused here; limits are the reader's job
        except CodecError as exc:
            raise ValueError(str(exc)) from None
        self.state.requested.append(w)
        return w

    # ------------------------------------------------------------------ scan

    def scan(self, dt: float, current_mo: str | None, speed: float) -> None:
        if not self.mapped:
            return
        s = self.state
        s.clock += dt * speed
        group = self.map.layout_of("manual_weighing").item_group
        for item, w in sorted(s.waiting.items()):
            if self.memory.get(self.map.item_flag_address("manual_weighing", item)) == 1:
                del s.waiting[item]
                s.freed_at[item] = s.clock
                s.acked += 1
                # The per-weighing record the fault suite checks against the database (item and content).
                log.info(
                    "manual weighing acknowledged: item %d %s product %d %.2f kg",
                    item,
                    w.mo_id,
                    w.product_id,
                    w.kg,
                )
        if (
            self.rate_per_hour > 0
            and self.products
            and current_mo
            and not s.requested
            and self.rng.random() < self.rate_per_hour / 3600 * dt * speed
        ):
            # Small amounts: an additive's open move rarely needs more, so Odoo books them whole (no attention).
            kg = round(self.rng.uniform(0.1, 1.0), 2)
            s.requested.append(Weighing(current_mo, self.rng.choice(self.products), kg))
        if not s.requested:
            return
        w = s.requested[0]
        free = self._free_item(w, group.count)
        if free is None:
            return
        s.requested.pop(0)
        self._post(w, free)

    def _item_words(self, item: int) -> list[int]:
        group = self.map.layout_of("manual_weighing").item_group
        at = self.map.base_address("manual_weighing") + group.item_offset(item)
        return self.memory.read(at, group.stride)

    def _free_item(self, w: Weighing, count: int) -> int | None:
        group = self.map.layout_of("manual_weighing").item_group
        header_mo = self._header_mo()
        any_waiting = any(
            any(words) and words[group.flag_offset] == 0
            for words in (self._item_words(k) for k in range(1, count + 1))
        )
        if any_waiting and header_mo != (w.mo_id, w.batch):
            return None  # the header is shared: another MO waits until every item was taken
        candidates = [w.item] if w.item is not None else list(range(1, count + 1))
        for k in candidates:
            words = self._item_words(k)
            rested = self.state.clock - self.state.freed_at.get(k, -REFILL_S) >= REFILL_S
            if (words[group.flag_offset] == 1 and rested) or not any(words):
                return k
        return None

    def _header_mo(self) -> tuple[str, int] | None:
        layout = self.map.layout_of("manual_weighing")
        words = self.memory.read(
            self.map.base_address("manual_weighing"), layout.items.offset if layout.items else 0
        )
        try:
            return codecs.decode_ascii(words[1:9]), words[0]
        except CodecError:
            return None

    def _encode(self, w: Weighing) -> tuple[list[int], list[int]]:
        layout = self.map.layout_of("manual_weighing")
        group = layout.item_group
        header = [0] * group.offset
        # Raw codecs, no limits: the simulator must be able to post a wrong entry (product 0, kg over the limit).
        header_values: dict[str, codecs.Value] = {"batch": w.batch, "mo_id": w.mo_id}
        for spec in layout.fields:
            if spec.name in header_values:
                header[spec.offset : spec.end] = spec.coder.encode(header_values[spec.name], spec.size, False)
        item = [0] * group.stride  # the flag stays 0: a new weighing waits
        item_values: dict[str, codecs.Value] = {"product_id": w.product_id, "kg": w.kg}
        for spec in group.fields:
            if spec.name in item_values:
                item[spec.offset : spec.end] = spec.coder.encode(item_values[spec.name], spec.size, False)
        return header, item

    def _post(self, w: Weighing, item: int) -> None:
        header, words = self._encode(w)
        group = self.map.layout_of("manual_weighing").item_group
        base = self.map.base_address("manual_weighing")
        self.memory.write(base, header)
        self.memory.write(base + group.item_offset(item), words)  # flag word 0 included: "a new weighing"
        self.state.waiting[item] = w
        self.state.posted += 1
        self.state.last = _content(item, w)
        log.info("manual weighing posted: item %d %s product %d %.2f kg", item, w.mo_id, w.product_id, w.kg)

    def withdraw(self, item: int) -> dict[str, Any]:
        """The operator withdraws a weighing that still waits in `item` (a wrong entry at the scale): the
        program clears the item, so it shows empty and is free again. Raises ValueError if nothing waits there."""
        w = self.state.waiting.get(item)
        if w is None or self.memory.get(self.map.item_flag_address("manual_weighing", item)) != 0:
            raise ValueError(f"no weighing waits in item {item}")
        group = self.map.layout_of("manual_weighing").item_group
        self.memory.write(self.map.base_address("manual_weighing") + group.item_offset(item), [0] * group.stride)
        del self.state.waiting[item]
        self.state.withdrawn += 1
        log.info("manual weighing withdrawn: item %d %s product %d %.2f kg", item, w.mo_id, w.product_id, w.kg)
        return _content(item, w)

    def reboot(self) -> None:
        self.state.waiting.clear()
        self.state.freed_at.clear()

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "posted": s.posted,
            "acked": s.acked,
            "withdrawn": s.withdrawn,
            "queued": len(s.requested),
            "waiting": sorted(s.waiting),
            "waiting_items": [_content(item, w) for item, w in sorted(s.waiting.items())],
            "last": s.last,
        }


def _content(item: int, w: Weighing) -> dict[str, Any]:
    return {"item": item, "mo_id": w.mo_id, "product_id": w.product_id, "kg": w.kg}
