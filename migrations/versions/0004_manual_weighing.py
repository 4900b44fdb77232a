"""manual_weighing: hand-weighed additives, stored before the PLC item is acknowledged, reported once

One row per weighing. `event_id` is the gateway's content id; a partial unique index allows one
unacknowledged row per id (a re-delivered snapshot is the same weighing; after the ack the same content is a
new weighing). `odoo_before_kg` is the MO's consumption of the product read before the first post, so that a
post of unknown outcome is decided from Odoo's state instead of being replayed (add mode double-counts).

Revision ID: 0004_manual_weighing
Revises: 0003_result_fingerprint
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_manual_weighing"
down_revision = "0003_result_fingerprint"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "manual_weighing",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("mo_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("kg", sa.Numeric(12, 2), nullable=False),
        sa.Column("received_at", _ts(), server_default=sa.text("now()"), nullable=False),
        sa.Column("acked_at", _ts(), nullable=True),
        sa.Column("ack_code", sa.String(32), nullable=True),
        sa.Column("odoo_before_kg", sa.Numeric(12, 2), nullable=True),
        sa.Column("reported_at", _ts(), nullable=True),
        sa.Column("applied_kg", sa.Numeric(12, 2), nullable=True),
        sa.Column("report_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("outcome_unknown", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.Column("attention_reason", sa.Text(), nullable=True),
        sa.Column("attention_at", _ts(), nullable=True),
        sa.CheckConstraint("kg > 0", name=op.f("ck_manual_weighing_kg_positive")),
        sa.CheckConstraint("item >= 1", name=op.f("ck_manual_weighing_item")),
        sa.CheckConstraint("product_id > 0", name=op.f("ck_manual_weighing_product_id")),
        sa.CheckConstraint("report_attempts >= 0", name=op.f("ck_manual_weighing_report_attempts")),
        sa.CheckConstraint(
            "reported_at IS NULL OR applied_kg IS NOT NULL", name=op.f("ck_manual_weighing_reported_has_applied")
        ),
        sa.CheckConstraint(
            "reported_at IS NULL OR acked_at IS NOT NULL", name=op.f("ck_manual_weighing_reported_after_ack")
        ),
        sa.CheckConstraint(
            "(attention_reason IS NULL) = (attention_at IS NULL)", name=op.f("ck_manual_weighing_attention_has_time")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_weighing")),
    )
    op.create_index(
        "uq_manual_weighing_unacked_event_id",
        "manual_weighing",
        ["event_id"],
        unique=True,
        postgresql_where=sa.text("acked_at IS NULL"),
    )
    op.create_index(
        "ix_manual_weighing_unreported",
        "manual_weighing",
        ["next_attempt_at"],
        postgresql_where=sa.text("reported_at IS NULL"),
    )
    op.create_index("ix_manual_weighing_mo_id", "manual_weighing", ["mo_id"])


def downgrade() -> None:
    op.drop_table("manual_weighing")
