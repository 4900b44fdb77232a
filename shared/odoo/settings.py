"""Settings of the Odoo client: ODOO_* environment variables (or ``.env``); the password may come from
``ODOO_PASSWORD_FILE``. The password is a SecretStr: it is never printed, logged or put in a repr."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from shared.config import Settings


class OdooSettings(Settings):
    """Field ``odoo_x`` reads env ``ODOO_X`` (no env prefix: the base class then maps ``ODOO_PASSWORD_FILE``)."""

    odoo_url: str = Field(description="Base URL, e.g. https://odoo.example.com (no trailing path)")
    odoo_db: str = Field(min_length=1)
    odoo_login: str = Field(min_length=1)
    odoo_password: SecretStr

    odoo_connect_timeout: float = Field(default=5.0, gt=0)
    odoo_read_timeout: float = Field(default=30.0, gt=0)
    # TLS is verified by default; a private CA bundle can be given instead of switching verification off.
    odoo_verify_tls: bool = True
    odoo_ca_bundle: Path | None = None

    # Login back-off: Odoo locks an IP for 60 s after 5 failed logins (docs/odoo-api.md O1.3, O7.3).
    odoo_login_backoff_base: float = Field(default=1.0, ge=0)
    odoo_login_max_failures: int = Field(default=5, ge=1)
    odoo_login_cooldown: float = Field(default=60.0, ge=0)

    @field_validator("odoo_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("odoo_ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {value} is not a readable file")
        return value

    @property
    def tls_verify(self) -> bool | str:
        """The value for requests' ``verify``."""
        if not self.odoo_verify_tls:
            return False
        return str(self.odoo_ca_bundle) if self.odoo_ca_bundle else True
