"""In-memory Odoo data for the simulator: equipment, MOs with raw/finished moves, failure records.

Mirrors docs/odoo-api.md O3 (models, state computation) and O4.4 (list/detail output). Everything is
naive UTC (O1.3).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SEED = REPO.parent / "shared" / "reference" / "odoo" / "mo-list-detailed-2026-03-04.json"
DOSING_CODES = [*(f"silo{n}" for n in range(101, 114)), "lq114", "lq115"]
SILO_NAMES = {f"silo{101 + i}": f"SILO {chr(65 + i)}" for i in range(13)} | {
    "lq114": "LQ TETES",
    "lq115": "LQ FML",
}
ROUNDING = 0.01  # kg UoM rounding used for consumption comparisons


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # Odoo runs with TZ=UTC and stores naive datetimes


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class Equipment:
    id: int
    code: str
    name: str
    equipment_type: str | bool = False
    manufacturer: str | bool = False
    model_number: str | bool = False
    serial_number: str | bool = False
    ip_address: str | bool = False
    port: int = 0
    protocol: str | bool = False
    is_active: bool = True
    connection_status: str = "connected"
    sync_status: str = "pending"
    last_connected: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """``_get_equipment_details``: empty Char fields are ``false`` (O1.4)."""
        return {
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "equipment_type": self.equipment_type,
            "manufacturer": self.manufacturer,
            "model_number": self.model_number,
            "serial_number": self.serial_number,
            "ip_address": self.ip_address,
            "port": self.port,
            "protocol": self.protocol,
            "is_active": self.is_active,
            "connection_status": self.connection_status,
            "sync_status": self.sync_status,
            "last_connected": iso(self.last_connected),
        }


@dataclass(frozen=True)
class Product:
    tmpl_id: int
    id: int
    display_name: str
    uom: str = "kg"


@dataclass
class BomLine:
    product: Product
    qty: float  # the unscaled BoM line qty: to_consume (O4.4)
    equipment: str | None
    listed_qty: float | None = None  # bom_components.quantity when the recording shows another number


@dataclass
class Move:
    id: int
    product: Product
    product_uom_qty: float
    equipment: str | None
    quantity_done: float = 0.0
    reserved: float = 0.0
    state: str = "assigned"  # draft|confirmed|assigned|done|cancel
    move_line_count: int = 1
    bom_line: int | None = None  # index into the MO's BoM lines
    inject_error: str | None = None  # fault injection: a UserError raised when quantity_done is set


@dataclass
class MO:
    id: int
    name: str
    product: Product
    product_qty: float
    bom_id: int | None
    bom_code: str | bool
    bom_lines: list[BomLine]
    raw_moves: list[Move]
    finished_moves: list[Move]
    date_planned_start: datetime | None
    date_planned_finished: datetime | None
    equipment: str | None = "PLC01"
    origin: str | None = None
    consumption: str = "warning"  # warning|flexible|strict (O3.3)
    qty_producing: float = 0.0
    date_finished: datetime | None = None

    @property
    def state(self) -> str:
        """``_compute_state`` without work orders (O3.3)."""
        raw = self.raw_moves
        if not raw or all(m.state == "draft" for m in raw):
            return "draft"
        if all(m.state == "cancel" for m in raw):
            return "cancel"
        if all(m.state in ("done", "cancel") for m in raw):
            return "done"
        if self.qty_producing >= self.product_qty:
            return "to_close"
        if self.qty_producing != 0 or any(m.quantity_done != 0 for m in raw):
            return "progress"
        return "confirmed"

    def produced_qty(self) -> float:
        return sum(m.quantity_done for m in self.finished_moves if m.state != "cancel")

    def consumption_by_code(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.raw_moves:
            if m.state != "cancel" and m.equipment:
                out[m.equipment] = round(out.get(m.equipment, 0.0) + m.quantity_done, 6)
        return out


@dataclass
class FailureRecord:
    id: int
    equipment: Equipment
    description: str
    date: datetime
    duration: str | None
    reported_by: str
    duration_valid: bool = True

    @property
    def duration_minutes(self) -> int:
        m = re.match(r"^(\d+):(\d+)$", (self.duration or "").strip())
        return int(m.group(1)) * 60 + int(m.group(2)) if m else 0


@dataclass
class ExtFailureReport:
    id: int
    equipment: Equipment
    description: str
    date: datetime


@dataclass
class Domain:
    equipment: dict[str, Equipment] = field(default_factory=dict)
    mos: dict[int, MO] = field(default_factory=dict)
    failures: list[FailureRecord] = field(default_factory=list)
    failure_reports: list[ExtFailureReport] = field(default_factory=list)
    material_log_rows: int = 0
    oee_records: int = 0
    list_caps: bool = True  # cap reserved/consumed at the BoM qty as the code read does (O4.4 step 3)
    _next_id: int = 1000

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def mo_by_name(self, name: Any) -> MO | None:
        for mo in self.mos.values():
            if mo.name == str(name):
                return mo
        return None

    def mo_by_ref(self, value: Any) -> MO | None:
        """mo-detail: an int or an all-digits string is a database id, anything else a name (O4.5)."""
        if isinstance(value, int) and not isinstance(value, bool):
            return self.mos.get(value)
        if isinstance(value, str) and value.isdigit():
            return self.mos.get(int(value))
        return self.mo_by_name(value)

    def equipment_dict(self, code: str | None) -> dict[str, Any] | None:
        eq = self.equipment.get(code) if code else None
        return eq.as_dict() if eq else None

    # ------------------------------------------------------------------ output (O4.4)

    def components_consumption(self, mo: MO) -> list[dict[str, Any]]:
        entries: dict[tuple[int, int, str | None], dict[str, Any]] = {}
        for line in mo.bom_lines:
            eq = line.equipment or mo.equipment
            key = (line.product.tmpl_id, line.product.id, eq)
            if key in entries:
                entries[key]["to_consume"] += line.qty
                continue
            entries[key] = {
                "product_tmpl_id": line.product.tmpl_id,
                "product_id": line.product.id,
                "product_name": line.product.display_name,
                "to_consume": line.qty,
                "reserved": 0.0,
                "consumed": 0.0,
                "uom": line.product.uom,
                "equipment": self.equipment_dict(eq),
                "_bom": True,
            }
        for move in mo.raw_moves:
            eq = move.equipment or mo.equipment
            key = (move.product.tmpl_id, move.product.id, eq)
            entry = entries.get(key)
            if entry is None:
                # A move off its BoM line's equipment makes a second entry for the same product (O4.4 step 2).
                entry = entries[key] = {
                    "product_tmpl_id": move.product.tmpl_id,
                    "product_id": move.product.id,
                    "product_name": move.product.display_name,
                    "to_consume": move.product_uom_qty,
                    "reserved": 0.0,
                    "consumed": 0.0,
                    "uom": move.product.uom,
                    "equipment": self.equipment_dict(eq),
                    "_bom": False,
                }
            entry["reserved"] += move.reserved
            entry["consumed"] += move.quantity_done
        out = []
        for entry in entries.values():
            if entry.pop("_bom") and self.list_caps:
                entry["reserved"] = min(entry["reserved"], entry["to_consume"])
                entry["consumed"] = min(entry["consumed"], entry["to_consume"])
            out.append(entry)
        return out

    def mo_dict(self, mo: MO) -> dict[str, Any]:
        return {
            "mo_id": mo.name,
            "reference": mo.origin or None,
            "state": mo.state,
            "schedule_start": iso(mo.date_planned_start),
            "schedule_end": iso(mo.date_planned_finished),
            "equipment": self.equipment_dict(mo.equipment),
            "product_tmpl_id": mo.product.tmpl_id,
            "product_id": mo.product.id,
            "product_name": mo.product.display_name,
            "quantity": mo.product_qty,
            "produced_qty": mo.produced_qty(),
            "uom": mo.product.uom,
            "bom_id": mo.bom_id if mo.bom_id is not None else False,
            "bom_code": mo.bom_code,
            "bom_components": [
                {
                    "product_tmpl_id": ln.product.tmpl_id,
                    "product_id": ln.product.id,
                    "product_name": ln.product.display_name,
                    "quantity": ln.listed_qty if ln.listed_qty is not None else ln.qty,
                    "uom": ln.product.uom,
                }
                for ln in mo.bom_lines
            ],
            "components_consumption": self.components_consumption(mo),
        }

    def ordered_mos(self, states: list[str]) -> list[MO]:
        """Domain ``state in states``, order ``date_planned_start asc, id desc`` (O4.4)."""
        chosen = [mo for mo in self.mos.values() if mo.state in states]
        chosen.sort(key=lambda m: -m.id)
        chosen.sort(key=lambda m: m.date_planned_start or datetime.min)
        return chosen

    def snapshot(self) -> dict[str, Any]:
        """``GET /_sim/state``: what Odoo holds, for tests and the demo."""
        return {
            "mos": [
                {
                    "id": mo.id,
                    "mo_id": mo.name,
                    "state": mo.state,
                    "product_qty": mo.product_qty,
                    "qty_producing": mo.qty_producing,
                    "produced_qty": mo.produced_qty(),
                    "date_finished": iso(mo.date_finished),
                    "consumption": mo.consumption_by_code(),
                    "consumption_policy": mo.consumption,
                    "moves": [
                        {
                            "id": m.id,
                            "product": m.product.display_name,
                            "equipment": m.equipment,
                            "product_uom_qty": m.product_uom_qty,
                            "quantity_done": m.quantity_done,
                            "state": m.state,
                        }
                        for m in mo.raw_moves
                    ],
                }
                for mo in sorted(self.mos.values(), key=lambda m: m.id)
            ],
            "failures": [
                {
                    "id": f.id,
                    "equipment_code": f.equipment.code,
                    "description": f.description,
                    "date": f.date.strftime("%Y-%m-%dT%H:%M:%S"),
                    "duration": f.duration,
                    "duration_valid": f.duration_valid,
                }
                for f in self.failures
            ],
            "failure_reports": [
                {"id": r.id, "equipment_code": r.equipment.code, "description": r.description, "date": str(r.date)}
                for r in self.failure_reports
            ],
            "material_log_rows": self.material_log_rows,
            "oee_records": self.oee_records,
        }


def set_state(mo: MO, state: str) -> None:
    """Put an MO into ``state`` by changing what the state is computed from (seeding, and an operator acting
    in Odoo's UI between two API calls)."""
    if state == "cancel":
        for m in mo.raw_moves + mo.finished_moves:
            if m.state != "done":
                m.state = "cancel"
    elif state == "done":
        for m in mo.raw_moves + mo.finished_moves:
            if m.state != "cancel":
                m.state = "done"
        mo.date_finished = utcnow().replace(microsecond=0)
    elif state == "to_close":
        mo.qty_producing = mo.product_qty
    elif state == "progress":
        mo.qty_producing = mo.qty_producing or min(1.0, mo.product_qty / 2)
    elif state == "draft":
        for m in mo.raw_moves:
            m.state = "draft"
    elif state == "confirmed":
        mo.qty_producing = 0.0
        for m in mo.raw_moves:
            m.quantity_done = 0.0
    else:
        raise ValueError(f"unknown MO state {state!r}")


def edit_mo(
    mo: MO,
    *,
    quantity: float | None = None,
    line_qty: dict[str, float] | None = None,
    line_equipment: dict[str, str] | None = None,
) -> None:
    """Change a confirmed MO the way a planner does in Odoo's UI between two API calls.

    ``quantity``: Odoo's change-quantity wizard: the MO and its raw moves are scaled, the BoM lines (what
    ``to_consume`` reports, O4.4) are not. ``line_qty``: the BoM line(s) on an equipment get a new quantity
    and their moves follow. ``line_equipment``: lines and moves on one equipment code move to another."""
    if quantity is not None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        factor = quantity / mo.product_qty
        mo.product_qty = quantity
        for m in mo.raw_moves:
            m.product_uom_qty = round(m.product_uom_qty * factor, 6)
            m.reserved = round(m.reserved * factor, 6)
        for m in mo.finished_moves:
            m.product_uom_qty = quantity
    for code, qty in (line_qty or {}).items():
        lines = [ln for ln in mo.bom_lines if ln.equipment == code]
        if not lines:
            raise ValueError(f"no BoM line on {code!r} in {mo.name}")
        for ln in lines:
            ln.qty = float(qty)
            ln.listed_qty = None
        for m in mo.raw_moves:
            if m.equipment == code:
                m.product_uom_qty = m.reserved = float(qty)
    for old, new in (line_equipment or {}).items():
        for ln in mo.bom_lines:
            if ln.equipment == old:
                ln.equipment = new
        for m in mo.raw_moves:
            if m.equipment == old:
                m.equipment = new


# ---------------------------------------------------------------------- seeding


def _equipment_from(doc: dict[str, Any]) -> Equipment:
    lc = doc.get("last_connected")
    return Equipment(
        id=doc["id"],
        code=doc["code"],
        name=doc["name"],
        equipment_type=doc.get("equipment_type", False),
        manufacturer=doc.get("manufacturer", False),
        model_number=doc.get("model_number", False),
        serial_number=doc.get("serial_number", False),
        ip_address=doc.get("ip_address", False),
        port=doc.get("port", 0),
        protocol=doc.get("protocol", False),
        is_active=doc.get("is_active", True),
        connection_status=doc.get("connection_status", "connected"),
        sync_status=doc.get("sync_status", "pending"),
        last_connected=datetime.fromisoformat(lc) if lc else None,
    )


SCALE_CODE = "WEIGH_SCALE_01"  # the hand-weighing scale (the earlier middleware's code; manual weighing, docs/odoo-api.md O4.9)


def default_equipment(domain: Domain) -> None:
    """silo101..silo113, lq114, lq115, the MO-level PLC01 (O8 C) and the scale WEIGH_SCALE_01, unless seeded."""
    used = {eq.id for eq in domain.equipment.values()}
    if "PLC01" not in domain.equipment:
        domain.equipment["PLC01"] = Equipment(
            1 if 1 not in used else max(used) + 1,
            "PLC01",
            "Main PLC - Injection Machine 01",
            "plc",
            "OMRON",
            "CP2E-N20DT-D",
            False,
            "192.168.1.100",
            502,
            "modbus",
        )
        used.add(domain.equipment["PLC01"].id)
    for code in DOSING_CODES:
        if code not in domain.equipment:
            new_id = max(used, default=1) + 1
            used.add(new_id)
            domain.equipment[code] = Equipment(new_id, code, SILO_NAMES[code], "silo", protocol="middleware")
    if SCALE_CODE not in domain.equipment:
        new_id = max(used, default=1) + 1
        used.add(new_id)
        domain.equipment[SCALE_CODE] = Equipment(new_id, SCALE_CODE, "Manual weighing scale", "scale")


def load_seed(domain: Domain, path: Path, consumption: str = "warning") -> None:
    """Rebuild MOs from a recorded mo-list-detailed reply so that the simulator answers with it again.

    Each ``components_consumption`` entry becomes a BoM line (to_consume) and one raw move (reserved,
    consumed); ``bom_components`` keeps its own recorded quantity where it differs (the live reply shows e.g.
    SBM 18 in bom_components but 20 in to_consume for WH/MO/00012). Database ids come from the MO number.
    """
    doc = json.loads(path.read_text(encoding="utf-8"))
    data = doc["result"]["data"] if "result" in doc else doc["data"]
    for mo_doc in data:
        for eq_doc in [mo_doc.get("equipment")] + [c.get("equipment") for c in mo_doc["components_consumption"]]:
            if eq_doc and eq_doc["code"] not in domain.equipment:
                domain.equipment[eq_doc["code"]] = _equipment_from(eq_doc)
    for mo_doc in data:
        mo_eq = mo_doc["equipment"]["code"] if mo_doc.get("equipment") else None
        listed = {(c["product_tmpl_id"], c["product_id"]): c["quantity"] for c in mo_doc["bom_components"]}
        lines: list[BomLine] = []
        moves: list[Move] = []
        for comp in mo_doc["components_consumption"]:
            product = Product(comp["product_tmpl_id"], comp["product_id"], comp["product_name"], comp["uom"])
            eq = comp["equipment"]["code"] if comp.get("equipment") else None
            # An entry on the MO-level equipment came from the fallback: the BoM line itself has none (O3.2).
            line_eq = None if eq == mo_eq else eq
            qty = comp["to_consume"]
            listed_qty = listed.get((product.tmpl_id, product.id))
            lines.append(BomLine(product, qty, line_eq, listed_qty if listed_qty != qty else None))
            moves.append(
                Move(
                    domain.next_id(),
                    product,
                    qty,
                    line_eq,
                    quantity_done=comp["consumed"],
                    reserved=comp["reserved"],
                    bom_line=len(lines) - 1,
                )
            )
        number = int(re.sub(r"\D", "", mo_doc["mo_id"]) or 0) or domain.next_id()
        product = Product(mo_doc["product_tmpl_id"], mo_doc["product_id"], mo_doc["product_name"], mo_doc["uom"])
        finished = Move(domain.next_id(), product, mo_doc["quantity"], None, quantity_done=mo_doc["produced_qty"])
        mo = MO(
            id=number,
            name=mo_doc["mo_id"],
            product=product,
            product_qty=mo_doc["quantity"],
            bom_id=mo_doc["bom_id"] or None,
            bom_code=mo_doc["bom_code"],
            bom_lines=lines,
            raw_moves=moves,
            finished_moves=[finished],
            date_planned_start=datetime.fromisoformat(mo_doc["schedule_start"])
            if mo_doc["schedule_start"]
            else None,
            date_planned_finished=datetime.fromisoformat(mo_doc["schedule_end"])
            if mo_doc["schedule_end"]
            else None,
            equipment=mo_eq,
            origin=mo_doc.get("reference"),
            consumption=consumption,
        )
        if mo.state != mo_doc["state"]:
            set_state(mo, mo_doc["state"])
        domain.mos[mo.id] = mo


def add_generated_mos(domain: Domain, count: int, *, rng_seed: int = 0, consumption: str = "warning") -> list[MO]:
    """``count`` extra confirmed MOs after the newest one, using the recorded recipes when present (their
    silo/tank/PLC01 layout is the plant's), else a synthetic recipe. Deterministic for a given ``rng_seed``."""
    rng = random.Random(rng_seed)
    templates = sorted(domain.mos.values(), key=lambda m: m.id)
    last = max(domain.mos, default=0)
    start = max((m.date_planned_start for m in domain.mos.values() if m.date_planned_start), default=None)
    start = start or utcnow().replace(microsecond=0)
    created = []
    for i in range(1, count + 1):
        number = last + i
        if templates:
            tpl = templates[(i - 1) % len(templates)]
            product, bom_id, recipe = (
                tpl.product,
                tpl.bom_id,
                [(ln.product, ln.qty, ln.equipment) for ln in tpl.bom_lines],
            )
        else:
            product, bom_id, recipe = _synthetic_recipe(rng, i)
        planned = start + timedelta(minutes=10 * i, seconds=rng.randint(0, 59))
        lines = [BomLine(p, q, eq) for p, q, eq in recipe]
        moves = [
            Move(domain.next_id(), ln.product, ln.qty, ln.equipment, reserved=ln.qty, bom_line=idx)
            for idx, ln in enumerate(lines)
        ]
        mo = MO(
            id=number,
            name=f"WH/MO/{number:05d}",
            product=product,
            product_qty=1000.0,
            bom_id=bom_id,
            bom_code=False,
            bom_lines=lines,
            raw_moves=moves,
            finished_moves=[Move(domain.next_id(), product, 1000.0, None)],
            date_planned_start=planned,
            date_planned_finished=planned + timedelta(hours=1),
            equipment="PLC01",
            consumption=consumption,
        )
        domain.mos[number] = mo
        created.append(mo)
    return created


def _synthetic_recipe(rng: random.Random, i: int) -> tuple[Product, int, list[tuple[Product, float, str | None]]]:
    codes = rng.sample(DOSING_CODES, 8)
    qtys = [rng.randint(20, 300) for _ in codes]
    scale = 950.0 / sum(qtys)
    recipe: list[tuple[Product, float, str | None]] = [
        (Product(500 + n, 500 + n, f"[4{n:04d}] RAW {code.upper()}"), round(q * scale, 1), code)
        for n, (code, q) in enumerate(zip(codes, qtys, strict=True))
    ]
    dosed = sum(q for _, q, _ in recipe)
    recipe.append((Product(600, 600, "CaCO3"), round(1000.0 - dosed, 1), None))
    return Product(900 + i, 900 + i, f"[1{i:04d}] FEED {i}"), 100 + i, recipe
