"""Mapping Odoo MOs to PLC batches, checked against the plant's real data.

The ten live READ slots (2026-03-04) hold the same MOs as the recorded mo-list-detailed reply. A READ slot
mirrors the command's MO id, names, quantity and silo IDs, while its Consumption fields are the PLC's
ACTUALS (docs/plc-program.md P2), so targets are not in the slot verbatim. What the slots prove
(docs/plc-program.md P2 example, P6 vector A: the PLC doses whole kilograms, 41.6 -> 41.00):
  * a dosing code has a non-zero actual exactly when our mapping gives it a target (so PLC01 components such
    as CGF in WH/MO/00014, or TETES/FML in WH/MO/00015, are not dosed);
  * every actual is the target rounded down to whole kg: 0 <= target - actual < 1;
  * quantity and MO id are mirrored exactly; the text fields hold the first 16 chars of the product name.
"""

from __future__ import annotations

import json
import math

import pytest

from shared.odoo.mapping import consumption_payload, mo_to_batch
from shared.odoo.models import Mo, MoListReply
from shared.plc.memory_map import load_memory_map
from tests.support.odoo import MO_LIST_REPLY, REFERENCE

DOSING_CODES = load_memory_map().equipment_codes


def _mos() -> dict[str, Mo]:
    reply = MoListReply.model_validate(json.loads(MO_LIST_REPLY.read_text())["result"])
    return {mo.mo_id: mo for mo in reply.data}


def _vectors() -> list[dict[str, object]]:
    paths = sorted((REFERENCE / "vectors").glob("read-slot-*-live-2026-03-04.json"))
    assert len(paths) == 10
    return [json.loads(p.read_text())["expect"]["fields"] for p in paths]


@pytest.mark.parametrize("fields", _vectors(), ids=lambda f: str(f["mo_id"]))  # type: ignore[index]
def test_real_mos_map_to_what_the_plc_dosed(fields: dict[str, object]) -> None:
    mo = _mos()[str(fields["mo_id"])]
    batch = mo_to_batch(mo, DOSING_CODES)
    actuals = fields["consumption"]
    assert isinstance(actuals, dict)
    dosed = {code for code, kg in actuals.items() if kg > 0}
    assert set(batch.targets) == dosed
    for code, target in batch.targets.items():
        assert 0 <= target - actuals[code] < 1, (code, target, actuals[code])
        assert actuals[code] == math.floor(target)
    assert batch.quantity == fields["quantity"]
    assert batch.mo_id == fields["mo_id"]
    assert batch.finished_goods[:16].rstrip() == fields["finished_goods"]
    assert batch.bom_name[:16].rstrip() == fields["bom_name"]


def test_mo_00014_keeps_cgf_on_plc01_out_of_the_targets() -> None:
    """docs/plc-program.md P2 example: targets of WH/MO/00014, CGF 120 kg on PLC01 not written."""
    batch = mo_to_batch(_mos()["WH/MO/00014"], DOSING_CODES)
    assert batch.targets == {
        "silo101": 41.6,
        "silo102": 160.0,
        "silo103": 350.0,
        "silo106": 70.0,
        "silo107": 125.0,
        "silo108": 20.0,
        "silo112": 15.0,
        "lq114": 40.0,
        "lq115": 10.0,
    }
    cgf = [n for n in batch.not_dosed if "CGF" in n.product_name]
    assert len(cgf) == 1 and cgf[0].equipment_code == "PLC01" and cgf[0].quantity == 120.0
    assert batch.finished_goods == "JF PLUS KUR"


def test_components_without_equipment_are_not_dosed() -> None:
    """WH/MO/00016 has no MO-level equipment: manual components carry equipment null (docs/odoo-api.md O4.4)."""
    batch = mo_to_batch(_mos()["WH/MO/00016"], DOSING_CODES)
    assert {n.product_name for n in batch.not_dosed if n.equipment_code is None} == {
        "[4002] DEMITOX",
        "CaCO3",
        "[40022] GARAM",
        "[40132] SODIUM BICARBONATE",
        "[20023] RUMIGOLD 1KG",
    }
    assert "silo107" in batch.targets


def test_dosing_codes_are_a_parameter() -> None:
    batch = mo_to_batch(_mos()["WH/MO/00014"], ["silo101", "PLC01"])
    assert batch.targets == {"silo101": 41.6, "PLC01": 120 + 20 + 1.4 + 1.0 + 12.0 + 15.0}


def _mo(components: list[tuple[str, float, str | None]], quantity: float = 100.0) -> Mo:
    return Mo.model_validate(
        {
            "mo_id": "WH/MO/00099",
            "state": "confirmed",
            "product_tmpl_id": 1,
            "product_id": 1,
            "product_name": "[10001] A VERY LONG FEED NAME",
            "quantity": quantity,
            "produced_qty": 0.0,
            "bom_id": False,
            "bom_code": False,
            "bom_components": [],
            "components_consumption": [
                {
                    "product_tmpl_id": i,
                    "product_id": i,
                    "product_name": name,
                    "to_consume": qty,
                    "reserved": 0.0,
                    "consumed": 0.0,
                    "uom": "kg",
                    "equipment": None if code is None else {"id": i, "code": code, "name": code.upper()},
                }
                for i, (name, qty, code) in enumerate(components, start=10)
            ],
        }
    )


