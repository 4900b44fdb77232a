"""Migrations against the machine's real PostgreSQL: the real `alembic` command, a full round trip, and the
models and migrations describing the same schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shared.db.migrate import current_revision, downgrade, schema_diffs, upgrade
from shared.db.models import Base
from tests.support.servers import fresh_database

REPO = Path(__file__).resolve().parents[2]
ALEMBIC = str(Path(sys.executable).parent / "alembic")
TABLES = {"mo_batch", "mo_histories", "equipment_failure", "manual_weighing", "audit_event"}


def alembic(*args: str, url: str | None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    if url is not None:
        env["DATABASE_URL"] = url.replace("postgresql+psycopg2://", "postgresql://")  # as an integrator writes it
    return subprocess.run([ALEMBIC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _objects(url: str) -> dict[str, set[str]]:
    """Everything of ours in the public schema: tables, sequences, functions, triggers, user types."""
    engine = sa.create_engine(url)
    queries = {
        "tables": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        "sequences": "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'",
        "functions": "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public'",
        "triggers": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
        "types": "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0",
        "indexes": "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'",
    }
    with engine.connect() as conn:
        out = {k: set(conn.scalars(sa.text(q))) for k, q in queries.items()}
    engine.dispose()
    return out


def test_alembic_command_upgrades_an_empty_database_and_downgrades_to_nothing(database_url: str) -> None:
    up = alembic("upgrade", "head", url=database_url)
    assert up.returncode == 0, up.stderr
    objs = _objects(database_url)
    assert objs["tables"] == TABLES | {"alembic_version"}
    assert {"mo_batch_not_completed", "mo_histories_lock_mo"} <= objs["triggers"]
    assert {"uq_mo_batch_mo_id", "uq_mo_histories_completed_mo_id", "ix_mo_batch_state"} <= objs["indexes"]
    heads = alembic("heads", url=database_url)
    assert heads.returncode == 0 and len(heads.stdout.split("\n")[0].split()) >= 1, heads.stderr
    assert len(heads.stdout.strip().splitlines()) == 1, f"one head expected: {heads.stdout}"
    assert current_revision(database_url) == heads.stdout.split()[0]

    again = alembic("upgrade", "head", url=database_url)  # a second run is a no-op (compose re-runs it)
    assert again.returncode == 0, again.stderr

    down = alembic("downgrade", "base", url=database_url)
    assert down.returncode == 0, down.stderr
    assert _objects(database_url) == {
        "tables": {"alembic_version"},
        "sequences": set(),
        "functions": set(),
        "triggers": set(),
        "types": set(),
        "indexes": {"alembic_version_pkc"},
    }
    assert current_revision(database_url) is None


def test_alembic_works_from_another_directory(database_url: str, tmp_path: Path) -> None:
    run = alembic("-c", str(REPO / "alembic.ini"), "upgrade", "head", url=database_url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _objects(database_url)["tables"] >= TABLES


def test_alembic_without_database_url_says_what_to_set(tmp_path: Path) -> None:
    run = alembic("-c", str(REPO / "alembic.ini"), "upgrade", "head", url=None, cwd=tmp_path)
    assert run.returncode != 0
    assert "DATABASE_URL" in run.stderr and "Traceback" not in run.stderr


def test_offline_sql_renders(database_url: str) -> None:
    run = alembic("upgrade", "head", "--sql", url=database_url)
    assert run.returncode == 0, run.stderr
    assert "CREATE TABLE mo_batch" in run.stdout and "CREATE TRIGGER mo_batch_not_completed" in run.stdout


def test_models_and_migrations_agree_for_autogenerate(database_url: str) -> None:
    upgrade(database_url)
    assert schema_diffs(database_url) == []


def _describe(url: str) -> dict[str, Any]:
    """The schema as PostgreSQL reports it (normalised by the server, so two sources compare exactly)."""
    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(TABLES):
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(table)
            ],
            "checks": sorted((c["name"], c["sqltext"]) for c in insp.get_check_constraints(table)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"], str(i.get("dialect_options", {})))
                for i in insp.get_indexes(table)
            ),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
            "pk": insp.get_pk_constraint(table),
        }
    engine.dispose()
    return out


def test_models_and_migrations_agree_exactly(database_url: str) -> None:
    """Autogenerate ignores CHECK constraints and partial-index predicates; compare the servers' own view of a
    migrated database with one built from the models (create_all), column order included."""
    upgrade(database_url)
    with fresh_database() as other:
        engine = sa.create_engine(other)
        Base.metadata.create_all(engine)
        engine.dispose()
        from_models = _describe(other)
    assert _describe(database_url) == from_models


def test_downgrade_then_upgrade_again(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url)
    upgrade(database_url)
    assert schema_diffs(database_url) == []
