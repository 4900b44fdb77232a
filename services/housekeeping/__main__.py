"""`housekeeping`: applies the retention policy (services/housekeeping/retention.py) on a schedule.

Runs once shortly after start, then every RETENTION_INTERVAL_S (default one day); `--once` runs one purge and
exits (cron, tests, or by hand: `docker-compose run --rm housekeeping housekeeping --once`). A database that
is away only postpones the purge to the next round.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from types import FrameType

from prometheus_client import CollectorRegistry
from pydantic import Field
from sqlalchemy.exc import OperationalError

from shared.config import ConfigError, load
from shared.db.session import DatabaseSettings
from shared.health import readiness, start_health_server
from shared.logging import register_secret, setup_logging

from .retention import RetentionPolicy, purge

SERVICE = "housekeeping"
log = logging.getLogger(SERVICE)


class HousekeepingSettings(DatabaseSettings):
    audit_retention_days: int = Field(default=180, ge=0, description="0 = keep audit_event forever")
    failure_retention_days: int = Field(default=730, ge=0, description="0 = keep equipment_failure forever")
    history_retention_days: int = Field(default=0, ge=0, description="0 = keep mo_histories forever")
    retention_interval_s: float = Field(default=86400.0, gt=0)
    retention_first_delay_s: float = Field(default=60.0, ge=0)
    log_level: str = "INFO"
    health_port: int = Field(default=0, ge=0, le=65535, description="0 = /healthz off")
    health_host: str = "0.0.0.0"

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(self.audit_retention_days, self.failure_retention_days, self.history_retention_days)


def run_once(settings: HousekeepingSettings) -> dict[str, int]:
    engine = settings.make_engine(application_name=SERVICE)
    try:
        deleted = purge(engine, settings.policy(), dt.datetime.now(dt.UTC))
    finally:
        engine.dispose()
    log.info("retention applied", extra={"deleted": deleted, "policy": settings.policy().__dict__})
    return deleted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="housekeeping", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one purge, then exit")
    args = parser.parse_args(argv)
    try:
        settings: HousekeepingSettings = load(HousekeepingSettings)
    except ConfigError as exc:
        print(f"housekeeping: {exc}", file=sys.stderr)
        return 2
    setup_logging(SERVICE, settings.log_level)
    if settings.database_password:
        register_secret(settings.database_password.get_secret_value())
    if args.once:
        run_once(settings)
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # /healthz: not ready while the last purge could not reach the database (retention silently not running
    # for months is what this service exists to prevent).
    last_error: list[str | None] = [None]
    health = start_health_server(
        settings.health_port,
        CollectorRegistry(),
        lambda: readiness({"database": last_error[0]}),
        settings.health_host,
    )
    wait = settings.retention_first_delay_s
    try:
        while not stop.wait(wait):
            try:
                run_once(settings)
                last_error[0] = None
            except OperationalError as exc:
                last_error[0] = "unavailable, retention postponed"
                log.error("database unavailable; retention postponed", extra={"error": str(exc.orig)})
            wait = settings.retention_interval_s
    finally:
        if health:
            health.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