def test_repeated_code_is_summed_with_a_warning() -> None:
    """docs/odoo-api.md O4.4: the same equipment can be listed twice; update-with-consumptions spreads one
    value over all its moves (O4.6), so the silo gets one target: the sum."""
    batch = mo_to_batch(
        _mo([("P", 40.0, "silo101"), ("P2", 10.5, "silo101"), ("Q", 49.5, "silo102")]), DOSING_CODES
    )
    assert batch.targets == {"silo101": 50.5, "silo102": 49.5}
    assert any("silo101" in w and "more than once" in w for w in batch.warnings)


def test_an_mo_scaled_away_from_its_bom_is_refused_not_dosed() -> None:
    """O4.4 trap: to_consume is unscaled, so an MO at 2x its BoM lists half the quantity: dosing its targets
    under its quantity would be a wrong recipe (issue 10.3)."""
    batch = mo_to_batch(_mo([("P", 600.0, "silo101"), ("Q", 400.0, "silo102")], quantity=2000.0), DOSING_CODES)
    assert batch.problems and "add up to 1000 kg but the MO quantity is 2000 kg" in batch.problems[0]
    assert mo_to_batch(_mo([("P", 30.0, "silo101")], quantity=0.0), DOSING_CODES).problems == [
        "MO quantity 0 is not positive"
    ]


@pytest.mark.parametrize(("total", "refused"), [(990.0, False), (1019.9, False), (979.0, True), (1021.0, True)])
def test_a_sloppy_bom_is_dosed_with_a_warning_a_scaled_one_is_refused(total: float, refused: bool) -> None:
    """The plant's real WH/MO/00020 sums to 990 for 1000 kg and was dosed; 2 % is the line (SCALED_LIMIT)."""
    batch = mo_to_batch(
        _mo([("P", total - 100.0, "silo101"), ("Q", 100.0, "silo102")], quantity=1000.0), DOSING_CODES
    )
    assert bool(batch.problems) is refused
    assert refused or any(f"add up to {total:g}" in w for w in batch.warnings)


def test_real_mos_are_all_dosable() -> None:
    assert all(mo_to_batch(mo, DOSING_CODES).problems == [] for mo in _mos().values())


def test_targets_adding_up_give_no_warning() -> None:
    clean = mo_to_batch(_mo([("P", 60.0, "silo101"), ("Q", 40.0, "PLC01")], quantity=100.0), DOSING_CODES)
    assert clean.warnings == []
    assert clean.targets == {"silo101": 60.0}
    assert clean.bom_id is None and clean.bom_code is None


def test_zero_target_is_not_dosed_and_warned() -> None:
    batch = mo_to_batch(_mo([("P", 0.0, "silo101"), ("Q", 100.0, "silo102")]), DOSING_CODES)
    assert batch.targets == {"silo102": 100.0}
    assert any("silo101" in w for w in batch.warnings)


def test_full_product_name_is_kept() -> None:
    batch = mo_to_batch(_mo([("P", 100.0, "silo101")]), DOSING_CODES)
    assert batch.finished_goods == "[10001] A VERY LONG FEED NAME"  # the PLC encoder cuts to 16 chars


def test_consumption_payload_sends_only_positive_values() -> None:
    """O7.7: only mo_id, quantity (> 0) and equipment codes with a value > 0."""
    payload = consumption_payload("WH/MO/00011", 998.456, {"silo101": 0.0, "silo102": 137.004, "lq114": 23.0})
    assert payload == {"mo_id": "WH/MO/00011", "quantity": 998.46, "silo102": 137.0, "lq114": 23.0}
    assert consumption_payload("WH/MO/00011", 0.0, {"silo101": -1.0}) == {"mo_id": "WH/MO/00011"}
    assert consumption_payload("WH/MO/00011", None, {}) == {"mo_id": "WH/MO/00011"}


@pytest.mark.parametrize("code", ["quantity", "finished_qty", "product_qty", "context", "mo_id", "id", ""])
def test_consumption_payload_refuses_keys_odoo_reads_differently(code: str) -> None:
    with pytest.raises(ValueError):
        consumption_payload("WH/MO/00011", 10.0, {code: 5.0})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "12", True, None])
def test_consumption_payload_refuses_non_numbers(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        consumption_payload("WH/MO/00011", 10.0, {"silo101": value})  # type: ignore[dict-item]


def test_consumption_payload_needs_an_mo_name() -> None:
    with pytest.raises(ValueError):
        consumption_payload("", 10.0, {})
