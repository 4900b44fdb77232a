"""Settings every service shares (same variable names in compose, supervisord and tests)."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import Field, SecretStr, field_validator

from shared.config import ConfigError, Settings, load
from shared.logging import register_secret, setup_logging
from shared.mqtt.client import BrokerAddress, parse_mqtt_url
from shared.mqtt.topics import Topics


class ServiceSettings(Settings):
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://user:pass@host:port")
    mqtt_password: SecretStr | None = Field(default=None, description="overrides the URL's password (or _FILE)")
    mqtt_client_id: str | None = Field(default=None, description="default: <service>-<hostname>")
    mqtt_topic_root: str = "scada/plc01"
    health_port: int = Field(default=0, ge=0, le=65535, description="0 = /healthz and /metrics off")
    health_host: str = "0.0.0.0"
    log_level: str = "INFO"

    @field_validator("mqtt_topic_root")
    @classmethod
    def _root(cls, v: str) -> str:
        Topics(v)  # raises with a clear message
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return v.upper()

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


class ThreadedService(Protocol):
    def run(self, stop: threading.Event) -> None: ...


S = TypeVar("S", bound=ServiceSettings)


def run_threaded_service(
    name: str,
    settings_cls: type[S],
    build: Callable[[S], ThreadedService],
    secrets: Callable[[S], list[str]] = lambda s: [],
) -> None:
    """Console-script main of a worker service: validate config (exit 2 with a clear message), JSON logs,
    SIGTERM/SIGINT -> graceful stop."""
    try:
        settings: S = load(settings_cls)
        setup_logging(name, settings.log_level)
        for secret in secrets(settings):
            register_secret(secret)
        service = build(settings)
    except ConfigError as exc:
        print(f"{name.replace('_', '-')}: {exc}", file=sys.stderr)
        sys.exit(2)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.run(stop)
