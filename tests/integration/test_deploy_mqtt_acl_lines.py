"""Several lines on one broker (issue 10.9): one line's users can never command another line's PLC.

The ACL is rendered by mosquitto/make_acl.py from the repo's one ACL; a real Mosquitto enforces it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_deploy_mqtt_acl import (
    MOSQ,
    AuthBroker,
    Client,
    _broker_config_lines,
    assert_delivered,
    assert_denied,
)
from tests.support.servers import start_mosquitto

LINES = ("plc01", "plc02")
SERVICES = ("plc_gateway", "mo_planner", "failure_monitor", "operator")
USERS = [f"{s}.{line}" for line in LINES for s in SERVICES]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def lines_broker() -> Iterator[AuthBroker]:
    workdir = Path(tempfile.mkdtemp(prefix="mosq-lines-"))
    workdir.chmod(0o755)
    passwords = {user: secrets.token_urlsafe(18) for user in USERS}
    env = {f"MQTT_PASSWORD_{u.upper().replace('.', '_')}": pw for u, pw in passwords.items()}
    made = subprocess.run(
        [sys.executable, str(MOSQ / "make_passwd.py"), "--out", str(workdir / "passwd"), "--users", " ".join(USERS),
         "--optional-users", ""],
        capture_output=True, text=True, env={**env, "PATH": os.environ.get("PATH", "")}, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    acl = _run(str(MOSQ / "make_acl.py"), "--line", "plc01", "--line", "plc02", "--out", str(workdir / "acl"))
    assert acl.returncode == 0, acl.stderr
    if os.geteuid() == 0:
        entry = pwd.getpwnam("mosquitto")
        for path in (workdir, workdir / "passwd", workdir / "acl"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    (workdir / "acl").chmod(0o600)
    (workdir / "passwd").chmod(0o600)
    extra = f"{_broker_config_lines()}\npassword_file {workdir / 'passwd'}\nacl_file {workdir / 'acl'}\n"
    broker = start_mosquitto(extra_config=extra, anonymous=False, workdir=workdir)
    try:
        yield AuthBroker(broker, passwords)
    finally:
        broker.stop()


@pytest.fixture
def clients(lines_broker: AuthBroker) -> Iterator[Any]:
    opened: list[Client] = []

    def make(user: str) -> Client:
        client = Client(lines_broker, user)
        assert client.accepted, f"{user} was not accepted"
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def test_a_lines_planner_commands_only_its_own_plc(clients: Any) -> None:
    gw1, gw2 = clients("plc_gateway.plc01"), clients("plc_gateway.plc02")
    planner1, planner2 = clients("mo_planner.plc01"), clients("mo_planner.plc02")
    gw1.subscribe("scada/plc01/cmd/#")
    gw2.subscribe("scada/plc02/cmd/#")
    assert_delivered(planner1, "scada/plc01/cmd/write_batch", gw1)
    assert_delivered(planner2, "scada/plc02/cmd/write_batch", gw2)
    for cmd in ("write_batch", "ack_slot"):
        assert_denied(
            planner1, f"scada/plc02/cmd/{cmd}", gw2, f"scada/plc02/cmd/{cmd}", control_publisher=planner2
        )


def test_a_lines_operator_arms_only_its_own_plc_and_replies_stay_on_their_line(clients: Any) -> None:
    gw1, gw2 = clients("plc_gateway.plc01"), clients("plc_gateway.plc02")
    op1, op2 = clients("operator.plc01"), clients("operator.plc02")
    gw2.subscribe("scada/plc02/cmd/#")
    assert_denied(op1, "scada/plc02/cmd/arm", gw2, "scada/plc02/cmd/arm", control_publisher=op2)
    # A line's gateway cannot publish onto another line's replies or snapshots either.
    monitor2 = clients("failure_monitor.plc02")
    monitor2.subscribe("scada/plc02/#")
    for topic in ("scada/plc02/reply/failure_monitor/x", "scada/plc02/plc/failure"):
        assert_denied(gw1, topic, monitor2, "scada/plc02/reply/failure_monitor/ctl", control_publisher=gw2)


def test_bad_line_names_are_refused(tmp_path: Path) -> None:
    for bad in ("plc 01", "a/b", "+"):
        done = _run(str(MOSQ / "make_acl.py"), "--line", bad, "--out", str(tmp_path / "acl"))
        assert done.returncode == 2 and "line names" in done.stderr
        assert not (tmp_path / "acl").exists()
