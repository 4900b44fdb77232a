"""`housekeeping`: applies the retention policy (services/housekeeping/retention.py) on a schedule.

Runs once shortly after start, then every RETENTION_INTERVAL_S (default one day); `--once` runs one purge and
exits (cron, tests, or by hand: `docker-compose run --rm housekeeping housekeeping --once`). A database that
is away delays the purge until it is back (the worker base's database policy, shared/service.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable

from pydantic import Field
from sqlalchemy import Engine

from shared.config import ConfigError, load
from shared.logging import setup_logging
from shared.service import DatabaseWorkerSettings, Worker, run_worker

from .retention import RetentionPolicy, purge

SERVICE = "housekeeping"
log = logging.getLogger(SERVICE)


class HousekeepingSettings(DatabaseWorkerSettings):
    audit_retention_days: int = Field(default=180, ge=0, description="0 = keep audit_event forever")
    failure_retention_days: int = Field(default=730, ge=0, description="0 = keep equipment_failure forever")
    history_retention_days: int = Field(default=0, ge=0, description="0 = keep mo_histories forever")
    retention_interval_s: float = Field(default=86400.0, gt=0)
    retention_first_delay_s: float = Field(default=60.0, ge=0)

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(self.audit_retention_days, self.failure_retention_days, self.history_retention_days)


class Housekeeping(Worker[HousekeepingSettings]):
    """Retention on a schedule. /healthz is not ready while the database is away: retention that silently
    stops for months is what this service exists to prevent (the base retries the purge until it runs)."""

    service = SERVICE
    settings_class = HousekeepingSettings

    def __init__(self, settings: HousekeepingSettings) -> None:
        super().__init__(settings)
        self.due_at = time.monotonic() + settings.retention_first_delay_s

    def step(self) -> float:
        if (wait := self.due_at - time.monotonic()) > 0:
            return wait
        try:
            apply_retention(self.settings, self.engine, progress=self.beat)
        finally:
            self.engine.dispose()  # a daily job holds no connection between rounds
        self.due_at = time.monotonic() + self.settings.retention_interval_s
        return self.settings.retention_interval_s


def apply_retention(
    settings: HousekeepingSettings, engine: Engine, progress: Callable[[], None]
) -> dict[str, int]:
    deleted = purge(engine, settings.policy(), dt.datetime.now(dt.UTC), progress)
    log.info("retention applied", extra={"deleted": deleted, "policy": settings.policy().__dict__})
    return deleted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="housekeeping", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one purge, then exit")
    args = parser.parse_args(argv)
    if not args.once:
        run_worker(Housekeeping)
        return 0
    try:
        settings: HousekeepingSettings = load(HousekeepingSettings)
    except ConfigError as exc:
        print(f"housekeeping: {exc}", file=sys.stderr)
        return 2
    setup_logging(SERVICE, settings.log_level)
    engine = settings.make_engine(application_name=SERVICE)
    try:
        apply_retention(settings, engine, progress=lambda: None)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
