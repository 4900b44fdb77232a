"""odoo_sync configuration (env / .env), validated at start-up."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from shared.odoo.settings import OdooSettings
from shared.service import WorkerSettings


class SyncSettings(WorkerSettings, OdooSettings):
    sync_sweep_s: float = Field(default=30.0, gt=0, description="safety-net sweep for finished batches")
    sync_concurrency: int = Field(
        default=4, ge=1, le=16, description="batches reported to Odoo at once (a burst of finishes, side by side)"
    )
    # One connection per report in flight, and one for the worker's own loop.
    database_pool_size: int = Field(default=5, ge=1, le=50)
    mark_done: bool = Field(default=False, description="also close the MO in Odoo (verified)")
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _a_connection_per_report(self) -> Self:
        if self.sync_concurrency >= self.database_pool_size:
            raise ValueError(
                f"SYNC_CONCURRENCY={self.sync_concurrency} needs DATABASE_POOL_SIZE >= {self.sync_concurrency + 1} "
                f"(one connection per report in flight and one for the worker's loop), got {self.database_pool_size}"
            )
        return self
