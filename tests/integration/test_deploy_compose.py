"""docker-compose.yml, Dockerfile, .dockerignore, .env.example: validated by the installed docker-compose
(`config` needs no docker engine) with .env.example as .env and dummy secret files, then checked property by
property on the resolved YAML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from shared.health import HealthServer

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"plc-gateway": "plc_gateway", "mo-planner": "mo_planner", "odoo-sync": "odoo_sync",
            "failure-monitor": "failure_monitor"}  # fmt: skip
DB_SERVICES = ("mo-planner", "odoo-sync", "failure-monitor")
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


def compose_config(tmp_path: Path, *args: str) -> dict[str, Any]:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.skip("docker-compose is not installed (./scripts/test installs it)")
    project = tmp_path / "project"
    if not project.exists():
        project.mkdir()
        shutil.copy(REPO / "docker-compose.yml", project)
        shutil.copy(REPO / ".env.example", project / ".env")
        (project / "secrets").mkdir()
        for name in yaml.safe_load((REPO / "docker-compose.yml").read_text())["secrets"]:
            (project / "secrets" / name).write_text("dummy\n")
    done = subprocess.run(
        [docker_compose, "--project-directory", str(project), "-f", str(project / "docker-compose.yml"), *args,
         "config"],
        capture_output=True, text=True, check=False, cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr  # e.g. an unset variable in a ${...}
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_config(tmp_path_factory.mktemp("compose"))


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items()}


def test_the_four_services_share_one_image_and_restart(config: dict[str, Any]) -> None:
    services = config["services"]
    images = {services[name]["image"] for name in SERVICES}
    assert len(images) == 1
    for name, module in SERVICES.items():
        svc = services[name]
        assert svc["restart"] == "unless-stopped", name
        assert svc["command"] == [module.replace("_", "-")], name
        assert svc["init"] is True
        assert svc["logging"]["options"]["max-size"]


def test_healthchecks_hit_healthz_on_the_health_port(config: dict[str, Any]) -> None:
    for name in SERVICES:
        svc = config["services"][name]
        test = " ".join(svc["healthcheck"]["test"])
        assert "/healthz" in test and "HEALTH_PORT" in test and "urllib" in test, name
        assert int(env_of(svc)["HEALTH_PORT"]) > 0
    for name in ("mosquitto", "postgres"):
        assert config["services"][name]["healthcheck"]["test"]


def test_every_service_connects_as_its_own_broker_user_with_a_secret_file(config: dict[str, Any]) -> None:
    for name, user in SERVICES.items():
        svc = config["services"][name]
        env = env_of(svc)
        url = urllib.parse.urlsplit(env["MQTT_URL"])
        assert (url.scheme, url.username, url.password, url.hostname, url.port) == (
            "mqtt", user, None, "mosquitto", 1883)  # fmt: skip
        assert env["MQTT_PASSWORD_FILE"] == f"/run/secrets/mqtt_{user}"
        assert "MQTT_PASSWORD" not in env
        mounted = {s["source"] for s in svc["secrets"]}
        assert f"mqtt_{user}" in mounted
        # least privilege: no other broker user's secret
        assert not {s for s in mounted if s.startswith("mqtt_")} - {f"mqtt_{user}"}
        assert env["MQTT_TOPIC_ROOT"] == "scada/plc01"


def test_database_and_odoo_passwords_are_files(config: dict[str, Any]) -> None:
    for name in DB_SERVICES:
        svc = config["services"][name]
        env = env_of(svc)
        assert urllib.parse.urlsplit(env["DATABASE_URL"]).password is None
        assert env["DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
        assert env["ODOO_PASSWORD_FILE"] == "/run/secrets/odoo_password"
        assert {"postgres_password", "odoo_password"} <= {s["source"] for s in svc["secrets"]}
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    gateway = config["services"]["plc-gateway"]
    assert "postgres_password" not in {s["source"] for s in gateway["secrets"]}
    pg = env_of(config["services"]["postgres"])
    assert pg["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password" and "POSTGRES_PASSWORD" not in pg


def test_no_plaintext_secret_anywhere(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        for key, value in env_of(svc).items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret value"
            assert "dummy" not in value
            if "://" in value:
                assert urllib.parse.urlsplit(value).password is None, f"{name}: {key}"
    for name, secret in config["secrets"].items():
        assert set(secret) == {"file"} and Path(secret["file"]).parent.name == "secrets", name
    # the repo's example env carries paths, never values
    for line in (REPO / ".env.example").read_text().splitlines():
        key = line.lstrip("# ").split("=", 1)[0]
        if "=" in line and SECRET_WORDS.search(key):
            assert key.endswith("_FILE"), line


def test_broker_gets_generated_auth_files_and_persistent_data(config: dict[str, Any]) -> None:
    services = config["services"]
    job = services["mqtt-passwd"]
    assert job["restart"] == "no" and job["network_mode"] == "none"
    assert "make_passwd.py" in " ".join(job["command"]) and "--secrets-dir /run/secrets" in " ".join(
        job["command"]
    )
    assert {s["source"] for s in job["secrets"]} == {
        f"mqtt_{u}" for u in [*SERVICES.values(), "operator", "viewer", "console"]
    }
    broker = services["mosquitto"]
    assert broker["image"].startswith("eclipse-mosquitto:2")
    assert broker["depends_on"]["mqtt-passwd"]["condition"] == "service_completed_successfully"
    targets = {str(v).split(":")[1] if isinstance(v, str) else v["target"] for v in broker["volumes"]}
    assert {"/mosquitto/config/mosquitto.conf", "/mosquitto/auth", "/mosquitto/data"} <= targets
    assert {"mosquitto-data", "mosquitto-auth", "postgres-data"} <= set(config["volumes"])
    migrate = services["migrate"]
    assert migrate["command"] == ["alembic", "upgrade", "head"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_sim_profile_adds_the_simulators(tmp_path: Path) -> None:
    plain = compose_config(tmp_path)
    sim = compose_config(tmp_path, "--profile", "sim")
    for name in ("plc-sim", "odoo-sim"):
        assert sim["services"][name]["profiles"] == ["sim"]
        assert plain["services"][name]["profiles"] == ["sim"]  # v1 `config` lists them; `up` skips them
    assert sim["services"]["plc-sim"]["command"][:2] == ["plc-sim", "--host"]
    assert "--control-port" in sim["services"]["plc-sim"]["command"]
    assert sim["services"]["odoo-sim"]["command"][0] == "odoo-sim"
    for name in SERVICES:
        assert "profiles" not in plain["services"][name]


def test_env_example_documents_every_setting() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    required = [
        "MQTT_URL",
        "MQTT_PASSWORD_FILE",
        "MQTT_CLIENT_ID",
        "MQTT_TOPIC_ROOT",
        "HEALTH_PORT",
        "HEALTH_HOST",
        "LOG_LEVEL",
        "PLC_HOST",
        "PLC_PORT",
        "PLC_NODE",
        "PLC_NETWORK",
        "PLC_UNIT",
        "GATEWAY_NODE",
        "GATEWAY_STATE_DIR",
        "FINS_LOCAL_PORT",
        "FINS_TIMEOUT_MS",
        "FINS_RETRIES",
        "FINS_CHUNK_WORDS",
        "PLC_MAP",
        "PLC_SLOTS",
        "POLL_INTERVAL_MS",
        "HEARTBEAT_S",
        "DATABASE_URL",
        "DATABASE_PASSWORD_FILE",
        "ODOO_URL",
        "ODOO_DB",
        "ODOO_LOGIN",
        "ODOO_PASSWORD_FILE",
        "ODOO_VERIFY_TLS",
        "ODOO_POLL_S",
        "LOOKAHEAD",
        "SYNC_SWEEP_S",
        "MARK_DONE",
        "PLANT_TIMEZONE",
        "REPORT_RETRY_S",
    ]
    assert not set(required) - documented
    for user in [*SERVICES.values(), "operator", "viewer"]:
        assert f"MQTT_PASSWORD_{user.upper()}_FILE" in documented
    # docker-compose keeps an inline comment as part of the value: none may exist
    assert not re.findall(r"^[A-Z][A-Z0-9_]*=[^\n]*[ \t]#", text, re.MULTILINE)


def test_dockerfile_runs_as_non_root_without_secrets() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in text
    for key in re.findall(r"^\s*(?:ENV|ARG)\s+(.*)$", text, re.MULTILINE):
        assert not SECRET_WORDS.search(key), key
    assert not re.search(r"^COPY\s+(\.env|secrets)", text, re.MULTILINE)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", "secrets", ".git", ".venv"} <= set(ignored)


def test_secrets_folder_is_ignored_by_git_except_its_readme() -> None:
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "secrets/mqtt_plc_gateway", "secrets/postgres_password",
         "secrets/README.md"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["secrets/mqtt_plc_gateway", "secrets/postgres_password"]


@pytest.mark.parametrize("healthy", [True, False])
def test_service_healthcheck_command_against_a_real_health_server(healthy: bool) -> None:
    """The compose healthcheck (and the Dockerfile's) run against shared.health.HealthServer."""
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), lambda: {"healthy": healthy}).start()
    try:
        env = {**os.environ, "HEALTH_PORT": str(server.port)}
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        test = compose["services"]["mo-planner"]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"]
        done = subprocess.run([sys.executable, *test[2:]], env=env, capture_output=True, timeout=10, check=False)
        assert (done.returncode == 0) is healthy
        dockerfile = (REPO / "Dockerfile").read_text()
        exec_form = re.search(r'CMD \["python", "-c", "(.*)"\]\s*$', dockerfile.split("HEALTHCHECK", 1)[1], re.M)
        assert exec_form
        code = exec_form.group(1)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=10, check=False)
        assert (done.returncode == 0) is healthy
        off = {**env, "HEALTH_PORT": "0"}  # one-shot jobs and simulators: nothing to check
        assert subprocess.run([sys.executable, "-c", code], env=off, timeout=10, check=False).returncode == 0
    finally:
        server.server.shutdown()


