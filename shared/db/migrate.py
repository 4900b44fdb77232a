"""Alembic from Python (tests, tools): the same migrations `alembic upgrade head` runs from the repo root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from shared.db.models import Base
from shared.db.session import sqlalchemy_url

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["url"] = sqlalchemy_url(url) if url.startswith(("postgresql://", "postgres://")) else url
    config.attributes["configure_logger"] = False  # leave the caller's logging alone
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = sa.create_engine(alembic_config(url).attributes["url"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_diffs(url: str) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] = they agree)."""
    engine = sa.create_engine(alembic_config(url).attributes["url"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()
