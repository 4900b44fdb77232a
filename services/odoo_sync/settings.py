"""odoo_sync configuration (env / .env), validated at start-up."""

from __future__ import annotations

from pydantic import Field

from shared.odoo.settings import OdooSettings
from shared.service import WorkerSettings


class SyncSettings(WorkerSettings, OdooSettings):
    sync_sweep_s: float = Field(default=30.0, gt=0, description="safety-net sweep for finished batches")
    mark_done: bool = Field(default=False, description="also close the MO in Odoo (verified)")
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