def test_console_is_published_on_loopback_with_its_own_users_and_read_role(config: dict[str, Any]) -> None:
    console = config["services"]["console"]
    env = env_of(console)
    assert env["MQTT_URL"] == "mqtt://console@mosquitto:1883"
    assert env["MQTT_PASSWORD_FILE"] == "/run/secrets/mqtt_console"
    assert env["CONSOLE_USERS_FILE"] == "/run/secrets/console_users"
    assert env["CONSOLE_SECRET_KEY_FILE"] == "/run/secrets/console_secret_key"
    assert {"mqtt_console", "console_users", "console_secret_key"} <= {s["source"] for s in console["secrets"]}
    [port] = console["ports"]
    published = port if isinstance(port, str) else f"{port.get('host_ip')}:{port['published']}:{port['target']}"
    assert str(published).startswith("127.0.0.1:") and str(published).removesuffix("/tcp").endswith(":8090")


def test_docs_name_only_services_compose_has(config: dict[str, Any]) -> None:
    """Issue 13, defect 3: `docker-compose restart odoo_sync` (underscore) named no service."""
    services = set(config["services"])
    verbs = "restart|exec|run|logs|stop|start|kill|up|ps|rm"
    pattern = re.compile(
        rf"docker-compose\s+(?:--profile\s+[^\s`]+\s+)*(?:{verbs})[ \t]+((?:-{{1,2}}[^\s`]+[ \t]+)*)([a-z][\w-]*)"
    )
    docs = [REPO / "README.md", REPO / "secrets" / "README.md", REPO / "mosquitto" / "README.md",
            REPO / "docker-compose.yml", REPO / "mosquitto" / "mosquitto.conf", REPO / ".env.example"]  # fmt: skip
    named = []
    for doc in docs:
        for match in pattern.finditer(doc.read_text(encoding="utf-8")):
            flags, name = match.groups()
            if name in {"d", "rm"} or flags.rstrip().endswith(("-s", "--entrypoint", "-e")):
                continue
            named.append(name)
            assert name in services, f"{doc.name}: `{match.group(0)}` names no compose service"
    assert {"odoo-sync", "mo-planner", "edgectl", "mqtt-passwd", "mosquitto"} <= set(named)


