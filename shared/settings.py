"""Settings every service shares (same variable names in compose, supervisord and tests).

Kept apart from the worker base (shared/service.py), which needs SQLAlchemy: plc_gateway uses these settings and
never loads a database driver (about 17 MB of RSS on the edge box).
"""

from __future__ import annotations

import socket

from pydantic import Field, SecretStr, field_validator

from shared.config import Settings
from shared.logging import register_secret
from shared.mqtt.client import BrokerAddress, parse_mqtt_url
from shared.mqtt.topics import Topics


class RuntimeSettings(Settings):
    """What every long-running process has: its /healthz port and its log level."""

    health_port: int = Field(default=0, ge=0, le=65535, description="0 = /healthz and /metrics off")
    health_host: str = "0.0.0.0"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return v.upper()


class ServiceSettings(RuntimeSettings):
    """A service on the broker."""

    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://user:pass@host:port")
    mqtt_password: SecretStr | None = Field(default=None, description="overrides the URL's password (or _FILE)")
    mqtt_client_id: str | None = Field(default=None, description="default: <service>-<hostname>")
    mqtt_topic_root: str = "scada/plc01"

    @field_validator("mqtt_topic_root")
    @classmethod
    def _root(cls, v: str) -> str:
        Topics(v)  # raises with a clear message
        return v

    @property
    def topics(self) -> Topics:
        return Topics(self.mqtt_topic_root)

    def client_id(self, service: str) -> str:
        return self.mqtt_client_id or f"{service}-{socket.gethostname()}"

    def broker(self) -> BrokerAddress:
        """The broker address with its password (from MQTT_PASSWORD[_FILE] or the URL), masked in logs."""
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else None
        address = parse_mqtt_url(self.mqtt_url, password)
        register_secret(address.password)
        return address
