"""initial schema

mo_batch, mo_histories, equipment_failure, audit_event, and the guard that an MO archived as completed is never
queued again.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Written by hand from the models (autogenerate, then reviewed). Frozen: the lists below are copied, not imported,
so a later change to the models needs its own migration (tests compare models and migrations).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Seed column suffixes: silo101..silo113 -> silo_a..silo_m, lq114 -> lq_tetes, lq115 -> lq_fml.
SUFFIXES = [f"silo_{c}" for c in "abcdefghijklm"] + ["lq_tetes", "lq_fml"]
STATES = ("queued", "written", "accepted", "running", "finished", "reported", "cancelled", "failed", "attention")
ATTENTION_ORIGINS = ("queued", "written", "accepted", "running", "finished", "failed", "reported")
STATUSES = ("completed", "cancelled", "failed")
KG_COLUMNS = (
    "consumption",
    "actual_weight_quantity_finished_goods",
    *(f"consumption_{s}" for s in SUFFIXES),
    *(f"actual_consumption_{s}" for s in SUFFIXES),
)


def _kg() -> sa.Numeric:  # type: ignore[type-arg]
    return sa.Numeric(precision=12, scale=2)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _batch_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    """Columns mo_batch and mo_histories share."""
    cols: list[sa.Column] = [  # type: ignore[type-arg]
        sa.Column("mo_id", sa.String(64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.Column("equipment", sa.String(64), nullable=True),
        sa.Column("finished_goods", sa.String(200), nullable=False),
        sa.Column("bom_name", sa.String(200), nullable=False),
        sa.Column("consumption", _kg(), nullable=False),
        sa.Column("actual_weight_quantity_finished_goods", _kg(), nullable=True),
        sa.Column("status_manufacturing", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status_operation", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("update_odoo", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("odoo_mo", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("write_request_id", sa.String(100), nullable=True),
        sa.Column("sync_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("queued_at", _ts(), server_default=sa.text("now()"), nullable=False),
    ]
    for stamp in ("written", "accepted", "started", "finished", "failed", "acked", "reported", "cancelled"):
        cols.append(sa.Column(f"{stamp}_at", _ts(), nullable=True))
    cols.append(sa.Column("attention_at", _ts(), nullable=True))
    for suffix in SUFFIXES:
        cols.append(sa.Column(f"consumption_{suffix}", _kg(), server_default=sa.text("0"), nullable=False))
        cols.append(sa.Column(f"actual_consumption_{suffix}", _kg(), nullable=True))
    return cols


def _batch_checks(table: str) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint("consumption > 0", name=op.f(f"ck_{table}_quantity_positive")),
        sa.CheckConstraint(" AND ".join(f"{c} >= 0" for c in KG_COLUMNS), name=op.f(f"ck_{table}_kg_non_negative")),
        sa.CheckConstraint("slot IS NULL OR slot BETWEEN 1 AND 99", name=op.f(f"ck_{table}_slot")),
        sa.CheckConstraint("sync_attempts >= 0", name=op.f(f"ck_{table}_sync_attempts")),
    ]


# An MO archived as completed must never be queued again. A unique index cannot span two tables, so a trigger
# checks mo_histories on every insert into mo_batch. Both sides take the same per-MO advisory lock, so a
# queueing that races an archive of the same MO waits for it and then sees the committed history row (a
# VOLATILE plpgsql function takes a fresh snapshot per statement under READ COMMITTED).
GUARD_SQL = """
CREATE FUNCTION mo_lock(mo text) RETURNS void LANGUAGE sql VOLATILE AS
$$ SELECT pg_advisory_xact_lock(hashtext('mo_id:' || mo)) $$;

CREATE FUNCTION mo_batch_not_completed() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM mo_lock(NEW.mo_id);
    IF EXISTS (SELECT 1 FROM mo_histories WHERE mo_id = NEW.mo_id AND status = 'completed') THEN
        RAISE EXCEPTION 'MO % was archived as completed and is never queued again', NEW.mo_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'mo_batch_not_completed';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER mo_batch_not_completed BEFORE INSERT OR UPDATE OF mo_id ON mo_batch
    FOR EACH ROW EXECUTE FUNCTION mo_batch_not_completed();

CREATE FUNCTION mo_histories_lock_mo() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM mo_lock(NEW.mo_id);
    RETURN NEW;
