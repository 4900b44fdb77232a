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
from typing import Any, Literal

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
    body: dict[str, Any], selected: frozenset[int]
) -> tuple[list[PendingWeighing], list[ItemOnPlc]]:
    """A `plc/weighing` snapshot -> (pending weighings of the selected items, every item as shown). Anything
    malformed is skipped: the gateway already rejected bad PLC words, this only refuses a bad message."""
    fields = body.get("fields")
    if not isinstance(fields, dict):
        return [], []
    items = fields.get("items")
    if body.get("area") != "manual_weighing" or not isinstance(items, list):
        return [], []
    pending: list[PendingWeighing] = []
    shown: list[ItemOnPlc] = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("item"), int):
            continue
        k = it["item"]
        event_id = it.get("event_id") if it.get("valid") and not it.get("empty") else None
        flag = it.get("status_manual_weigh_read")
        shown.append(
            ItemOnPlc(k, event_id if isinstance(event_id, str) else None, flag if isinstance(flag, int) else None)
        )
        if k not in selected or not (it.get("pending") is True and it.get("valid") is True and flag == 0):
            continue
        try:
            w = PendingWeighing(
                event_id=str(it["event_id"]),
                item=k,
                batch=int(fields["batch"]),
                mo_id=str(fields["mo_id"]),
                product_id=int(it["product_id"]),
                kg=Decimal(str(it["kg"])).quantize(Decimal("0.01")),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):
            continue
        if w.event_id and w.product_id > 0 and w.kg > 0 and w.mo_id:
            pending.append(w)
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
