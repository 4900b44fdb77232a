"""The equipment-code -> column mapping: the seed's names, one source, agreeing with the PLC memory map."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from shared.db.columns import (
    ACTUAL_COLUMNS,
    COLUMN_SUFFIX,
    TARGET_COLUMNS,
    UnknownEquipment,
    actual_column,
    target_column,
)
from shared.db.models import MoBatch, MoHistory
from shared.plc.memory_map import load_memory_map

# The plant's equipment table (docs/plc-program.md P7), copied as the specification.
SEED = {
    "silo101": "silo_a",
    "silo102": "silo_b",
    "silo103": "silo_c",
    "silo104": "silo_d",
    "silo105": "silo_e",
    "silo106": "silo_f",
    "silo107": "silo_g",
    "silo108": "silo_h",
    "silo109": "silo_i",
    "silo110": "silo_j",
    "silo111": "silo_k",
    "silo112": "silo_l",
    "silo113": "silo_m",
    "lq114": "lq_tetes",
    "lq115": "lq_fml",
}


def test_mapping_is_the_seed_table() -> None:
    assert COLUMN_SUFFIX == SEED


@pytest.mark.parametrize(
    ("code", "target", "actual"),
    [
        ("silo101", "consumption_silo_a", "actual_consumption_silo_a"),
        ("silo113", "consumption_silo_m", "actual_consumption_silo_m"),
        ("lq114", "consumption_lq_tetes", "actual_consumption_lq_tetes"),
        ("lq115", "consumption_lq_fml", "actual_consumption_lq_fml"),
    ],
)
def test_helpers(code: str, target: str, actual: str) -> None:
    assert (target_column(code), actual_column(code)) == (target, actual)


@pytest.mark.parametrize("code", ["SILO101", "silo_a", "101", "PLC01", "silo114", ""])
def test_unknown_code_is_refused_by_name(code: str) -> None:
    with pytest.raises(UnknownEquipment, match="has no database column") as info:
        actual_column(code)
    assert isinstance(info.value, KeyError) and info.value.code == code
    with pytest.raises(UnknownEquipment):
        target_column(code)


def test_every_equipment_of_the_plc_map_has_columns() -> None:
    """The memory map (shared/plc) and the database must name the same equipment, in the same order."""
    assert load_memory_map().equipment_codes == tuple(COLUMN_SUFFIX)


@pytest.mark.parametrize("model", [MoBatch, MoHistory], ids=lambda m: m.__tablename__)
def test_tables_carry_every_column_as_exact_kg(model: type[MoBatch] | type[MoHistory]) -> None:
    table = model.__table__
    assert isinstance(table, sa.Table)
    kg = [*TARGET_COLUMNS, *ACTUAL_COLUMNS, "consumption", "actual_weight_quantity_finished_goods"]
    for name in kg:
        col = table.c[name]
        assert isinstance(col.type, sa.Numeric) and (col.type.precision, col.type.scale) == (12, 2), name
        assert col.type.asdecimal
    for name in TARGET_COLUMNS:
        assert not table.c[name].nullable  # a target is 0 when the MO does not dose that silo
    for name in ACTUAL_COLUMNS:
        assert table.c[name].nullable  # NULL = not read from the PLC yet
    for name in ("status_manufacturing", "status_operation", "update_odoo"):
        assert isinstance(table.c[name].type, sa.Boolean)


def test_model_attributes_follow_the_mapping() -> None:
    row = MoBatch(mo_id="WH/MO/00011")
    setattr(row, actual_column("lq114"), Decimal("12.34"))
    assert row.__dict__["actual_consumption_lq_tetes"] == Decimal("12.34")
