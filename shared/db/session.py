"""Engine and sessions for the services that own PostgreSQL tables.

Pool pre-ping replaces connections that died with a PostgreSQL restart before a unit of work gets them; a
unit of work whose connection breaks mid-way fails as a whole (`transaction()` commits all or nothing), and
the services' run loops run it again later (`is_disconnect` names the errors worth that).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import Field, SecretStr, field_validator
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")


class DatabaseSettings(Settings):
    """DATABASE_URL is required: a service must never quietly fall back to some local database."""

    database_url: str = Field(description="postgresql://user@host:5432/db (password via DATABASE_PASSWORD[_FILE])")
    database_password: SecretStr | None = None
    database_pool_size: int = Field(default=3, ge=1, le=50)
    database_connect_timeout_s: int = Field(default=5, ge=1, le=120)

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v.strip())
        has_host = bool(parts.hostname) or "host=" in parts.query  # ?host=/run/postgresql for a unix socket
        if parts.scheme not in _SCHEMES or not has_host or not parts.path.strip("/"):
            raise ValueError("must look like postgresql://user@host:5432/dbname (driver psycopg2)")
        return v.strip()

    def sqlalchemy_url(self) -> str:
        return sqlalchemy_url(
            self.database_url, self.database_password.get_secret_value() if self.database_password else None
        )

    def make_engine(self, application_name: str | None = None) -> Engine:
        return make_engine(
            self.sqlalchemy_url(),
            pool_size=self.database_pool_size,
            connect_timeout_s=self.database_connect_timeout_s,
            application_name=application_name,
        )


def sqlalchemy_url(url: str, password: str | None = None) -> str:
    """Normalise postgresql:// / postgres:// to the psycopg2 driver and splice in a password kept outside the
    URL (a secret file), quoted so characters like @ : / survive."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if password and parts.username and "@" in netloc:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{urllib.parse.quote(parts.username)}:{urllib.parse.quote(password, safe='')}@{host}"
    return urllib.parse.urlunsplit(("postgresql+psycopg2", netloc, parts.path, parts.query, parts.fragment))


def make_engine(
    url: str, *, pool_size: int = 3, connect_timeout_s: int = 5, application_name: str | None = None
) -> Engine:
    connect_args: dict[str, object] = {"connect_timeout": connect_timeout_s}
    if application_name:
        connect_args["application_name"] = application_name  # shows in pg_stat_activity
    return create_engine(
        sqlalchemy_url(url) if url.startswith(("postgresql://", "postgres://")) else url,
        pool_pre_ping=True,  # a restart of PostgreSQL costs one ping, not a failed unit of work
        pool_size=pool_size,
        max_overflow=2,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows stay readable after commit: services publish MQTT events from them once committed.
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error (every multi-row change is one of these)."""
    with factory() as session, session.begin():
        yield session


def is_disconnect(exc: BaseException) -> bool:
    """Errors worth running the unit of work again for: the connection broke or could not be made
    (OperationalError covers a restart, refused connections, deadlocks and serialization failures)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