def test_edgectl_service_has_the_operator_user_and_secret(config: dict[str, Any]) -> None:
    """Issue 13, defect 5: an operator CLI under compose, with the one broker user allowed to arm."""
    svc = config["services"]["edgectl"]
    env = env_of(svc)
    assert urllib.parse.urlsplit(env["MQTT_URL"]).username == "operator"
    assert env["MQTT_PASSWORD_FILE"] == "/run/secrets/mqtt_operator"
    assert {s["source"] for s in svc["secrets"]} == {"mqtt_operator", "postgres_password"}
    assert svc["profiles"] == ["tools"] and svc["entrypoint"] == ["edgectl"]
    for name in SERVICES:
        assert f"{name}:8080/healthz" in env["EDGECTL_HEALTH_URLS"].replace(" ", "")


def test_fixed_client_ids_and_expiring_orphaned_sessions(config: dict[str, Any]) -> None:
    """Issue 13, defect 8: a re-created container must resume its session, not leave one behind."""
    ids = [env_of(config["services"][name])["MQTT_CLIENT_ID"] for name in SERVICES]
    assert ids == list(SERVICES.values())
    conf = (REPO / "mosquitto" / "mosquitto.conf").read_text()
    assert re.search(r"^persistent_client_expiration \d+[hdwmy]$", conf, re.MULTILINE)


def test_no_anonymous_volume_and_pinned_dependencies(config: dict[str, Any]) -> None:
    """Issue 13, defect 7: the broker image's /mosquitto/log VOLUME gets a named volume; the image installs
    the locked versions."""
    broker = config["services"]["mosquitto"]
    targets = {v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in broker["volumes"]}
    assert "/mosquitto/log" in targets and "mosquitto-log" in config["volumes"]
    assert "pip install -c requirements.lock ." in (REPO / "Dockerfile").read_text()
    assert "useradd --system" not in (REPO / "Dockerfile").read_text()


def test_sim_profile_uses_the_services_odoo_login_and_serves_mos(tmp_path: Path) -> None:
    """Issue 13, defects 1 and 2."""
    sim = compose_config(tmp_path, "--profile", "sim")["services"]["odoo-sim"]
    cmd = sim["command"]
    assert cmd[cmd.index("--db") + 1] == "production" and cmd[cmd.index("--login") + 1] == "scada@example.com"
    assert cmd[cmd.index("--password-file") + 1] == "/run/secrets/odoo_password"
    assert int(cmd[cmd.index("--extra-mos") + 1]) > 0
    assert {s["source"] for s in sim["secrets"]} == {"odoo_password"}
