"""Tables (SQLAlchemy 2.0, typed). Column names keep the seed spec's; additions make the lifecycle explicit.

kg are Numeric(12, 2): the PLC stores kg x 100 as integers, so 0.01 kg is exact here and nothing is lost to
floats (the earlier system's Float columns were). Per silo/tank the seed's names are kept: target
`consumption_<suffix>` and PLC actual `actual_consumption_<suffix>`, suffixes from shared.db.columns.

States and statuses are VARCHAR + CHECK rather than PostgreSQL enum types: a new state is then a one-line
migration that runs inside a transaction (ALTER TYPE ... ADD VALUE cannot, on older servers).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db.batch_state import ATTENTION_EXITS, BatchState, HistoryStatus
from shared.db.columns import ACTUAL_COLUMNS, TARGET_COLUMNS

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Kg = Numeric(12, 2)
TS = DateTime(timezone=True)
BATCH_STATES = tuple(s.value for s in BatchState)
HISTORY_STATUSES = tuple(s.value for s in HistoryStatus)
ATTENTION_ORIGINS = tuple(s.value for s in ATTENTION_EXITS)
EMPTY_JSON = text("'{}'::jsonb")
KG_COLUMNS = ("consumption", "actual_weight_quantity_finished_goods", *TARGET_COLUMNS, *ACTUAL_COLUMNS)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _batch_checks() -> tuple[CheckConstraint, ...]:
    """Checks mo_batch and mo_histories share (fresh objects per table)."""
    return (
        CheckConstraint("consumption > 0", name="quantity_positive"),
        # NULL actuals (not read yet) pass: a CHECK fails only on false.
        CheckConstraint(" AND ".join(f"{c} >= 0" for c in KG_COLUMNS), name="kg_non_negative"),
        CheckConstraint("slot IS NULL OR slot BETWEEN 1 AND 99", name="slot"),
        CheckConstraint("sync_attempts >= 0", name="sync_attempts"),
    )


class _BatchColumns:
    """Columns mo_batch and mo_histories share (the archived row is the batch row as it ended)."""

    mo_id: Mapped[str] = mapped_column(String(64))  # Odoo MO name, e.g. WH/MO/00011
    slot: Mapped[int | None] = mapped_column(Integer)  # PLC slot it was (or will be) written to
    equipment: Mapped[str | None] = mapped_column(String(64))  # MO-level equipment (e.g. PLC01)
    finished_goods: Mapped[str] = mapped_column(String(200))
    bom_name: Mapped[str] = mapped_column(String(200))
    consumption: Mapped[Decimal] = mapped_column(Kg)  # planned quantity (seed name)
    actual_weight_quantity_finished_goods: Mapped[Decimal | None] = mapped_column(Kg)
    status_manufacturing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    status_operation: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    update_odoo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    odoo_mo: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=EMPTY_JSON)
    # The request_id of the write_batch command: kept across resends so the gateway's reply cache makes a
    # resend after a lost reply harmless (never a second write).
    write_request_id: Mapped[str | None] = mapped_column(String(100))
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # shared/plc/fingerprint.py of the READ slot words stored as the final result: ack_slot names it, so the
    # PLC's result is acknowledged only once exactly that result is in the database. Added by migration 0003,
    # so it sorts after every other column, where ALTER TABLE ADD COLUMN puts it.
    result_fingerprint: Mapped[str | None] = mapped_column(String(16), sort_order=1000)
    # One timestamp per state entered (batch_state.TIMESTAMP_COLUMN); acked_at = READ slot acknowledged.
    queued_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    written_at: Mapped[dt.datetime | None] = mapped_column(TS)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(TS)
    started_at: Mapped[dt.datetime | None] = mapped_column(TS)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TS)
    failed_at: Mapped[dt.datetime | None] = mapped_column(TS)
    acked_at: Mapped[dt.datetime | None] = mapped_column(TS)
    reported_at: Mapped[dt.datetime | None] = mapped_column(TS)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(TS)
    attention_at: Mapped[dt.datetime | None] = mapped_column(TS)


# Per silo/tank: target and PLC actual, generated from the one mapping so the names cannot drift.
for _target, _actual in zip(TARGET_COLUMNS, ACTUAL_COLUMNS, strict=True):
    setattr(_BatchColumns, _target, mapped_column(Kg, default=Decimal(0), server_default=text("0")))
    setattr(_BatchColumns, _actual, mapped_column(Kg))
    _BatchColumns.__annotations__[_target] = "Mapped[Decimal]"
    _BatchColumns.__annotations__[_actual] = "Mapped[Decimal | None]"


class MoBatch(_BatchColumns, Base):
    """The active queue: one row per MO from queueing until archived in mo_histories."""

    __tablename__ = "mo_batch"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=BatchState.QUEUED.value)
    attention_from: Mapped[str | None] = mapped_column(String(16))  # the state that went to attention
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(TS)
    updated_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now(), onupdate=func.now())

    __table_args__ = (
        Index("uq_mo_batch_mo_id", "mo_id", unique=True),
        Index("ix_mo_batch_state", "state", "next_attempt_at"),
        Index("ix_mo_batch_slot", "slot", "state"),
        CheckConstraint(_one_of("state", BATCH_STATES), name="state"),
        CheckConstraint(
            f"state <> 'attention' OR (attention_from IS NOT NULL AND {_one_of('attention_from', ATTENTION_ORIGINS)})",
            name="attention_from",
        ),
        *_batch_checks(),
    )


class MoHistory(_BatchColumns, Base):
    """Archived batches. An MO archived as completed is never archived twice (partial unique index) and never
    queued again (trigger mo_batch_not_completed, created by the migration)."""

    __tablename__ = "mo_histories"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    archived_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    odoo_reply: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # summary of Odoo's answer
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "uq_mo_histories_completed_mo_id", "mo_id", unique=True, postgresql_where=text("status = 'completed'")
        ),
        Index("ix_mo_histories_mo_id", "mo_id"),
        Index("ix_mo_histories_archived_at", "archived_at"),
        CheckConstraint(_one_of("status", HISTORY_STATUSES), name="status"),
        *_batch_checks(),
    )


class EquipmentFailure(Base):
    """Failure events from the PLC's failure area, stored before they are acknowledged (unique event_id makes
    a re-delivery harmless), then reported to Odoo with retry."""

    __tablename__ = "equipment_failure"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # stable hash of code, text and time
    equipment_code: Mapped[str] = mapped_column(String(32))  # as the PLC wrote it, e.g. silo101
    description: Mapped[str] = mapped_column(String(200))  # the PLC's INFO text
    plc_time_local: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))  # plant wall clock, naive
    plc_timezone: Mapped[str] = mapped_column(String(64))  # IANA name used to convert, e.g. Asia/Jakarta
    plc_time_utc: Mapped[dt.datetime] = mapped_column(TS)
    received_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    acked_at: Mapped[dt.datetime | None] = mapped_column(TS)
    reported_at: Mapped[dt.datetime | None] = mapped_column(TS)
    odoo_record_id: Mapped[int | None] = mapped_column(Integer)
    report_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Failure reports are not idempotent in Odoo: after an unknown outcome, query before posting again.
    outcome_unknown: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(TS)
    # Parked for a person: an event Odoo can never accept as it is (unknown equipment, empty text, a refusal).
    # Stored and acknowledged like any other; the reporter skips it until an operator retries it.
    attention_reason: Mapped[str | None] = mapped_column(Text)
    attention_at: Mapped[dt.datetime | None] = mapped_column(TS)

    __table_args__ = (
        Index("ix_equipment_failure_unreported", "next_attempt_at", postgresql_where=text("reported_at IS NULL")),
        Index("ix_equipment_failure_equipment_code", "equipment_code", "plc_time_utc"),
        CheckConstraint("report_attempts >= 0", name="report_attempts"),
        CheckConstraint("reported_at IS NULL OR odoo_record_id IS NOT NULL", name="reported_has_record"),
        CheckConstraint("(attention_reason IS NULL) = (attention_at IS NULL)", name="attention_has_time"),
    )


class ManualWeighing(Base):
    """Hand-weighed additives from the PLC's manual-weighing area (D9000-D9048), stored before the item is
    acknowledged, then reported to Odoo's material-consumption exactly once.

    Identity: the PLC has no weighing number, so `event_id` is the gateway's content id (item, header, product,
    kg). A stored row that is not yet acknowledged and has the same event_id is the same weighing (re-delivered
    snapshot); once acknowledged, the same content again is a new weighing (the operator weighed the same
    again). The partial unique index makes that rule the database's: at most one unacknowledged row per id."""

    __tablename__ = "manual_weighing"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    item: Mapped[int] = mapped_column(Integer)  # 1..10
    batch: Mapped[int] = mapped_column(Integer)  # the header's batch word
    mo_id: Mapped[str] = mapped_column(String(64))  # the header's MO name
    product_id: Mapped[int] = mapped_column(Integer)  # Odoo product.product id
    kg: Mapped[Decimal] = mapped_column(Kg)
    received_at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    acked_at: Mapped[dt.datetime | None] = mapped_column(TS)
    ack_code: Mapped[str | None] = mapped_column(String(32))  # acked, already_acked, seen_on_plc, gone_from_plc
    # The MO's consumption of the product in Odoo, read before the first post: decides an unknown outcome.
    odoo_before_kg: Mapped[Decimal | None] = mapped_column(Kg)
    reported_at: Mapped[dt.datetime | None] = mapped_column(TS)
    applied_kg: Mapped[Decimal | None] = mapped_column(Kg)  # what Odoo booked (may be less than kg)
    report_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    outcome_unknown: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(TS)
    attention_reason: Mapped[str | None] = mapped_column(Text)
    attention_at: Mapped[dt.datetime | None] = mapped_column(TS)

    __table_args__ = (
        Index(
            "uq_manual_weighing_unacked_event_id",
            "event_id",
            unique=True,
            postgresql_where=text("acked_at IS NULL"),
        ),
        Index("ix_manual_weighing_unreported", "next_attempt_at", postgresql_where=text("reported_at IS NULL")),
        Index("ix_manual_weighing_mo_id", "mo_id"),
        CheckConstraint("kg > 0", name="kg_positive"),
        CheckConstraint("item >= 1", name="item"),
        CheckConstraint("product_id > 0", name="product_id"),
        CheckConstraint("report_attempts >= 0", name="report_attempts"),
        CheckConstraint("reported_at IS NULL OR applied_kg IS NOT NULL", name="reported_has_applied"),
        CheckConstraint("reported_at IS NULL OR acked_at IS NOT NULL", name="reported_after_ack"),
        CheckConstraint("(attention_reason IS NULL) = (attention_at IS NULL)", name="attention_has_time"),
    )


class AuditEvent(Base):
    """One row per state transition and operator action (logs go to stdout, not here)."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TS, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(64))  # service name or operator:<name>
    mo_id: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))  # transition, queued, archived, ack_slot, arm, ...
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=EMPTY_JSON)

    __table_args__ = (
        Index("ix_audit_event_mo_id", "mo_id", "at"),
        Index("ix_audit_event_event_id", "event_id", postgresql_where=text("event_id IS NOT NULL")),
        Index("ix_audit_event_at", "at"),
    )
