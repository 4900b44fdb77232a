"""The database's names for the plant's equipment (seed spec naming). This dict is the ONE place that maps an
Odoo equipment code to a column; everything that reads or writes per-silo/tank columns goes through it.

| PLC id | Odoo equipment code | column suffix | target column          | actual column                  |
|--------|---------------------|---------------|------------------------|--------------------------------|
| 101    | silo101             | silo_a        | consumption_silo_a     | actual_consumption_silo_a      |
| ...    | ...                 | ...           | ...                    | ...                            |
| 113    | silo113             | silo_m        | consumption_silo_m     | actual_consumption_silo_m      |
| 114    | lq114 (TETES)       | lq_tetes      | consumption_lq_tetes   | actual_consumption_lq_tetes    |
| 115    | lq115 (FML)         | lq_fml        | consumption_lq_fml     | actual_consumption_lq_fml      |

The PLC memory map (shared/plc/plant_map.yaml) lists the same codes; tests hold the two in agreement. Which
equipment a plant doses comes from the map; this file only names columns, so a code without a column here
cannot be stored (adding one is a migration, never a silent skip).
"""

from __future__ import annotations

COLUMN_SUFFIX: dict[str, str] = {
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


class UnknownEquipment(KeyError):
    def __init__(self, code: str) -> None:
        super().__init__(f"equipment code {code!r} has no database column (known: {', '.join(COLUMN_SUFFIX)})")
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0])


def _suffix(code: str) -> str:
    try:
        return COLUMN_SUFFIX[code]
    except KeyError:
        raise UnknownEquipment(code) from None


def target_column(code: str) -> str:
    """Planned kg from Odoo, e.g. silo101 -> consumption_silo_a."""
    return f"consumption_{_suffix(code)}"


def actual_column(code: str) -> str:
    """Actual kg from the PLC, e.g. lq114 -> actual_consumption_lq_tetes."""
    return f"actual_consumption_{_suffix(code)}"


TARGET_COLUMNS: tuple[str, ...] = tuple(target_column(c) for c in COLUMN_SUFFIX)
ACTUAL_COLUMNS: tuple[str, ...] = tuple(actual_column(c) for c in COLUMN_SUFFIX)
