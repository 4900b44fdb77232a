"""grt_scada handlers as the module's code behaves, quirks included (docs/odoo-api.md O4, O5, O8 C/D).

Each handler takes the already-extracted payload and returns the ``result`` object. SCADA handlers catch
every exception and answer ``status:error`` (O1.2), and whatever they wrote before the failure stays
(non-atomic, O5.3): no handler here rolls back its own partial work.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from simulators.odoo.domain import MO, ROUNDING, Domain, ExtFailureReport, FailureRecord, Move, utcnow

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
MULTI_LINE_ERROR = "Cannot set the done quantity from this stock move, work directly with the move lines."
DURATION_RE = re.compile(r"^([0-1]?[0-9]|2[0-3]):[0-5][0-9]$")
# datetime.fromisoformat as Python 3.7 accepted it (production runs 3.7, O0): no "Z", no compact forms.
PY37_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[ T]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{3}(?:\d{3})?)?)?)?([+-]\d{2}:\d{2}(?::\d{2}(?:\.\d{6})?)?)?)?$"
)


class UserError(Exception):
    """odoo.exceptions.UserError."""


def err(message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, **extra}


def _first(payload: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if payload.get(key) is not None:
            return key, payload[key]
    return None, None


def _float(value: Any) -> float:
    return float(value)  # Python's float(): "12.5" and True are accepted, as in the module


def _set_quantity_done(move: Move, value: float) -> None:
    """``stock.move._quantity_done_set`` (O4.6 trap): several move lines refuse a changed value."""
    if move.inject_error and value != move.quantity_done:
        raise UserError(move.inject_error)
    if move.move_line_count > 1 and abs(value - move.quantity_done) >= ROUNDING / 2:
        raise UserError(MULTI_LINE_ERROR)
    move.quantity_done = value


def _open_finished_move(mo: MO) -> Move | None:
    for move in mo.finished_moves:
        if move.state not in ("done", "cancel") and move.product == mo.product:
            return move
    return None


# ---------------------------------------------------------------------- simple routes


def health() -> dict[str, Any]:
    return {"status": "ok", "message": "SCADA Module is running", "timestamp": utcnow().isoformat()}


def version(is_admin: bool) -> dict[str, Any]:
    if not is_admin:
        return err(
            "You are not allowed to access 'Module' (ir.module.module) records.\n\nThis operation is allowed for "
            "the following groups:\n\t- Administration/Settings\n\nContact your administrator to request access "
            "if necessary."
        )
    return {"status": "success", "version": "14.0.7.2.1", "name": "SCADA for Odoo"}


def equipment_get(domain: Domain, code: str) -> dict[str, Any]:
    eq = domain.equipment.get(code)
    if eq is None:
        return err(f'Equipment "{code}" not found')
    return {
        "status": "success",
        "data": {
            "id": eq.id,
            "equipment_code": eq.code,
            "name": eq.name,
            "connection_status": eq.connection_status,
            "is_active": eq.is_active,
            "last_connected": eq.last_connected.isoformat() if eq.last_connected else None,
        },
    }


def acknowledge(domain: Domain, mo_db_id: int) -> dict[str, Any]:
    """A no-op (O4.12): nothing is marked as picked up."""
    mo = domain.mos.get(mo_db_id)
    if mo is None:
        return err(f"MO not found: {mo_db_id}")
    return {"status": "success", "message": "MO acknowledged successfully", "mo_id": mo.name}


# ---------------------------------------------------------------------- lists (O4.3-4.5)


def _states(value: Any) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [s.strip() for s in value.split(",") if s.strip()] or ["confirmed"]
    if isinstance(value, list) and value:
        return [str(s) for s in value]
    return ["confirmed"]


def mo_list_detailed(domain: Domain, params: dict[str, Any]) -> dict[str, Any]:
    try:
        try:
            limit = int(params.get("limit", 10))
        except (TypeError, ValueError):
            limit = 10  # an unparsable limit becomes the default (O4.4)
        offset = int(params.get("offset", 0) or 0)
        mos = domain.ordered_mos(_states(params.get("states")))[offset:]
        if limit:
            mos = mos[:limit]
        data = [domain.mo_dict(mo) for mo in mos]
        return {"status": "success", "count": len(data), "data": data}
    except Exception as exc:
        return err(str(exc))


def mo_list_confirmed(domain: Domain, params: dict[str, Any]) -> dict[str, Any]:
    try:
        limit = int(params.get("limit", 50))
        offset = int(params.get("offset", 0))
    except (TypeError, ValueError) as exc:
        return err(str(exc))
    mos = sorted(
        (m for m in domain.mos.values() if m.state == "confirmed"),
        key=lambda m: (m.date_planned_start or datetime.min, m.id),
    )[offset:]
    if limit:
        mos = mos[:limit]
    data = [
        {
            "mo_id": mo.name,
            "reference": mo.origin or None,
            "schedule": mo.date_planned_start.isoformat() if mo.date_planned_start else None,
            "schedule_end": mo.date_planned_finished.isoformat() if mo.date_planned_finished else None,
            "product": mo.product.display_name,
            "quantity": mo.product_qty,
            "state": "confirmed",
            "equipment": domain.equipment_dict(mo.equipment),
        }
        for mo in mos
    ]
    return {"status": "success", "count": len(data), "data": data}


def mo_detail(domain: Domain, params: dict[str, Any]) -> dict[str, Any]:
    ref = params.get("mo_id") or params.get("manufacturing_order_id")
    if not ref:
        return err("mo_id is required")
    mo = domain.mo_by_ref(ref)
    if mo is None:
        return err(f"MO not found: {ref}")
    return {"status": "success", "data": domain.mo_dict(mo)}


# ---------------------------------------------------------------------- update-with-consumptions (O4.6)


def _rescale(mo: MO, new_qty: float) -> None:
    """``change.production.qty``: scale product_qty and every open move."""
    factor = new_qty / mo.product_qty if mo.product_qty else 1.0
    for move in mo.raw_moves:
        if move.state not in ("done", "cancel"):
            move.product_uom_qty = round(move.product_uom_qty * factor, 6)
    for move in mo.finished_moves:
        if move.state not in ("done", "cancel"):
            move.product_uom_qty = new_qty
    mo.product_qty = new_qty


def update_with_consumptions(domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        mo_name = payload.get("mo_id")
        if not mo_name:
            return err("mo_id is required")
        mo = domain.mo_by_name(mo_name)
        if mo is None:
            return err(f'Manufacturing Order "{mo_name}" not found')
        if mo.state in ("done", "cancel"):
            return err(f'Cannot update MO "{mo_name}" in state "{mo.state}"')
        result: dict[str, Any] = {}
        target_key, target = _first(payload, TARGET_KEYS)
        if target_key is not None:
            try:
                target_qty = _float(target)
            except (TypeError, ValueError):
                return err(f"Invalid target quantity value: {target}")
            if target_qty <= 0:
                return err("Target quantity must be greater than 0")
            if target_qty != mo.product_qty:
                _rescale(mo, target_qty)  # committed even if a later step fails (O5.3)
            result["updated_quantity"] = target_qty
        finished_key, finished = _first(payload, FINISHED_KEYS)
        if finished_key is not None:
            try:
                finished_qty = _float(finished)
            except (TypeError, ValueError):
                return err(f"Invalid finished quantity value: {finished}")
            if finished_qty <= 0:
                return err("Finished quantity must be greater than 0")
            fmove = _open_finished_move(mo)
            if fmove is None:
                return err("No finished product move found for this MO")
            fmove.quantity_done = finished_qty
            mo.qty_producing = finished_qty
            result["updated_finished_qty"] = finished_qty
        errors: list[str] = []
        consumed_items: list[dict[str, Any]] = []
        reserved = {"mo_id", *TARGET_KEYS, *FINISHED_KEYS}
        for key, value in payload.items():
            if key in reserved:
                continue
            try:
                qty = _float(value)
            except (TypeError, ValueError):
                errors.append(f'{key}: Invalid quantity value "{value}"')
                continue
            if qty <= 0:
                continue  # silently skipped: a SET cannot reset to 0 (O4.6)
            eq = domain.equipment.get(key)
            if eq is None:
                errors.append(f"{key}: Equipment not found")
                continue
            # Only the move's own equipment counts; no fallback to the MO equipment (O3.2 asymmetry).
            moves = [m for m in mo.raw_moves if m.state != "cancel" and m.equipment == key]
            if not moves:
                errors.append(f"{key}: No raw material move found for this equipment")
                continue
            for move in moves:
                _set_quantity_done(move, 0.0)
            rest = qty
            filled: list[Move] = []
            for i, move in enumerate(moves):
                share = rest if i == len(moves) - 1 else min(rest, move.product_uom_qty)
                if share <= 0:
                    break
                _set_quantity_done(move, share)
                rest -= share
                filled.append(move)
                domain.material_log_rows += 1
            consumed_items.append(
                {
                    "equipment_code": key,
                    "equipment_name": eq.name,
                    "applied_qty": qty,
                    "move_ids": [m.id for m in filled],
                    "products": [m.product.display_name for m in filled],
                }
            )
        out: dict[str, Any] = {
            "status": "success",
            "message": "MO updated with some errors" if errors else "MO updated successfully",
            "mo_id": mo.name,
            "mo_state": mo.state,
            "consumed_items": consumed_items,
            **result,
        }
        if errors:
            out["errors"] = errors  # the key exists only when non-empty (O9)
        return out
    except Exception as exc:
        return err(f"Error: {exc}")


# ---------------------------------------------------------------------- mark-done (O4.7)


def _consumption_matches(mo: MO) -> bool:
    """``_get_consumption_issues``: done qty per product against the plan scaled to qty_producing."""
    expected: dict[Any, float] = {}
    done: dict[Any, float] = {}
    for move in mo.raw_moves:
        if move.state == "cancel":
            continue
        expected[move.product] = expected.get(move.product, 0.0) + move.product_uom_qty
        done[move.product] = done.get(move.product, 0.0) + move.quantity_done
    factor = mo.qty_producing / mo.product_qty if mo.product_qty else 0.0
    return all(abs(done[p] - expected[p] * factor) < ROUNDING / 2 for p in expected)


def _button_mark_done(domain: Domain, mo: MO) -> None:
    if mo.qty_producing == 0:
        raise UserError("The quantity to produce must be positive!")
    if not any(m.quantity_done for m in mo.raw_moves if m.state != "cancel"):
        raise UserError("You must indicate a non-zero amount consumed for at least one of your components")
    if mo.consumption != "flexible" and not _consumption_matches(mo):
        return  # consumption-warning wizard returned and ignored: the MO stays open (O4.7)
    if mo.qty_producing < mo.product_qty:
        return  # backorder wizard returned and ignored: the MO stays open
    for move in mo.raw_moves + mo.finished_moves:
        if move.state != "cancel":
            move.state = "done"
    mo.product_qty = mo.produced_qty()
    mo.date_finished = utcnow().replace(microsecond=0)
    if mo.equipment:
        domain.oee_records += 1


def mark_done(domain: Domain, payload: dict[str, Any], path_id: int | None = None) -> dict[str, Any]:
    try:
        mo_name = payload.get("mo_id")
        if path_id is None:
            if not mo_name:
                return err("mo_id is required")
            mo = domain.mo_by_name(mo_name)
            if mo is None:
                return err(f"MO not found: {mo_name}")
        else:
            found = domain.mos.get(path_id)
            if found is None:
                return err(f"MO not found: {path_id}")
            mo = found
            if mo_name and mo_name != mo.name:
                return err(f"mo_id mismatch: {mo_name}")
        finished = payload.get("finished_qty")
        if finished is None:
            return err("finished_qty is required")
        try:
            finished_qty = _float(finished)
        except (TypeError, ValueError):
            return err("finished_qty must be a number")
        if finished_qty <= 0:
            return err("finished_qty must be > 0")
        fmove = _open_finished_move(mo)
        if fmove is None:
            return err("No finished product move found for this MO")
        fmove.quantity_done = finished_qty  # SET; qty_producing is NOT touched
        date_end = payload.get("date_end_actual")
        if date_end:
            mo.date_finished = datetime.strptime(str(date_end), "%Y-%m-%d %H:%M:%S")
        if mo.state not in ("done", "cancel"):
            _button_mark_done(domain, mo)  # its return value (a wizard) is ignored
        return {
            "status": "success",
            "message": "Manufacturing order marked as done",
            "mo_id": mo.name,
            "auto_consumed": 0,
            "materials": [],
        }
    except Exception as exc:
        return err(str(exc))


# ---------------------------------------------------------------------- cancel (O4.8)


def cancel(domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        mo_name = payload.get("mo_id")
        if not mo_name:
            return err("mo_id is required")
        mo = domain.mo_by_name(mo_name)
        if mo is None:
            return err(f"MO not found: {mo_name}")
        if mo.state == "done":
            return err(f'Cannot cancel MO "{mo_name}" in state "done"')
        if mo.state == "cancel":
            return {
                "status": "success",
                "message": "Manufacturing order already cancelled",
                "mo_id": mo.name,
                "mo_state": "cancel",
            }
        for move in mo.raw_moves + mo.finished_moves:
            if move.state != "done":
                move.state = "cancel"
        return {
            "status": "success",
            "message": "Manufacturing order cancelled successfully",
            "mo_id": mo.name,
            "mo_state": mo.state,
        }
    except Exception as exc:
        return err(str(exc))


# ---------------------------------------------------------------------- material-consumption (O4.9)


def material_consumption(
    domain: Domain, payload: dict[str, Any], *, validate_only: bool = False
) -> dict[str, Any]:
    try:
        problems: list[str] = []
        code = payload.get("equipment_id")
        qty_raw = payload.get("quantity")
        ts_raw = payload.get("timestamp")
        prod_raw = payload.get("product_id") or payload.get("material_id")
        tmpl_raw = payload.get("product_tmpl_id")
        mo_raw = payload.get("mo_id") or payload.get("manufacturing_order_id")
        if not code:
            problems.append("Equipment ID is required")
        if qty_raw is None:
            problems.append("Quantity is required")
        if ts_raw is None:
            problems.append("Timestamp is required")
        if not prod_raw and not tmpl_raw:
            problems.append("Product ID or Product Template ID is required")
        if code and code not in domain.equipment:
            problems.append(f'Equipment "{code}" not found')
        products = {mv.product for mo in domain.mos.values() for mv in mo.raw_moves}
        product = None
        if prod_raw:
            try:
                product = next((p for p in products if p.id == int(prod_raw)), None)
                if product is None:
                    problems.append(f'Product ID "{prod_raw}" not found')
            except (TypeError, ValueError):
                problems.append("Product ID must be a number")
        elif tmpl_raw:
            try:
                product = next((p for p in products if p.tmpl_id == int(tmpl_raw)), None)
                if product is None:
                    problems.append(f'Product Template ID "{tmpl_raw}" not found')
            except (TypeError, ValueError):
                problems.append("Product Template ID must be a number")
        mo = None
        if not mo_raw:
            problems.append("MO ID is required")
        else:
            mo = domain.mo_by_ref(mo_raw)
            if mo is None:
                problems.append(f'Manufacturing Order "{mo_raw}" not found')
        qty = 0.0
        if qty_raw is not None:
            try:
                qty = _float(qty_raw)
                if qty_raw and qty <= 0:
                    problems.append("Quantity must be positive")
            except (TypeError, ValueError):
                problems.append("Quantity must be a number")
        if ts_raw is not None:
            text = str(ts_raw).replace("Z", "+00:00")
            try:
                ts = datetime.fromisoformat(text)
            except ValueError:
                problems.append("Invalid timestamp format")
            else:
                if ts > utcnow():  # an aware ts raises TypeError -> "Error: can't compare ..."
                    problems.append("Timestamp cannot be in the future")
        if problems:
            return err("Validation failed: " + "; ".join(problems), **({"data": payload} if validate_only else {}))
        if validate_only:
            return {"status": "success", "message": "Validation passed", "data": payload}
        assert mo is not None and product is not None
        if mo.state in ("done", "cancel"):
            return err(f"Cannot update consumption for MO in {mo.state} state")
        moves = [m for m in mo.raw_moves if m.product == product and m.state not in ("done", "cancel")]
        if not moves:
            return err("No raw material move found for this product in MO")
        mode = payload.get("update_mode") or "add"
        applied = 0.0
        if mode == "replace":
            for move in moves:
                _set_quantity_done(move, 0.0)
            rest = qty
            for i, move in enumerate(moves):
                share = rest if i == len(moves) - 1 else min(rest, move.product_uom_qty)
                _set_quantity_done(move, share)
                rest -= share
                applied += share
        else:
            rest = qty
            for move in moves:
                if rest <= 0:
                    break
                need = move.product_uom_qty - move.quantity_done
                share = min(rest, need) if need > 0 else rest
                _set_quantity_done(move, move.quantity_done + share)
                rest -= share
                applied += share
            # whatever is left after the last move is silently dropped (O4.9)
        domain.material_log_rows += 1
        return {
            "status": "success",
            "message": f"Material consumption {'replaced' if mode == 'replace' else 'added'} to MO moves",
            "mo_id": mo.name,
            "mo_state": mo.state,
            "applied_qty": applied,
            "move_ids": [m.id for m in moves],
            "update_mode": mode,
            "can_update_again": mo.state not in ("done", "cancel"),
        }
    except Exception as exc:
        return err(f"Error: {exc}")


# ---------------------------------------------------------------------- equipment failure (O4.10)


def _parse_failure_date(value: Any) -> datetime:
    text = str(value).replace("T", " ")
    if len(text) == 16:
        text += ":00"
    if not PY37_ISO.match(text):
        raise ValueError("Invalid date format. Use YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM")
    return datetime.fromisoformat(text)


def failure_dict(rec: FailureRecord, *, with_reporter: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rec.id,
        "equipment_id": rec.equipment.id,
        "equipment_code": rec.equipment.code,
        "equipment_name": rec.equipment.name,
        "description": rec.description,
        "date": rec.date.strftime("%Y-%m-%dT%H:%M:%S"),
        "duration": rec.duration or False,
        "duration_minutes": rec.duration_minutes,
    }
    if with_reporter:
        out["reported_by"] = rec.reported_by
    return out


def equipment_failure_post(
    domain: Domain, payload: dict[str, Any], *, user: str, commit_invalid_duration: bool = True
) -> dict[str, Any]:
    try:
        code = payload.get("equipment_code")
        description = payload.get("description")
        if not code:
            return err("equipment_code is required")
        if not description:
            return err("description is required")
        eq = domain.equipment.get(code)
        if eq is None:
            return err(f'Equipment "{code}" not found')
        date_raw = payload.get("date")
        if date_raw:
            try:
                date = _parse_failure_date(date_raw)
            except ValueError:
                return err("Invalid date format. Use YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM")
            if date.tzinfo is not None:
                return err(f"Datetime field expects a naive datetime: {date}")
        else:
            date = utcnow()
        duration = payload.get("duration") or None
        rec = FailureRecord(domain.next_id(), eq, str(description), date.replace(microsecond=0), duration, user)
        valid = duration is None or bool(DURATION_RE.match(str(duration).strip()))
        if not valid:
            # The constraint runs after the INSERT and the controller swallows it: the row stays (O4.10).
            rec.duration_valid = False
            if commit_invalid_duration:
                domain.failures.append(rec)
            return err(f"Format durasi '{duration}' tidak valid. Gunakan format hh:mm (contoh: 02:30)")
        domain.failures.append(rec)
        return {
            "status": "success",
            "message": "Equipment failure report created",
            "data": failure_dict(rec, with_reporter=False),
        }
    except Exception as exc:
        return err(str(exc))


def _sorted_failures(domain: Domain, code: str | None) -> list[FailureRecord]:
    recs = [f for f in domain.failures if code is None or f.equipment.code == code]
    recs.sort(key=lambda f: f.id, reverse=True)
    recs.sort(key=lambda f: f.date, reverse=True)  # order date desc, id desc
    return recs


def equipment_failure_get(domain: Domain, args: dict[str, str]) -> dict[str, Any]:
    try:
        code = args.get("equipment_code") or None
        limit = int(args.get("limit", 50))
        offset = int(args.get("offset", 0))
        recs = _sorted_failures(domain, code)[offset : offset + limit]
        data = [failure_dict(r, with_reporter=True) for r in recs]
        return {"status": "success", "count": len(data), "data": data}
    except Exception as exc:
        return err(str(exc))


PERIODS = ("today", "yesterday", "this_week", "last_7_days", "this_month", "last_month", "this_year")


def _period(name: str, now: datetime) -> tuple[datetime, datetime]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "today":
        return day, now
    if name == "yesterday":
        return day - timedelta(days=1), day - timedelta(microseconds=1)
    if name == "this_week":
        return day - timedelta(days=day.weekday()), now
    if name == "last_7_days":
        return day - timedelta(days=7), now
    if name == "this_month":
        return day.replace(day=1), now
    if name == "last_month":
        end = day.replace(day=1)
        return (end - timedelta(days=1)).replace(day=1), end - timedelta(microseconds=1)
    return day.replace(month=1, day=1), now


def equipment_failure_report(domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        period = payload.get("period") or "today"
        if period not in PERIODS:
            return err("Invalid period value. Supported: " + ", ".join(PERIODS))
        start, end = _period(period, utcnow())
        if payload.get("date_from"):
            text = str(payload["date_from"])
            start = datetime.fromisoformat(text + (" 00:00:00" if len(text) == 10 else ""))
        if payload.get("date_to"):
            text = str(payload["date_to"])
            end = datetime.fromisoformat(text + (" 23:59:59" if len(text) == 10 else ""))
        limit = int(payload.get("limit", 100))
        offset = int(payload.get("offset", 0))
        recs = [
            r for r in _sorted_failures(domain, payload.get("equipment_code") or None) if start <= r.date <= end
        ]
        by_eq: dict[int, dict[str, Any]] = {}
        for r in recs:
            # read_group names the aggregates after the fields; the module reads id_count/date_max (O4.10 bug).
            by_eq.setdefault(
                r.equipment.id,
                {
                    "equipment_id": r.equipment.id,
                    "equipment_name": r.equipment.name,
                    "failure_count": 0,
                    "last_failure_date": None,
                },
            )
        data = [failure_dict(r, with_reporter=True) for r in recs[offset : offset + limit]]
        return {
            "status": "success",
            "count": len(data),
            "data": data,
            "summary": {
                "total_failures": len(recs),
                "equipment_count": len(by_eq),
                "by_equipment": list(by_eq.values()),
            },
        }
    except Exception as exc:
        return err(str(exc))


def failure_report_ext(domain: Domain, payload: dict[str, Any]) -> dict[str, Any]:
    """Extension ``/api/scada/failure-report`` (O4.11): no try/except, so surprises escape as JSON-RPC errors."""
    code = payload.get("equipment_code")
    description = payload.get("description")
    if not code:
        return err("equipment_code is required")
    if not description:
        return err("description is required")
    eq = domain.equipment.get(code)
    if eq is None:
        return err(f'Equipment with code "{code}" not found')
    date_raw = payload.get("date")
    if date_raw:
        text = str(date_raw).replace("T", " ")
        if len(text) == 16:
            text += ":00"
        try:
            date = datetime.strptime(text, "%Y-%m-%d" if len(text) == 10 else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return err("Invalid date format. Use YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM")
    else:
        date = utcnow().replace(microsecond=0)
    rec = ExtFailureReport(domain.next_id(), eq, str(description), date)
    domain.failure_reports.append(rec)
    return {
        "status": "success",
        "message": "Failure report created",
        "data": {
            "id": rec.id,
            "equipment_code": eq.code,
            "description": rec.description,
            "date": date.strftime("%Y-%m-%d %H:%M:%S"),
        },
    }
