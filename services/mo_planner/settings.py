"""mo_planner configuration (env / .env), validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.odoo.settings import OdooSettings
from shared.plc.memory_map import DEFAULT_MAP_PATH
from shared.service import WorkerSettings

SERVICE = "mo_planner"  # the worker's name: its actor in audit rows, its MQTT user and status topic


class PlannerSettings(WorkerSettings, OdooSettings):
    plc_map: Path = DEFAULT_MAP_PATH
    plc_slots: int | None = Field(default=None, ge=1, le=99, description="overrides the map's active_slots")
    odoo_poll_s: float = Field(default=60.0, gt=0, description="safety-net poll of confirmed MOs")
    odoo_states: list[str] = Field(default=["confirmed"], description="MO states taken from Odoo")
    lookahead: int = Field(default=2, ge=0, le=50, description="MOs kept queued beyond the free slots")
    recheck_s: float = Field(
        default=2.0,
        gt=0,
        description="a queued MO is written only within this long after mo-detail showed it unchanged",
    )
    command_timeout_s: float = Field(default=10.0, gt=0, description="resend a command without reply after")
    command_ttl_s: float = Field(default=30.0, gt=0, description="expires_at of commands to the gateway")
