"""Alembic environment: the URL comes from DATABASE_URL (+ DATABASE_PASSWORD[_FILE]), never from alembic.ini,
so no credentials live in a file under version control. Tests may pass a URL via config.attributes["url"]."""

from __future__ import annotations

import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from shared.config import ConfigError, load
from shared.db.models import Base
from shared.db.session import DatabaseSettings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def database_url() -> str:
    if "url" in config.attributes:
        return str(config.attributes["url"])
    try:
        settings: DatabaseSettings = load(DatabaseSettings)
    except ConfigError as exc:
        sys.exit(
            f"alembic: {exc}\n"
            "Set DATABASE_URL=postgresql://user@host:5432/dbname (password in DATABASE_PASSWORD or "
            "DATABASE_PASSWORD_FILE) and run again."
        )
    return settings.sqlalchemy_url()


def run_offline() -> None:
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
