"""Database settings (URL validation and normalisation, secrets from files) and the retry policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.pool import QueuePool

from shared.config import ConfigError, load
from shared.db.session import DatabaseSettings, is_disconnect, make_engine, sqlalchemy_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DATABASE_URL", "DATABASE_PASSWORD", "DATABASE_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_database_url_is_required() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load(DatabaseSettings)


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "postgresql+asyncpg://u@h/db", "postgresql://u@h", "postgresql:///db", "h:5432/db"],
)
def test_bad_urls_are_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load(DatabaseSettings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://svc@db:5432/plant", "postgresql+psycopg2://svc@db:5432/plant"),
        ("postgres://svc@db/plant", "postgresql+psycopg2://svc@db/plant"),
        (
            "postgresql+psycopg2://svc@db/plant?sslmode=require",
            "postgresql+psycopg2://svc@db/plant?sslmode=require",
        ),
    ],
)
def test_urls_are_normalised_to_psycopg2(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert load(DatabaseSettings).sqlalchemy_url() == expected


def test_password_from_file_is_spliced_in_quoted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("p@ss:w/rd\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc@db:5432/plant")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret))
    settings: DatabaseSettings = load(DatabaseSettings)
    assert settings.sqlalchemy_url() == "postgresql+psycopg2://svc:p%40ss%3Aw%2Frd@db:5432/plant"
    assert "p@ss" not in repr(settings)


def test_password_in_the_url_is_kept_when_none_is_given() -> None:
    assert sqlalchemy_url("postgresql://svc:pw@db/plant") == "postgresql+psycopg2://svc:pw@db/plant"


def test_engine_uses_psycopg2_and_pre_ping() -> None:
    engine = make_engine("postgresql://svc@db:5432/plant", pool_size=2, application_name="odoo_sync")
    assert engine.dialect.driver == "psycopg2" and engine.pool._pre_ping
    assert isinstance(engine.pool, QueuePool) and engine.pool.size() == 2
    engine.dispose()


def _operational() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def test_what_counts_as_a_disconnect() -> None:
    assert is_disconnect(_operational())
    assert is_disconnect(InterfaceError("SELECT 1", {}, Exception("connection already closed")))
    assert not is_disconnect(IntegrityError("INSERT", {}, Exception("dup")))
    assert not is_disconnect(ValueError("x"))