END $$;

CREATE TRIGGER mo_histories_lock_mo BEFORE INSERT OR UPDATE ON mo_histories
    FOR EACH ROW WHEN (NEW.status = 'completed') EXECUTE FUNCTION mo_histories_lock_mo();
"""

DROP_GUARD_SQL = """
DROP TRIGGER IF EXISTS mo_histories_lock_mo ON mo_histories;
DROP FUNCTION IF EXISTS mo_histories_lock_mo();
DROP TRIGGER IF EXISTS mo_batch_not_completed ON mo_batch;
DROP FUNCTION IF EXISTS mo_batch_not_completed();
DROP FUNCTION IF EXISTS mo_lock(text);
"""


def upgrade() -> None:
    op.create_table(
        "mo_batch",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attention_from", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), server_default=sa.text("now()"), nullable=False),
        *_batch_columns(),
        sa.CheckConstraint(_one_of("state", STATES), name=op.f("ck_mo_batch_state")),
        sa.CheckConstraint(
            f"state <> 'attention' OR (attention_from IS NOT NULL AND {_one_of('attention_from', ATTENTION_ORIGINS)})",
            name=op.f("ck_mo_batch_attention_from"),
        ),
        *_batch_checks("mo_batch"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo_batch")),
    )
    op.create_index("uq_mo_batch_mo_id", "mo_batch", ["mo_id"], unique=True)
    op.create_index("ix_mo_batch_state", "mo_batch", ["state", "next_attempt_at"])
    op.create_index("ix_mo_batch_slot", "mo_batch", ["slot", "state"])

    op.create_table(
        "mo_histories",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("archived_at", _ts(), server_default=sa.text("now()"), nullable=False),
        sa.Column("odoo_reply", JSONB(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        *_batch_columns(),
        sa.CheckConstraint(_one_of("status", STATUSES), name=op.f("ck_mo_histories_status")),
        *_batch_checks("mo_histories"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo_histories")),
    )
    op.create_index(
        "uq_mo_histories_completed_mo_id",
        "mo_histories",
        ["mo_id"],
        unique=True,
        postgresql_where=sa.text("status = 'completed'"),
    )
    op.create_index("ix_mo_histories_mo_id", "mo_histories", ["mo_id"])
    op.create_index("ix_mo_histories_archived_at", "mo_histories", ["archived_at"])

    op.create_table(
        "equipment_failure",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("equipment_code", sa.String(32), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("plc_time_local", sa.DateTime(), nullable=False),
        sa.Column("plc_timezone", sa.String(64), nullable=False),
        sa.Column("plc_time_utc", _ts(), nullable=False),
        sa.Column("received_at", _ts(), server_default=sa.text("now()"), nullable=False),
        sa.Column("acked_at", _ts(), nullable=True),
        sa.Column("reported_at", _ts(), nullable=True),
        sa.Column("odoo_record_id", sa.Integer(), nullable=True),
        sa.Column("report_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("outcome_unknown", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.CheckConstraint("report_attempts >= 0", name=op.f("ck_equipment_failure_report_attempts")),
        sa.CheckConstraint(
            "reported_at IS NULL OR odoo_record_id IS NOT NULL", name=op.f("ck_equipment_failure_reported_has_record")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equipment_failure")),
        sa.UniqueConstraint("event_id", name=op.f("uq_equipment_failure_event_id")),
    )
    op.create_index(
        "ix_equipment_failure_unreported",
        "equipment_failure",
        ["next_attempt_at"],
        postgresql_where=sa.text("reported_at IS NULL"),
    )
    op.create_index("ix_equipment_failure_equipment_code", "equipment_failure", ["equipment_code", "plc_time_utc"])

    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", _ts(), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("mo_id", sa.String(64), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("detail", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_mo_id", "audit_event", ["mo_id", "at"])
    op.create_index(
        "ix_audit_event_event_id", "audit_event", ["event_id"], postgresql_where=sa.text("event_id IS NOT NULL")
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])

    op.execute(GUARD_SQL)


def downgrade() -> None:
    op.execute(DROP_GUARD_SQL)
    # Dropping a table drops its indexes, constraints and the BIGSERIAL sequences with it.
    for table in ("audit_event", "equipment_failure", "mo_histories", "mo_batch"):
        op.drop_table(table)
