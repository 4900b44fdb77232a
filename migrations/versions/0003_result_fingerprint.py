"""the stored result's fingerprint, named by every ack_slot

mo_batch.result_fingerprint / mo_histories.result_fingerprint: shared/plc/fingerprint.py of the READ slot words
stored as a batch's final result. The planner acknowledges a READ slot only with this value and the gateway
refuses the ack when the slot holds anything else; a row ended without a stored result has NULL and is never
acknowledged on its own (an operator decides).

Revision ID: 0003_result_fingerprint
Revises: 0002_failure_attention
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_result_fingerprint"
down_revision = "0002_failure_attention"
branch_labels = None
depends_on = None

TABLES = ("mo_batch", "mo_histories")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("result_fingerprint", sa.String(16), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "result_fingerprint")
