"""failure_monitor configuration (env / .env), validated at start-up."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.odoo.settings import OdooSettings
from shared.plant_clock import PlantClockSettings
from shared.service import WorkerSettings

from .weighing_rules import parse_item_selection


class FailureSettings(WorkerSettings, OdooSettings, PlantClockSettings):
    report_retry_s: float = Field(default=2.0, gt=0, description="first retry delay; doubles up to the cap")
    report_retry_max_s: float = Field(default=300.0, gt=0)
    report_sweep_s: float = Field(default=30.0, gt=0)
    command_timeout_s: float = Field(default=10.0, gt=0)
    # Manual weighing (issue 14): which items to take, and the scale's scada.equipment code in Odoo.
    weighing_items: str = Field(default="ALL", description="ALL or a comma list of MANUAL01..MANUAL10")
    weighing_equipment_code: str = Field(default="WEIGH_SCALE_01", min_length=1, max_length=64)

    @field_validator("weighing_items")
    @classmethod
    def _items(cls, v: str) -> str:
        parse_item_selection(v)  # a clear error at start-up, naming the bad entry
        return v

    @property
    def weighing_item_set(self) -> frozenset[int]:
        return parse_item_selection(self.weighing_items)
