"""failure_monitor configuration (env / .env), validated at start-up."""

from __future__ import annotations

from pydantic import Field

from shared.db.session import DatabaseSettings
from shared.odoo.settings import OdooSettings
from shared.plant_clock import PlantClockSettings
from shared.service import ServiceSettings


class FailureSettings(ServiceSettings, DatabaseSettings, OdooSettings, PlantClockSettings):
    report_retry_s: float = Field(default=2.0, gt=0, description="first retry delay; doubles up to the cap")
    report_retry_max_s: float = Field(default=300.0, gt=0)
    report_sweep_s: float = Field(default=30.0, gt=0)
    command_timeout_s: float = Field(default=10.0, gt=0)
