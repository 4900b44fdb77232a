"""Configuration basics shared by every process: env vars, `.env`, and secrets from `*_FILE` files.

Each service declares its own pydantic-settings class built from these parts, so a wrong value stops the
process at start-up with a message that names the variable (config validated up front).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """Configuration is wrong; the message names the setting and what is expected."""


def read_secret_file(path: str, variable: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read secret file {path!r}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{variable}: secret file {path!r} is empty")
    return value


class Settings(BaseSettings):
    """Base for every settings class: env + `.env`, unknown variables ignored, `X_FILE` fills secret `X`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            if field.annotation not in (SecretStr, SecretStr | None):
                continue
            env_name = name.upper()
            file_var = f"{env_name}_FILE"
            path = os.environ.get(file_var)
            if path and not data.get(name) and not data.get(env_name):
                data[name] = read_secret_file(path, file_var)
        return data


def load(settings_cls: type[Settings], **overrides: Any) -> Any:
    """Instantiate settings, turning pydantic's validation error into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"{loc.upper()}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
