"""Pure mapping between Odoo MOs and PLC batches (docs/odoo-api.md O3.2, O4.4, O4.6; docs/architecture.md A6).

Odoo -> PLC: ``mo_to_batch`` picks, per component, the target of each dosing equipment (silo/tank) by its
exact, case-sensitive equipment code. Components on any other equipment (the MO-level ``PLC01``, or none)
are manual additions: kept in ``not_dosed`` for the record, never written to the PLC.

PLC -> Odoo: ``consumption_payload`` builds the only body update-with-consumptions should get (O7.7).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.odoo.models import Mo

SUM_TOLERANCE = 0.005
"""Relative tolerance for "components add up to the MO quantity" before a warning (0.5 %: most of the plant's
BoMs are off by up to 4 kg per 1000 kg, e.g. WH/MO/00012 sums to 1004)."""
SCALED_LIMIT = 0.02
"""Beyond this relative difference between the components' sum and the MO quantity the MO is refused (never
dosed): `to_consume` is the unscaled BoM quantity, so an MO whose quantity was changed in Odoo (2000 kg on a
1000 kg BoM) would be dosed with 1x targets under a 2x order. 2 % keeps the plant's real, sloppy BoMs
(WH/MO/00020 sums to 990 for 1000) and refuses every real scaling (a batch is never scaled by 2 %)."""

# Keys update-with-consumptions reads as something other than an equipment code (O4.6).
TARGET_KEYS = ("product_qty", "quantity_to_produce", "qty_to_produce", "target_produksi", "target_production")
FINISHED_KEYS = (
    "quantity",
    "finished_qty",
    "qty_finished",
    "qty_producing",
    "weight_finished_goods",
    "actual_weight_finished_goods",
    "actual_weight_finished",
    "actual_finished_qty",
    "finished_goods_qty",
)
RESERVED_KEYS = frozenset({"mo_id", *TARGET_KEYS, *FINISHED_KEYS})
# Keys that would be read as equipment codes and land in ``errors`` (O1.1, O4.6 trap).
FORBIDDEN_CODES = frozenset({"context", "jsonrpc", "id", "method", "params", "timestamp", "equipment_id"})


@dataclass(frozen=True)
class NotDosed:
    """A component the silos do not dose (other equipment or none): manual addition."""

    product_name: str
    quantity: float
    equipment_code: str | None


@dataclass(frozen=True)
class Batch:
    """What the planner needs to write one PLC batch.

    ``bom_name`` and ``finished_goods`` both carry the full product display name (the plant writes the product
    name into the PLC's NO-BoM field too, not the BoM code). The PLC text fields hold 16 ASCII chars; cutting
    (``"[10092] JF SAPOT 1B"`` -> ``"[10092] JF SAPOT"``) is the PLC encoder's job, so nothing is lost here.
    """

    mo_id: str
    bom_name: str
    finished_goods: str
    quantity: float
    targets: dict[str, float]
    not_dosed: list[NotDosed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Why the PLC must not dose this MO as it is (a person decides); empty = dosable.
    problems: list[str] = field(default_factory=list)
    bom_id: int | None = None
    bom_code: str | None = None


def mo_to_batch(mo: Mo, dosing_codes: Iterable[str], *, sum_tolerance: float = SUM_TOLERANCE) -> Batch:
    """Map one MO to a batch. ``dosing_codes`` come from the PLC memory map (``MemoryMap.equipment_codes``),
    the one place that lists the silos and tanks. Targets are ``components_consumption[].to_consume`` per dosing code.

    A code listed twice (O4.4: the same product can appear twice when a move's equipment differs from its BoM
    line) is SUMMED: update-with-consumptions spreads one value over every move of that equipment (O4.6), so
    Odoo treats the silo as one bucket and the PLC doses it once. A warning names the code so that an operator
    can check the BoM. ``to_consume`` is the unscaled BoM qty (O4.4 trap): when the components do not add up to
    the MO quantity, a sloppy BoM (within SCALED_LIMIT) gets a warning and an MO scaled away from its BoM gets
    a problem: it is never dosed and never rescaled here (rescaling a recipe is a decision for a person).
    """
    codes = set(dosing_codes)
    targets: dict[str, float] = {}
    not_dosed: list[NotDosed] = []
    warnings: list[str] = []
    problems: list[str] = []
    total = 0.0
    for comp in mo.components_consumption:
        code = comp.equipment.code if comp.equipment is not None else None
        total += comp.to_consume
        if code is None or code not in codes:
            not_dosed.append(NotDosed(comp.product_name, comp.to_consume, code))
            continue
        if comp.to_consume <= 0:
            warnings.append(
                f"{code}: target {comp.to_consume} for {comp.product_name!r} is not positive; not dosed"
            )
            continue
        if code in targets:
            warnings.append(
                f"{code}: listed more than once (also {comp.product_name!r}); targets summed to "
                f"{targets[code] + comp.to_consume:g}"
            )
            targets[code] = round(targets[code] + comp.to_consume, 6)
        else:
            targets[code] = comp.to_consume
    if mo.quantity <= 0:
        problems.append(f"MO quantity {mo.quantity:g} is not positive")
    elif abs(total - mo.quantity) > SCALED_LIMIT * mo.quantity:
        problems.append(
            f"components add up to {total:g} kg but the MO quantity is {mo.quantity:g} kg: the MO was scaled "
            "away from its BoM (to_consume is the unscaled BoM qty), so its targets would be wrong; not dosed"
        )
    elif abs(total - mo.quantity) > sum_tolerance * mo.quantity:
        warnings.append(
            f"components add up to {total:g} but the MO quantity is {mo.quantity:g} "
            "(to_consume is the unscaled BoM qty; the MO may be scaled)"
        )
    if not targets:
        warnings.append("no component is on a dosing equipment")
    return Batch(
        mo_id=mo.mo_id,
        bom_name=mo.product_name,
        finished_goods=mo.product_name,
        quantity=mo.quantity,
        targets=targets,
        not_dosed=not_dosed,
        warnings=warnings,
        problems=problems,
        bom_id=mo.bom_id,
        bom_code=mo.bom_code,
    )


def _check_number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: not a finite number: {value!r}")
    return float(value)


def consumption_payload(mo_id: str, finished_qty: float | None, actuals: Mapping[str, float]) -> dict[str, object]:
    """Body for update-with-consumptions: ``mo_id``, ``quantity`` if > 0, and each equipment code whose actual
    is > 0 (O7.7). Zero is never sent: for ``quantity`` it rejects the whole call, for a silo it is ignored
    anyway (a SET cannot reset to 0). Values are rounded to 0.01 kg, the PLC's resolution.

    Raises ValueError for a code Odoo would read as something else (``quantity``, ``context``...).
    """
    if not isinstance(mo_id, str) or not mo_id:
        raise ValueError("mo_id must be a non-empty MO name (update-with-consumptions looks MOs up by name)")
    payload: dict[str, object] = {"mo_id": mo_id}
    if finished_qty is not None and _check_number("quantity", finished_qty) > 0:
        payload["quantity"] = round(float(finished_qty), 2)
    for code, value in actuals.items():
        if not isinstance(code, str) or not code:
            raise ValueError(f"equipment code must be a non-empty string, got {code!r}")
        if code in RESERVED_KEYS or code in FORBIDDEN_CODES:
            raise ValueError(f"{code!r} cannot be an equipment code: Odoo reads that key differently")
        qty = round(_check_number(code, value), 2)
        if qty > 0:
            payload[code] = qty
    return payload


def material_consumption_payload(
    *, equipment_code: str, product_id: int, quantity: float, mo_id: str, timestamp: str
) -> dict[str, object]:
    """Body of ``material-consumption`` (docs/odoo-api.md O4.9) for one hand weighing. ``update_mode`` is spelled out: Odoo's
    default is ``add`` too, but the exactly-once logic depends on it (a replayed add double-counts, so a retry
    after an unknown outcome reads mo-detail first). ``timestamp`` is naive UTC text (an offset is refused by
    Odoo, and a local time is "in the future")."""
    if not equipment_code:
        raise ValueError("equipment_code is required")
    if product_id <= 0:
        raise ValueError(f"product_id {product_id} must be > 0")
    _check_number("quantity", quantity)
    if quantity <= 0:
        raise ValueError(f"quantity {quantity} must be > 0")
    if not mo_id:
        raise ValueError("mo_id is required")
    return {
        "equipment_id": equipment_code,
        "product_id": product_id,
        "quantity": round(quantity, 2),
        "mo_id": mo_id,
        "timestamp": timestamp,
        "update_mode": "add",
    }
