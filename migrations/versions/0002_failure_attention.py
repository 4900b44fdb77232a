"""failure events Odoo can never accept are parked for a person

equipment_failure.attention_reason: set when an event cannot be reported as it is (an equipment code that is
not in the memory map's list, an empty description, or a refusal by Odoo). Such a row is stored and
acknowledged on the PLC like any other (nothing is lost, the PLC's failure channel moves on), but the
reporter skips it until an operator retries it.

Revision ID: 0002_failure_attention
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_failure_attention"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("equipment_failure", sa.Column("attention_reason", sa.Text(), nullable=True))
    op.add_column("equipment_failure", sa.Column("attention_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "attention_has_time",
        "equipment_failure",
        "(attention_reason IS NULL) = (attention_at IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint("attention_has_time", "equipment_failure", type_="check")
    op.drop_column("equipment_failure", "attention_at")
    op.drop_column("equipment_failure", "attention_reason")
