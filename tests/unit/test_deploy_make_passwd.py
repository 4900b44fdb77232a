"""mosquitto/make_passwd.py and the static broker files (mosquitto.conf, acl): no broker needed."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "mosquitto" / "make_passwd.py"
USERS = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor", "operator")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_passwd", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mp = _load()


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path / "passwd"), *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **env},
        check=False,
    )


def all_users_env(tmp_path: Path) -> dict[str, str]:
    env = {}
    for user in USERS:
        f = tmp_path / f"pw_{user}"
        f.write_text(f"pw-of-{user}\n")
        env[f"MQTT_PASSWORD_{user.upper()}_FILE"] = str(f)
    return env


def parse(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def test_writes_every_user_hashed_private_and_silent(tmp_path: Path) -> None:
    done = run(tmp_path, all_users_env(tmp_path))
    assert done.returncode == 0, done.stderr
    entries = parse(tmp_path / "passwd")
    assert list(entries) == list(USERS)  # viewer is optional and was not given
    for user, encoded in entries.items():
        assert encoded.startswith("$7$10000$")
        assert mp.verify_password(f"pw-of-{user}", encoded)  # trailing newline of the file stripped
        assert not mp.verify_password(f"pw-of-{user}\n", encoded)
        assert f"pw-of-{user}" not in done.stdout + done.stderr
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o600
    assert "viewer: skipped" in done.stderr


def test_sources_env_value_file_and_secrets_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for user in (*USERS, "viewer"):
        (secrets / f"mqtt_{user}").write_text(f"dir-{user}")
    (tmp_path / "op").write_text("from-file")
    env = {"MQTT_PASSWORD_PLC_GATEWAY": "from-env", "MQTT_PASSWORD_OPERATOR_FILE": str(tmp_path / "op")}
    done = run(tmp_path, env, "--secrets-dir", str(secrets))
    assert done.returncode == 0, done.stderr
    entries = parse(tmp_path / "passwd")
    assert mp.verify_password("from-env", entries["plc_gateway"])
    assert mp.verify_password("from-file", entries["operator"])
    assert mp.verify_password("dir-mo_planner", entries["mo_planner"])
    assert mp.verify_password("dir-viewer", entries["viewer"])


@pytest.mark.parametrize("bad", ["", "   \n", "two\nlines"])
def test_refuses_empty_or_multiline_passwords_without_echoing_them(tmp_path: Path, bad: str) -> None:
    env = all_users_env(tmp_path)
    Path(env["MQTT_PASSWORD_MO_PLANNER_FILE"]).write_text(bad)
    done = run(tmp_path, env)
    assert done.returncode == 2
    assert "mo_planner" in done.stderr
    assert not (tmp_path / "passwd").exists()
    if bad.strip():
        assert bad.strip().splitlines()[0] not in done.stderr


def test_refuses_missing_users_and_lists_them_all(tmp_path: Path) -> None:
    env = all_users_env(tmp_path)
    del env["MQTT_PASSWORD_ODOO_SYNC_FILE"], env["MQTT_PASSWORD_OPERATOR_FILE"]
    done = run(tmp_path, env)
    assert done.returncode == 2
    assert "odoo_sync: no password" in done.stderr and "operator: no password" in done.stderr


def test_refuses_a_directory_as_secret_file(tmp_path: Path) -> None:
    # docker creates a directory when a bind-mounted secret file is missing on the host
    env = all_users_env(tmp_path)
    env["MQTT_PASSWORD_OPERATOR_FILE"] = str(tmp_path)
    done = run(tmp_path, env)
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("old:entry\n")
    assert run(tmp_path, all_users_env(tmp_path)).returncode == 0
    assert "old" not in parse(tmp_path / "passwd")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".passwd")] == []


def test_hash_matches_mosquitto_passwd_format(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd not installed")
    path = tmp_path / "p"
    # -b puts the password on argv: acceptable for a throw-away test password, never done by the tool
    subprocess.run([tool, "-c", "-b", str(path), "alice", "s3cr:et wïth spaces"], check=True)
    encoded = parse(path)["alice"]
    assert mp.verify_password("s3cr:et wïth spaces", encoded)
    assert not mp.verify_password("s3cr:et", encoded)
    # The reverse (the broker accepts our hashes) is proven by tests/integration/test_deploy_mqtt_acl.py.


def test_mosquitto_passwd_hasher(tmp_path: Path) -> None:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed")
    done = run(tmp_path, all_users_env(tmp_path), "--hasher", "mosquitto_passwd")
    assert done.returncode == 0, done.stderr
    for user, encoded in parse(tmp_path / "passwd").items():
        assert mp.verify_password(f"pw-of-{user}", encoded)
    env = all_users_env(tmp_path)
    Path(env["MQTT_PASSWORD_OPERATOR_FILE"]).write_text("with:colon")
    done = run(tmp_path, env, "--hasher", "mosquitto_passwd")
    assert done.returncode == 2 and "operator" in done.stderr and "with:colon" not in done.stderr


# ---------------------------------------------------------------- static checks of the broker files


def conf_directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (REPO / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if words:
            out.setdefault(words[0], []).append(" ".join(words[1:]))
    return out


def test_broker_config_essentials() -> None:
    conf = conf_directives()
    assert conf["listener"] == ["1883"]
    assert conf["allow_anonymous"] == ["false"]
    assert conf["persistence"] == ["true"]
    assert conf["persistence_location"] == ["/mosquitto/data/"]
    assert int(conf["max_queued_messages"][0]) >= 100000
    assert conf["password_file"] == ["/mosquitto/auth/passwd"] and conf["acl_file"] == ["/mosquitto/auth/acl"]
    assert "per_listener_settings" not in conf  # global auth: the optional TLS listener is covered too


def test_acl_spells_out_access_on_every_line() -> None:
    users: list[str] = []
    for line in (REPO / "mosquitto" / "acl").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            users.append(words[1])
            continue
        assert words[0] == "topic", line
        assert users, f"rule before any user section applies to anonymous clients: {line}"
        assert words[1] in ("read", "write", "readwrite") and len(words) == 3, line
        assert re.match(r"^(scada/\+/|#$|\$SYS/#$)", words[2]), line
    assert users == [*USERS, "console", "viewer"]
