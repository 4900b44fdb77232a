"""edgectl connection settings: flags > environment > connection file; secrets from *_FILE; no password shown."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edgectl import connection
from edgectl.errors import UsageError


def args(**flags: str | None) -> argparse.Namespace:
    return argparse.Namespace(
        mqtt_url=flags.get("mqtt_url"), database_url=flags.get("database_url"), topic_root=flags.get("topic_root")
    )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in (*connection.KEYS, "EDGECTL_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default file: absent unless a test writes it


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_file_env_and_flags_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.env",
        "# demo\nexport MQTT_URL=mqtt://operator@file:1883\nMQTT_TOPIC_ROOT='scada/file'\n"
        'DATABASE_URL="postgresql://edge@dbfile:5432/edge"\n\n',
    )
    monkeypatch.setenv("EDGECTL_CONFIG", str(cfg))
    c = connection.resolve(args())
    assert (c.broker().host, c.topics.root, c.describe_database()) == (
        "file",
        "scada/file",
        "postgresql://edge@dbfile:5432/edge",
    )
    monkeypatch.setenv("MQTT_URL", "mqtt://operator@env:1883")
    monkeypatch.setenv("MQTT_TOPIC_ROOT", "scada/env")
    c = connection.resolve(args())
    assert (c.broker().host, c.topics.root) == ("env", "scada/env")
    c = connection.resolve(args(mqtt_url="mqtt://flag:1884", topic_root="scada/flag"))
    assert (c.broker().host, c.broker().port, c.topics.root) == ("flag", 1884, "scada/flag")


def test_default_file_location(tmp_path: Path) -> None:
    write(tmp_path / "home/.config/edgectl/connection.env", "MQTT_URL=mqtt://home:1883\n")
    assert connection.resolve(args()).broker().host == "home"
    assert connection.resolve(args()).topics.root == connection.DEFAULT_ROOT


def test_passwords_from_env_file_and_secret_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = write(tmp_path / "mqtt.pw", "from-secret-file\n")
    cfg = write(
        tmp_path / "c.env",
        f"MQTT_URL=mqtt://operator@h:1883\nMQTT_PASSWORD_FILE={secret}\n"
        "DATABASE_URL=postgresql://edge@db:5432/edge\nDATABASE_PASSWORD=p@ss:/word\n",
    )
    monkeypatch.setenv("EDGECTL_CONFIG", str(cfg))
    c = connection.resolve(args())
    assert c.broker().password == "from-secret-file"
    assert "p%40ss%3A%2Fword@db:5432" in c.sqlalchemy_url()
    assert "word" not in c.describe_database() and "secret" not in c.broker().redacted()
    monkeypatch.setenv("MQTT_PASSWORD", "from-env")
    assert connection.resolve(args()).broker().password == "from-env"
    # A password written into the URL itself belongs to that URL's user.
    assert connection.resolve(args(mqtt_url="mqtt://u:inurl@h")).broker().password == "inurl"


def test_bad_settings_are_usage_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no broker"):
        connection.resolve(args()).broker()
    with pytest.raises(UsageError, match="no database"):
        connection.resolve(args()).sqlalchemy_url()
    with pytest.raises(UsageError, match="postgresql://"):
        connection.resolve(args(database_url="mysql://x@h/db")).sqlalchemy_url()
    with pytest.raises(UsageError, match="topic root"):
        connection.resolve(args(topic_root="scada/#"))
    monkeypatch.setenv("EDGECTL_CONFIG", str(tmp_path / "missing.env"))
    with pytest.raises(UsageError, match="no such file"):
        connection.resolve(args())
    monkeypatch.setenv("EDGECTL_CONFIG", str(write(tmp_path / "bad.env", "just words\n")))
    with pytest.raises(UsageError, match=r"bad\.env:1"):
        connection.resolve(args())
    monkeypatch.setenv(
        "EDGECTL_CONFIG",
        str(write(tmp_path / "pw.env", f"MQTT_URL=mqtt://u@h\nMQTT_PASSWORD_FILE={tmp_path}/nope\n")),
    )
    with pytest.raises(UsageError, match="MQTT_PASSWORD_FILE"):
        connection.resolve(args()).broker()


def test_world_readable_file_with_password_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path / "c.env", "MQTT_URL=mqtt://u@h\nMQTT_PASSWORD=hunter2\n")
    cfg.chmod(0o644)
    monkeypatch.setenv("EDGECTL_CONFIG", str(cfg))
    connection.resolve(args())
    err = capsys.readouterr().err
    assert "chmod 600" in err and "hunter2" not in err
