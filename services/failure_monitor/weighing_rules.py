"""Manual weighing: the pure decisions (no I/O). Which pending items to take, whether an MO can take a
weighing, and whether an earlier post of unknown outcome was applied in Odoo.

Exactly once in Odoo: `material-consumption` adds (not idempotent) and Odoo keeps no record of a post. So
before the FIRST post the worker reads the MO (`mo-detail`) and stores the product's consumption as `before`.
After an unknown outcome (timeout, lost reply, 502) it reads the MO again: consumption = before + kg -> the
first post was applied (never post again); = before -> it was not (post again); anything else -> a person
decides (attention), because a guess either loses or doubles a weighing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.mqtt.snapshots import WeighingFields, WeighingSnapshot
from shared.odoo.models import Mo

ALL_ITEMS = "ALL"
ITEM_NAME = re.compile(r"^MANUAL(\d{2})$")
# Odoo stores kg with 2 decimals in this plant; differences below half a hundredth are rounding.
KG_TOLERANCE = Decimal("0.005")


def parse_item_selection(value: str, count: int = 10) -> frozenset[int]:
    """`ALL` or a comma-separated list of `MANUAL01`..`MANUAL10` (the earlier system's reference keys) ->
    the item numbers to take. Raises ValueError naming the bad entry."""
    text = value.strip().upper()
    if text == ALL_ITEMS:
        return frozenset(range(1, count + 1))
    items: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        match = ITEM_NAME.match(part)
        if not match or not 1 <= int(match.group(1)) <= count:
            raise ValueError(f"{part!r} is not ALL or MANUAL01..MANUAL{count:02d}")
        items.add(int(match.group(1)))
    if not items:
        raise ValueError("no item selected")
    return frozenset(items)


@dataclass(frozen=True)
class PendingWeighing:
    event_id: str  # content id from the gateway (item + header + content): see the identity rule
    item: int
    batch: int
    mo_id: str
    product_id: int
    kg: Decimal


@dataclass(frozen=True)
class ItemOnPlc:
    """What the area shows for one item now: its content id (None if empty or rejected) and its flag."""

    item: int
    event_id: str | None
    flag: int | None


def weighings_from_snapshot(
    snap: WeighingSnapshot, selected: frozenset[int]
) -> tuple[list[PendingWeighing], list[ItemOnPlc]]:
    """A `plc/weighing` snapshot -> (pending weighings of the selected items, every item as shown). The
    message model already refused a malformed message; an item is pending only when valid (the gateway
    rejected bad PLC words) and its header decoded."""
    pending: list[PendingWeighing] = []
    shown: list[ItemOnPlc] = []
    header = snap.fields
    for it in snap.items:
        shown.append(ItemOnPlc(it.item, it.event_id, it.status_manual_weigh_read))
        if it.item not in selected or not it.pending:
            continue
        if not isinstance(header, WeighingFields) or header.batch is None or not header.mo_id:
            continue
        if it.event_id is None or it.product_id is None or it.kg is None:
            continue  # a pending item has all three (the model checks it): for the type checker
        kg = Decimal(str(it.kg)).quantize(Decimal("0.01"))
        if it.product_id > 0 and kg > 0:
            pending.append(PendingWeighing(it.event_id, it.item, header.batch, header.mo_id, it.product_id, kg))
    return pending, shown


def product_consumption(mo: Mo, product_id: int) -> Decimal | None:
    """The MO's consumption of `product_id` as mo-detail shows it (summed over its entries: a product can
    appear twice), or None when the product is not a raw component of the MO."""
    entries = [c for c in mo.components_consumption if c.product_id == product_id]
    in_bom = any(b.product_id == product_id for b in mo.bom_components)
    if not entries and not in_bom:
        return None
    return sum((Decimal(str(c.consumed)) for c in entries), Decimal("0")).quantize(Decimal("0.01"))


def product_cap(mo: Mo, product_id: int) -> Decimal:
    """The most mo-detail can show for the product: BoM entries cap `consumed` at the unscaled BoM qty."""
    return sum(
        (Decimal(str(c.to_consume)) for c in mo.components_consumption if c.product_id == product_id), Decimal("0")
    )


def cannot_take(mo: Mo, product_id: int) -> str | None:
    """Why Odoo can never take this weighing as it stands (a person decides), or None."""
    if mo.state in ("done", "cancel"):
        return f"MO {mo.mo_id} is {mo.state} in Odoo: it takes no more consumption"
    if product_consumption(mo, product_id) is None:
        return f"product {product_id} is not a raw component of {mo.mo_id}"
    return None


Verdict = Literal["applied", "not_applied", "undecidable"]


def earlier_post_verdict(before: Decimal, now: Decimal, kg: Decimal, cap: Decimal) -> tuple[Verdict, str]:
    """Was a post of unknown outcome applied? From the consumption read before the first post and now."""
    delta = now - before
    if abs(delta - kg) <= KG_TOLERANCE:
        return "applied", f"consumption went from {before} to {now} kg: the earlier post was applied"
    if abs(delta) <= KG_TOLERANCE:
        if cap > 0 and before + kg > cap + KG_TOLERANCE:
            # mo-detail caps consumed at the BoM qty: an applied post might not show at all.
            return "undecidable", (
                f"consumption reads {now} kg as before, but {before} + {kg} kg exceeds what mo-detail can show "
                f"({cap} kg): cannot tell whether the earlier post was applied"
            )
        return "not_applied", f"consumption still reads {now} kg: the earlier post was not applied"
    return "undecidable", (
        f"consumption went from {before} to {now} kg, neither unchanged nor +{kg} kg (cut short, or changed by "
        "someone else): cannot tell whether the earlier post was applied"
    )


def short_applied(applied: Decimal, kg: Decimal) -> str | None:
    """Odoo applied less than weighed (add mode cuts at the moves' remaining need): a person decides."""
    if applied + KG_TOLERANCE < kg:
        return f"Odoo applied {applied} of {kg} kg (the MO's moves needed less); {kg - applied} kg not booked"
    return None
