"""deploy/supervisord.py: per-service settings and the generated config, without starting supervisord."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from deploy.supervisord import (
    SERVICES,
    Program,
    default_programs,
    load_env_file,
    service_env,
    write_supervisor_config,
)

REPO = Path(__file__).resolve().parents[2]


def example_env() -> dict[str, str]:
    return load_env_file(REPO / ".env.example")


def test_env_file_paths_are_made_absolute_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "e").write_text(
        "A_FILE=secrets/x\nB_FILE=/abs/y\nPLC_MAP=maps/m.yaml\nMQTT_URL=mqtt://h:1\nQUOTED='a # b'\n"
    )
    env = load_env_file(tmp_path / "e")
    assert env["A_FILE"] == str(tmp_path / "secrets/x")
    assert env["B_FILE"] == "/abs/y"
    assert env["PLC_MAP"] == str(tmp_path / "maps/m.yaml")
    assert env["MQTT_URL"] == "mqtt://h:1" and env["QUOTED"] == "a # b"


def test_each_service_gets_its_own_broker_user_password_file_and_health_port() -> None:
    env = example_env()
    for index, service in enumerate(SERVICES):
        own = service_env(service, env, index)
        assert own["MQTT_URL"] == f"mqtt://{service}@127.0.0.1:1883"
        assert own["MQTT_PASSWORD_FILE"] == str(REPO / "secrets" / f"mqtt_{service}")
        assert own["HEALTH_PORT"] == str(int(env["HEALTH_PORT"]) + index)


def test_mqtt_url_keeps_scheme_host_port_and_refuses_a_password() -> None:
    assert service_env("mo_planner", {"MQTT_URL": "mqtts://x@broker.lan:8883"})["MQTT_URL"] == (
        "mqtts://mo_planner@broker.lan:8883"
    )
    assert service_env("mo_planner", {"HEALTH_PORT": "0"}).get("HEALTH_PORT") is None
    with pytest.raises(ValueError, match="must not contain a password"):
        service_env("mo_planner", {"MQTT_URL": "mqtt://u:secret@h:1883"})


def test_client_id_stays_unique_per_service() -> None:
    ids = {service_env(s, {"MQTT_CLIENT_ID": "line1"})["MQTT_CLIENT_ID"] for s in SERVICES}
    assert ids == {f"line1-{s}" for s in SERVICES}


def test_config_has_restart_stop_and_log_settings_and_no_secret(tmp_path: Path) -> None:
    env = {**example_env(), "MQTT_PASSWORD_ODOO_SYNC": "plain-secret-%-value"}
    env.pop("MQTT_PASSWORD_ODOO_SYNC_FILE")
    programs = default_programs(env, with_simulators=True, bin_dir=tmp_path)
    conf = write_supervisor_config(tmp_path / "run", env, programs)
    text = conf.read_text()
    assert "plain-secret" not in text
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    names = [s.removeprefix("program:") for s in parser.sections() if s.startswith("program:")]
    assert names == ["plc_sim", "odoo_sim", *SERVICES, "housekeeping"]
    for name in names:
        section = parser[f"program:{name}"]
        assert section["autorestart"] == "true"
        assert section["stopsignal"] == "TERM"
        assert int(section["stopwaitsecs"]) >= 10
        assert section["stdout_logfile"] == str(tmp_path / "run" / "logs" / f"{name}.log")
        assert "deploy/launch.py" in section["command"]
        env_file = tmp_path / "run" / "env" / f"{name}.json"
        assert env_file.stat().st_mode & 0o777 == 0o600
        own = json.loads(env_file.read_text())
        # no program sees the other users' broker passwords
        assert not [k for k in own if k.startswith("MQTT_PASSWORD_") and k != "MQTT_PASSWORD_FILE"]
    assert parser["unix_http_server"]["file"] == str(tmp_path / "run" / "supervisor.sock")
    assert parser["supervisorctl"]["serverurl"] == f"unix://{tmp_path / 'run' / 'supervisor.sock'}"
    sync = json.loads((tmp_path / "run" / "env" / "odoo_sync.json").read_text())
    assert sync["MQTT_PASSWORD"] == "plain-secret-%-value" and "MQTT_PASSWORD_FILE" not in sync
    sim = parser["program:plc_sim"]["command"]
    assert "--host 192.168.250.1 --port 9600 --control-port 9700 --slots 1 --speed 1" in sim
    assert "--host odoo.example.com --port 8069 --extra-mos 40" in parser["program:odoo_sim"]["command"]
    # odoo-sim accepts the services' own login (issue 13, defect 1): the services would lock themselves out
    odoo_sim = parser["program:odoo_sim"]["command"]
    assert "--db production --login scada@example.com --password-file " in odoo_sim
    assert odoo_sim.endswith("/secrets/odoo_password")


def test_percent_signs_survive_supervisors_interpolation(tmp_path: Path) -> None:
    conf = write_supervisor_config(tmp_path, {}, [Program("p", ["echo", "100%"])])
    parser = configparser.ConfigParser()  # interpolating, like supervisord
    parser.read(conf)
    assert parser["program:p"]["command"].endswith("-- echo 100%")


def test_bad_program_names_and_long_socket_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        write_supervisor_config(tmp_path, {}, [Program("a", ["x"]), Program("a", ["y"])])
    with pytest.raises(ValueError, match="unique"):
        write_supervisor_config(tmp_path, {}, [Program("a b", ["x"])])
    with pytest.raises(ValueError, match="too long"):
        write_supervisor_config(tmp_path / ("d" * 120), {}, [Program("a", ["x"])])
    with pytest.raises(ValueError, match="unknown service"):
        default_programs({}, services=["nope"])


def test_console_reads_with_its_own_role_and_acts_with_the_services_role() -> None:
    from deploy.supervisord import console_env, default_programs

    env = {
        "MQTT_URL": "mqtt://127.0.0.1:1883",
        "MQTT_PASSWORD_CONSOLE_FILE": "/s/mqtt_console",
        "DATABASE_URL": "postgresql://feedmill@db:5432/feedmill",
        "DATABASE_PASSWORD_FILE": "/s/postgres_password",
        "CONSOLE_DATABASE_URL": "postgresql://console_ro@db:5432/feedmill",
        "CONSOLE_DATABASE_PASSWORD_FILE": "/s/postgres_console_ro",
        "HEALTH_PORT": "8081",
    }
    own = console_env(env)
    assert own["MQTT_URL"] == "mqtt://console@127.0.0.1:1883" and own["MQTT_PASSWORD_FILE"] == "/s/mqtt_console"
    assert own["DATABASE_URL"] == env["CONSOLE_DATABASE_URL"]
    assert own["DATABASE_PASSWORD_FILE"] == "/s/postgres_console_ro"
    assert own["CONSOLE_ACTION_DATABASE_URL"] == env["DATABASE_URL"]
    assert own["CONSOLE_ACTION_DATABASE_PASSWORD_FILE"] == "/s/postgres_password"
    assert own["HEALTH_PORT"] is None  # its /healthz is on CONSOLE_PORT
    names = [p.name for p in default_programs(env, with_console=True)]
    assert names[-1] == "console" and "console" not in [p.name for p in default_programs(env)]
    # Without a read-only role the console reads with DATABASE_URL (read-only transactions still apply).
    assert "DATABASE_URL" not in console_env({k: v for k, v in env.items() if not k.startswith("CONSOLE_")})


def test_housekeeping_runs_by_default_with_the_next_health_port_and_no_broker_settings(tmp_path: Path) -> None:
    from deploy.supervisord import HOUSEKEEPING, default_programs

    env = {**example_env(), "HEALTH_PORT": "8081", "MQTT_PASSWORD_FILE": "/s/mqtt_x"}
    [program] = [p for p in default_programs(env, bin_dir=tmp_path) if p.name == HOUSEKEEPING]
    assert program.command == ["housekeeping"]
    conf = write_supervisor_config(tmp_path / "run", env, [program])
    own = json.loads((conf.parent / "env" / "housekeeping.json").read_text())
    assert own["HEALTH_PORT"] == str(8081 + len(SERVICES))  # after the four services' ports
    assert own["DATABASE_URL"] == env["DATABASE_URL"]
    assert not [k for k in own if k.startswith("MQTT_PASSWORD") or k == "MQTT_URL"]  # it needs no broker
    assert HOUSEKEEPING not in [p.name for p in default_programs(env, with_housekeeping=False)]
