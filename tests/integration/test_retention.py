"""Retention (issue 13, defect 9) against a real PostgreSQL: what is old and finished goes, the rest stays."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal

import sqlalchemy as sa

from services.housekeeping.retention import RetentionPolicy, purge
from shared.db.migrate import upgrade
from shared.db.models import AuditEvent, EquipmentFailure, MoHistory
from shared.db.session import make_engine, make_session_factory, transaction

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _failure(event_id: str, age_days: int, *, reported: bool, attention: bool = False) -> EquipmentFailure:
    at = NOW - dt.timedelta(days=age_days)
    return EquipmentFailure(
        event_id=event_id,
        equipment_code="silo101",
        description="motor overload",
        plc_time_local=at.replace(tzinfo=None),
        plc_timezone="UTC",
        plc_time_utc=at,
        received_at=at,
        acked_at=at,
        reported_at=at if reported else None,
        odoo_record_id=1 if reported else None,
        attention_reason="unknown equipment" if attention else None,
        attention_at=at if attention else None,
    )


def _history(mo_id: str, age_days: int) -> MoHistory:
    return MoHistory(
        mo_id=mo_id,
        finished_goods="JF 01",
        bom_name="JF 01",
        consumption=Decimal("1000"),
        status="completed",
        archived_at=NOW - dt.timedelta(days=age_days),
    )


def _seed(database_url: str) -> sa.Engine:
    upgrade(database_url)
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as s:
        s.add_all(
            [AuditEvent(actor="test", action="queued", at=NOW - dt.timedelta(days=d)) for d in (1, 179, 181, 400)]
        )
        s.add_all(
            [
                _failure("new-reported", 10, reported=True),
                _failure("old-reported", 800, reported=True),
                _failure("old-unreported", 800, reported=False),
                _failure("old-parked", 800, reported=True, attention=True),
            ]
        )
        s.add_all([_history("WH/MO/1", 10), _history("WH/MO/2", 5000)])
    return engine


def _left(engine: sa.Engine) -> tuple[list[int], list[str], list[str]]:
    with engine.connect() as c:
        ages = [
            round((NOW - at).total_seconds() / 86400)
            for at in c.execute(sa.select(AuditEvent.at).order_by(AuditEvent.at.desc())).scalars()
        ]
        failures = sorted(c.execute(sa.select(EquipmentFailure.event_id)).scalars())
        histories = sorted(c.execute(sa.select(MoHistory.mo_id)).scalars())
    return ages, failures, histories


def test_defaults_delete_old_audit_and_finished_failures_and_keep_history(database_url: str) -> None:
    engine = _seed(database_url)
    try:
        deleted = purge(engine, RetentionPolicy(), NOW)
        assert deleted == {"audit_event": 2, "equipment_failure": 1, "mo_histories": 0}
        ages, failures, histories = _left(engine)
        assert ages == [1, 179]
        # unreported and parked failures are still work, whatever their age
        assert failures == ["new-reported", "old-parked", "old-unreported"]
        assert histories == ["WH/MO/1", "WH/MO/2"]
        # a second run finds nothing more: idempotent
        assert purge(engine, RetentionPolicy(), NOW) == {
            "audit_event": 0,
            "equipment_failure": 0,
            "mo_histories": 0,
        }
    finally:
        engine.dispose()


def test_zero_keeps_everything_and_history_retention_is_opt_in(database_url: str) -> None:
    engine = _seed(database_url)
    try:
        assert purge(engine, RetentionPolicy(0, 0, 0), NOW) == {
            "audit_event": 0, "equipment_failure": 0, "mo_histories": 0}  # fmt: skip
        assert purge(engine, RetentionPolicy(0, 0, 365), NOW)["mo_histories"] == 1
        assert _left(engine)[2] == ["WH/MO/1"]
    finally:
        engine.dispose()


def test_the_service_entry_point_runs_one_purge_with_the_configured_days(database_url: str) -> None:
    engine = _seed(database_url)
    try:
        env = {**os.environ, "DATABASE_URL": database_url, "AUDIT_RETENTION_DAYS": "100"}
        done = subprocess.run(
            [sys.executable, "-m", "services.housekeeping", "--once"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # wall-clock now, not NOW: every seeded audit row older than 100 days before today is gone
        ages = [round((dt.datetime.now(dt.UTC) - at).days) for at in _audit_times(engine)]
        assert ages and all(age <= 100 for age in ages)
        assert '"retention applied"' in done.stdout or "retention applied" in done.stdout + done.stderr
    finally:
        engine.dispose()


def _audit_times(engine: sa.Engine) -> list[dt.datetime]:
    with engine.connect() as c:
        return list(c.execute(sa.select(AuditEvent.at)).scalars())


def test_the_service_is_not_ready_while_the_database_is_away() -> None:
    """Retention that silently stops for months is what the service must not do: /healthz says so."""
    import json
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{closed}/none",
        "HEALTH_PORT": str(port),
        "HEALTH_HOST": "127.0.0.1",
        "RETENTION_FIRST_DELAY_S": "0",
        "DATABASE_CONNECT_TIMEOUT_S": "1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "services.housekeeping"], env=env, stdout=subprocess.DEVNULL)
    body: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not body.get("problems"):
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
            except urllib.error.HTTPError as exc:
                body = json.loads(exc.read())
            except OSError:
                pass
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert body.get("healthy") is False and body.get("problems") == ["database: unavailable"]
