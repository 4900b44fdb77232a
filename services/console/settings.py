"""console configuration (env / .env), validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from shared.db.session import DatabaseSettings, sqlalchemy_url
from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings, DatabaseSettings):
    # Loopback by default: exposing the console is a deliberate act (compose publishes it, a reverse proxy
    # with TLS in front is the plant's call).
    console_host: str = Field(default="127.0.0.1", description="address the web server binds to")
    console_port: int = Field(default=8090, ge=1, le=65535)
    console_users_file: Path = Field(description="name:role:hash lines, written by console-users")
    console_secret_key: SecretStr = Field(description="signs session cookies and CSRF tokens (>= 32 chars)")
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Set true when the console is served over HTTPS (behind a proxy): the browser then never sends the
    # session cookie in clear text.
    console_cookie_secure: bool = False
    console_login_limit: int = Field(
        default=5, ge=1, description="failed logins per window, per address and login"
    )
    console_login_window_s: float = Field(default=300.0, gt=0)
    console_page_size: int = Field(default=50, ge=5, le=500)
    # Operator actions write; every page only reads. DATABASE_URL is meant to be a read-only role (the demo
    # creates `console_ro`); actions use this one (the writing role) when set, else DATABASE_URL.
    console_action_database_url: str | None = None
    console_action_database_password: SecretStr | None = None

    @field_validator("console_secret_key")
    @classmethod
    def _long_key(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. secrets.token_urlsafe(32))")
        return v

    def action_sqlalchemy_url(self) -> str:
        if not self.console_action_database_url:
            return self.sqlalchemy_url()
        password = self.console_action_database_password
        return sqlalchemy_url(self.console_action_database_url, password.get_secret_value() if password else None)

    def secrets(self) -> list[str]:
        out = [self.console_secret_key.get_secret_value()]
        for value in (self.database_password, self.console_action_database_password, self.mqtt_password):
            if value is not None:
                out.append(value.get_secret_value())
        return out
