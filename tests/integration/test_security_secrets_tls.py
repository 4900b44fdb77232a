"""Security: no secret in any log line (Odoo, database and MQTT passwords of a whole running system, error
paths included), and TLS to Odoo verified by default (a self-signed server is refused unless its CA is given).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.support.system as system_module
from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooError
from shared.odoo.settings import OdooSettings
from simulators.odoo.server import start_server
from tests.support.procs import wait_until
from tests.support.servers import Broker, _spawn_mosquitto, free_port, fresh_database
from tests.support.system import System

REPO = Path(__file__).resolve().parents[2]
USERS = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor", "operator")


def _auth_broker(workdir: Path, password: str) -> Broker:
    """A broker that refuses anonymous clients; every user's password is `password`."""
    workdir.chmod(0o755)
    sdir = workdir / "secrets"
    sdir.mkdir(mode=0o700)
    for user in USERS:
        (sdir / f"mqtt_{user}").write_text(password + "\n")
    owner: list[str] = []
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam("mosquitto")
        owner = ["--owner", f"{entry.pw_uid}:{entry.pw_gid}"]
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    done = subprocess.run(
        [sys.executable, str(REPO / "mosquitto/make_passwd.py"), "--out", str(workdir / "passwd"),
         "--secrets-dir", str(sdir), *owner],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    port = free_port()
    conf = (
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {workdir / 'passwd'}\n"
        f"persistence true\npersistence_location {workdir}/\nmax_queued_messages 100000\n"
    )
    (workdir / "mosquitto.conf").write_text(conf)
    return Broker("127.0.0.1", port, workdir, _spawn_mosquitto(workdir, port), conf)


@pytest.fixture
def secret_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[System, list[str]]]:
    odoo_pw = "OdooPw-" + secrets.token_hex(8)
    db_pw = "DbPw-" + secrets.token_hex(8)
    mqtt_pw = "MqttPw-" + secrets.token_hex(8)
    holder: dict[str, Broker] = {}

    def broker_factory(workdir: Path | None = None, **_: object) -> Broker:
        # mkdtemp, not tmp_path: when run as root Mosquitto drops to its own user and must reach its files.
        holder["b"] = _auth_broker(Path(tempfile.mkdtemp(prefix="mosq-sec-")), mqtt_pw)
        return holder["b"]

    @contextlib.contextmanager
    def db_with_password(prefix: str = "t") -> Iterator[str]:
        with fresh_database(
            prefix
        ) as url:  # trust auth: the password is carried (and must be hidden), not checked
            yield url.replace("postgres@", f"postgres:{db_pw}@", 1)

    monkeypatch.setattr(system_module, "start_mosquitto", broker_factory)
    monkeypatch.setattr(system_module, "fresh_database", db_with_password)
    env = {
        "ODOO_PASSWORD": odoo_pw,
        "MQTT_URL": "mqtt://set-per-service",  # replaced in start_service once the broker's port is known
    }
    s = _SecretSystem(tmp_path, mqtt_pw, odoo_args=["--seed", "none", "--password", odoo_pw], env=env, extra_mos=3)
    try:
        yield s, [odoo_pw, db_pw, mqtt_pw]
    finally:
        s.stop()


class _SecretSystem(System):
    def __init__(self, tmp: Path, mqtt_pw: str, **kw: object) -> None:
        self._mqtt_pw = mqtt_pw
        super().__init__(tmp, **kw)  # type: ignore[arg-type]

    def start_service(self, name: str):  # type: ignore[no-untyped-def]
        self.env["MQTT_URL"] = self.broker.url_for("plc_gateway", self._mqtt_pw)
        return super().start_service(name)


def test_no_secret_in_any_log(secret_system: tuple[System, list[str]]) -> None:
    s, passwords = secret_system
    s.wait_healthy(60)
    wait_until(lambda: s.completed() >= 2, 60, what="MOs flow with authenticated broker and Odoo")
    s.plc("POST", "/failure", {"equipment": "silo101", "description": "SECRET_TEST"})
    # Error paths log the most: session expiry + re-login, Odoo 502, a killed and restarted service.
    s.odoo("POST", "/_sim/expire-sessions")
    s.odoo("POST", "/_sim/faults", {"kind": "http_error", "status": 502, "times": 3})
    s.procs["odoo_sync"].kill9()
    s.start_service("odoo_sync")
    wait_until(lambda: s.completed() == 3, 60, what="all MOs done")
    wait_until(lambda: bool(s.sql("SELECT 1 FROM equipment_failure WHERE reported_at IS NOT NULL")), 30)
    for name in list(s.procs):
        s.procs[name].terminate()
    files = [*s.tmp.rglob("*.log"), s.broker.workdir / "mosquitto.log"]
    logs = {p.name: p.read_text(errors="replace") for p in files}
    assert {"plc_gateway.log", "mo_planner.log", "odoo_sync.log", "failure_monitor.log"} <= set(logs)
    assert sum(len(t) for t in logs.values()) > 2000, "suspiciously little logging"
    for pw in passwords:
        leaked = [name for name, text in logs.items() if pw in text]
        assert not leaked, f"a password appears in {leaked}"


# ---------------------------------------------------------------- TLS to Odoo


@pytest.fixture
def tls_odoo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    handle = start_server("127.0.0.1", 0, seed=None, password="tlspw")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = handle.server
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    handle.stop()


def _client(url: str, **extra: object) -> OdooClient:
    settings = OdooSettings(
        odoo_url=url, odoo_db="plant", odoo_login="admin", odoo_password="tlspw", odoo_read_timeout=5, **extra
    )  # type: ignore[arg-type]
    return OdooClient(settings)


def test_tls_is_verified_by_default() -> None:
    settings = OdooSettings(odoo_url="https://x.example", odoo_db="d", odoo_login="l", odoo_password="p")  # type: ignore[arg-type]
    assert settings.odoo_verify_tls is True and settings.tls_verify is True


def test_self_signed_odoo_is_refused_unless_its_ca_is_configured(tls_odoo: tuple[str, Path]) -> None:
    url, cert = tls_odoo
    with pytest.raises(OdooError) as err:
        _client(url).login()
    chain = repr(err.value) + repr(err.value.__cause__) + repr(err.value.__context__)
    assert "CERTIFICATE_VERIFY_FAILED" in chain or "certificate verify failed" in chain.lower(), chain
    info = _client(url, odoo_ca_bundle=cert).login()
    assert info.uid  # the trusted client works end to end
