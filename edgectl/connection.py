"""Where edgectl finds the broker, the database and the topic root.

Precedence, highest first: command-line flags (--mqtt-url, --database-url, --topic-root), environment
variables (MQTT_URL, MQTT_PASSWORD / MQTT_PASSWORD_FILE, DATABASE_URL, DATABASE_PASSWORD / DATABASE_PASSWORD_FILE,
MQTT_TOPIC_ROOT), then the connection file: $EDGECTL_CONFIG if set, else ~/.config/edgectl/connection.env.

The file holds KEY=VALUE lines with the same keys as the environment (blank lines, `# comments`, an `export `
prefix and quotes around values are accepted). The demo writes it so that `edgectl` finds a running demo without
flags. Passwords are never printed: `describe()` shows URLs with `***`.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from edgectl.errors import UsageError
from shared.config import ConfigError, read_secret_file
from shared.mqtt.client import BrokerAddress, parse_mqtt_url
from shared.mqtt.topics import Topics

DEFAULT_FILE = Path("~/.config/edgectl/connection.env")
DEFAULT_ROOT = "scada/plc01"
KEYS = (
    "MQTT_URL",
    "MQTT_PASSWORD",
    "MQTT_PASSWORD_FILE",
    "MQTT_TOPIC_ROOT",
    "DATABASE_URL",
    "DATABASE_PASSWORD",
    "DATABASE_PASSWORD_FILE",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (override env vars and the connection file)")
    group.add_argument("--mqtt-url", help="mqtt://user@host:1883 (password: MQTT_PASSWORD[_FILE])")
    group.add_argument(
        "--database-url", help="postgresql://user@host:5432/db (password: DATABASE_PASSWORD[_FILE])"
    )
    group.add_argument("--topic-root", help=f"MQTT topic root (default {DEFAULT_ROOT})")


def config_path() -> tuple[Path, bool]:
    """The connection file and whether it was asked for explicitly (then it must exist)."""
    explicit = os.environ.get("EDGECTL_CONFIG")
    if explicit:
        return Path(explicit).expanduser(), True
    return DEFAULT_FILE.expanduser(), False


def parse_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise UsageError(f"{path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _read_file() -> dict[str, str]:
    path, explicit = config_path()
    if not path.exists():
        if explicit:
            raise UsageError(f"EDGECTL_CONFIG={path}: no such file")
        return {}
    try:
        values = parse_file(path)
    except OSError as exc:
        raise UsageError(f"cannot read connection file {path}: {exc.strerror}") from None
    # A readable-by-all file with a password in it is worth a warning, not a refusal (it is the operator's box).
    if any(k.endswith("PASSWORD") and values.get(k) for k in values) and path.stat().st_mode & (
        stat.S_IRGRP | stat.S_IROTH
    ):
        print(f"edgectl: warning: {path} holds a password and is readable by others (chmod 600)", file=sys.stderr)
    return values


def _secret(layers: list[dict[str, str]], name: str) -> str | None:
    """NAME, else the file named by NAME_FILE, from the first layer that has either."""
    for layer in layers:
        if layer.get(name):
            return layer[name]
        if layer.get(f"{name}_FILE"):
            try:
                return read_secret_file(layer[f"{name}_FILE"], f"{name}_FILE")
            except ConfigError as exc:
                raise UsageError(str(exc)) from None
    return None


@dataclass(frozen=True)
class Connection:
    mqtt_url: str | None
    database_url: str | None
    topics: Topics
    # Passwords are resolved only when a command connects, so a command that needs only the database does not
    # fail on an unreadable MQTT password file.
    layers: tuple[dict[str, str], ...] = ()

    def broker(self) -> BrokerAddress:
        if not self.mqtt_url:
            raise UsageError("no broker configured: set --mqtt-url, MQTT_URL or the connection file")
        try:
            parts = urllib.parse.urlsplit(self.mqtt_url)
            # A password inside the URL wins over MQTT_PASSWORD (they were given together).
            return parse_mqtt_url(
                self.mqtt_url, None if parts.password else _secret(list(self.layers), "MQTT_PASSWORD")
            )
        except (ConfigError, ValueError) as exc:
            raise UsageError(str(exc)) from None

    def sqlalchemy_url(self) -> str:
        from shared.db.session import sqlalchemy_url

        if not self.database_url:
            raise UsageError("no database configured: set --database-url, DATABASE_URL or the connection file")
        parts = urllib.parse.urlsplit(self.database_url)
        if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg2") or not parts.hostname:
            raise UsageError("DATABASE_URL must look like postgresql://user@host:5432/dbname")
        return sqlalchemy_url(
            self.database_url, None if parts.password else _secret(list(self.layers), "DATABASE_PASSWORD")
        )

    def describe_database(self) -> str:
        if not self.database_url:
            return "(none)"
        parts = urllib.parse.urlsplit(self.database_url)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{user}{parts.hostname}{port}{parts.path}"


def resolve(args: argparse.Namespace) -> Connection:
    env = {k: v for k in KEYS if (v := os.environ.get(k))}
    flags = {
        key: value
        for key, value in (
            ("MQTT_URL", getattr(args, "mqtt_url", None)),
            ("DATABASE_URL", getattr(args, "database_url", None)),
            ("MQTT_TOPIC_ROOT", getattr(args, "topic_root", None)),
        )
        if value
    }
    layers = [flags, env, _read_file()]

    def first(key: str) -> str | None:
        return next((layer[key] for layer in layers if layer.get(key)), None)

    root = first("MQTT_TOPIC_ROOT") or DEFAULT_ROOT
    try:
        topics = Topics(root)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Connection(
        mqtt_url=first("MQTT_URL"), database_url=first("DATABASE_URL"), topics=topics, layers=tuple(layers)
    )
