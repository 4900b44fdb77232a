"""The docker-compose deployment, run for real: a fresh clone of this repository, the README's own "Docker"
blocks executed as written (bash, in order), then restart / kill / down+up, broker and PostgreSQL password
rotation, operator commands, readiness, the operator console (profile `console`, logged in over HTTP), backup and
restore, each checked against the running containers and PostgreSQL.

Needs a docker engine: started here when `dockerd` is installed and not running (root); skipped, saying why,
only where no engine can run. Base images come from scripts/build-images (debootstrap, cached as a docker
image: a cold run adds a few minutes once per machine). Issue 13's defects are named where they are checked.
"""

from __future__ import annotations

import html.parser
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = "feedmillcomposetest"
SERVICES = ("plc-gateway", "mo-planner", "odoo-sync", "failure-monitor")
LONG_RUNNING = ("mosquitto", "postgres", *SERVICES, "housekeeping", "plc-sim", "odoo-sim")
ONE_SHOTS = ("mqtt-passwd", "migrate")
APP_UID = "10001"

pytestmark = pytest.mark.slow


def _run(cmd: list[str], timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def _engine_answers() -> bool:
    return _run(["docker", "info"], timeout=30).returncode == 0


def ensure_engine(log: Path) -> str | None:
    """None when a docker engine answers (started here if need be); else why none can run here."""
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        return "docker / docker-compose are not installed (./scripts/test installs docker.io and docker-compose)"
    if _engine_answers():
        return None
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None or os.geteuid() != 0:
        return "no docker engine answers and dockerd cannot be started here (not installed, or not root)"
    with open(log, "ab") as out:
        subprocess.Popen([dockerd], stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _engine_answers():
            return None
        time.sleep(1)
    return f"dockerd did not start within 60 s (this machine cannot run containers): {log.read_text()[-800:]}"


def readme_block(name: str) -> str:
    """The shell block that follows `<!-- test:<name> -->` in README.md: the test runs what the docs say."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- test:{re.escape(name)} -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert found, f"README.md has no block marked test:{name}"
    return found.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    root: Path
    env: dict[str, str]

    def sh(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run(["bash", "-euo", "pipefail", "-c", script], timeout=timeout, cwd=self.root, env=self.env)

    def block(self, name: str, timeout: float = 300) -> str:
        done = self.sh(readme_block(name), timeout)
        assert done.returncode == 0, f"README block {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def compose(
        self, *args: str, timeout: float = 180, profiles: tuple[str, ...] = ("sim",)
    ) -> subprocess.CompletedProcess[str]:
        flags = [f for p in profiles for f in ("--profile", p)]
        return _run(["docker-compose", *flags, *args], timeout=timeout, cwd=self.root, env=self.env)

    def container(self, service: str) -> str:
        # A service of an inactive profile is unknown to `ps`: the console's profile is named for it alone
        # (an `up` with it active would start the console before its users file exists).
        done = self.compose("ps", "-q", service, profiles=("sim", "console") if service == "console" else ("sim",))
        return done.stdout.strip()

    def inspect(self, service: str) -> dict[str, object]:
        cid = self.container(service)
        assert cid, f"{service}: no container"
        data: list[dict[str, object]] = json.loads(_run(["docker", "inspect", cid]).stdout)
        return data[0]

    def psql(self, sql: str) -> str:
        done = self.compose("exec", "-T", "postgres", "psql", "-U", "feedmill", "-d", "feedmill", "-At", "-c", sql)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def healthz(self, service: str) -> dict[str, object]:
        code = (
            "import json, os, urllib.request, urllib.error\n"
            "url = 'http://127.0.0.1:%s/healthz' % os.environ['HEALTH_PORT']\n"
            "try:\n    body = urllib.request.urlopen(url, timeout=4).read()\n"
            "except urllib.error.HTTPError as e:\n    body = e.read()\n"
            "except OSError as e:\n    body = json.dumps({'healthy': None, 'problems': ['/healthz: %s' % e]}).encode()\n"
            "print(body.decode())\n"
        )
        done = self.compose("exec", "-T", service, "python", "-c", code)
        assert done.returncode == 0, done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result

    def wait_healthy(self, services: tuple[str, ...] = LONG_RUNNING, timeout: float = 150) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            for name in services:
                state = self.inspect(name)["State"]
                assert isinstance(state, dict)
                health = state.get("Health")
                states[name] = health["Status"] if isinstance(health, dict) else str(state["Status"])
            if all(s in ("healthy", "running") for s in states.values()):
                return
            time.sleep(3)
        logs = self.compose(
            "logs", "--tail=20", *[n for n, s in states.items() if s not in ("healthy", "running")]
        )
        pytest.fail(f"not healthy after {timeout:.0f}s: {states}\n{logs.stdout[-4000:]}")

    def archived(self) -> int:
        return int(self.psql("SELECT count(*) FROM mo_histories"))

    def wait_archived(self, more_than: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.archived()
            if count > more_than:
                return count
            time.sleep(2)
        pytest.fail(f"no batch archived beyond {more_than} within {timeout:.0f}s:\n{self.edgectl('status')}")

    def edgectl(self, *args: str) -> str:
        done = self.compose("run", "--rm", "edgectl", *args, timeout=120)
        return done.stdout + done.stderr

    def secrets(self) -> dict[str, str]:
        folder = self.root / "secrets"
        names = [p.name for p in folder.iterdir() if p.is_file() and p.name not in ("README.md", ".gitignore")]
        return {name: (folder / name).read_text().strip() for name in names}


def fresh_clone(dest: Path) -> None:
    """HEAD of this repository plus its uncommitted tracked changes and new files, so a developer tests what
    they see and CI tests the commit."""
    assert _run(["git", "clone", "-q", str(REPO), str(dest)]).returncode == 0
    diff = _run(["git", "diff", "HEAD", "--binary"], cwd=REPO).stdout
    if diff:
        applied = subprocess.run(["git", "apply", "--whitespace=nowarn"], input=diff, text=True, cwd=dest,
                                 capture_output=True, check=False)  # fmt: skip
        assert applied.returncode == 0, applied.stderr
    for name in _run(["git", "ls-files", "--others", "--exclude-standard"], cwd=REPO).stdout.split():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)


def remove_project() -> None:
    """Containers and volumes of an earlier, interrupted run of this test (by compose's project label)."""
    label = f"label=com.docker.compose.project={PROJECT}"
    ids = _run(["docker", "ps", "-aq", "--filter", label]).stdout.split()
    if ids:
        _run(["docker", "rm", "-f", "-v", *ids], timeout=120)
    vols = _run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split()
    if vols:
        _run(["docker", "volume", "rm", "-f", *vols], timeout=60)


def dangling_volumes() -> set[str]:
    return set(_run(["docker", "volume", "ls", "-q", "--filter", "dangling=true"]).stdout.split())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("compose-real")
    reason = ensure_engine(base / "dockerd.log")
    if reason:
        pytest.skip(reason)
    root = base / "feedmill"
    fresh_clone(root)
    built = _run([str(root / "scripts" / "build-images"), "--no-app"], timeout=900, cwd=root)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    remove_project()
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        # Documented settings only: the broker on a free loopback port (the host may run its own on 1883)
        # and the simulated PLC 20 times faster (3 s batches), so the run stays short.
        "MQTT_PUBLISH_PORT": f"127.0.0.1:{free_port()}",
        "PLC_SIM_SPEED": "20",
        # About 15 batches a minute at that speed: enough MOs for the whole run (odoo-sim's default, 40, is
        # a demo's supply and runs out half-way).
        "ODOO_SIM_EXTRA_MOS": "400",
        # The console's documented publish setting: a free loopback port (the host may use 8090).
        "CONSOLE_PUBLISH_PORT": str(free_port()),
    }
    s = Stack(root, env)
    before = dangling_volumes()
    try:
        s.block("compose-up", timeout=900)
        s.volumes_before = before  # type: ignore[attr-defined]
        yield s
    finally:
        _run(["docker-compose", "--profile", "sim", "--profile", "tools", "--profile", "console", "down", "-v",
              "--remove-orphans"],
             timeout=180, cwd=root, env=env)  # fmt: skip
        remove_project()


# ---------------------------------------------------------------- the first start, as documented


def test_every_service_healthy_and_one_shots_exited_zero(stack: Stack) -> None:
    """Defects 1 and 2: with .env.example + the README's sim step, the services log in and MOs exist."""
    stack.wait_healthy()
    for job in ONE_SHOTS:
        state = stack.inspect(job)["State"]
        assert isinstance(state, dict)
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), job
    for name in ("mo-planner", "odoo-sync", "failure-monitor"):
        body = stack.healthz(name)
        assert body["healthy"] is True and body["problems"] == [], (name, body)


def test_batches_flow_end_to_end_with_nothing_lost_or_doubled(stack: Stack) -> None:
    stack.wait_archived(more_than=2)
    assert_nothing_lost_or_doubled(stack)


def assert_nothing_lost_or_doubled(stack: Stack, since: str = "-infinity") -> None:
    """`since`: compare with Odoo only what was archived after it (odoo-sim keeps its state in memory, so a
    down + up gives a fresh Odoo; a real one remembers)."""
    # One archived row per MO (odoo-sim's generated MOs are one batch each), nothing stuck for an operator.
    total, distinct = stack.psql("SELECT count(*), count(DISTINCT mo_id) FROM mo_histories").split("|")
    assert total == distinct, "a batch was archived twice"
    assert stack.psql("SELECT count(*) FROM mo_batch WHERE state = 'attention'") == "0"
    archived = set(
        stack.psql(
            f"SELECT mo_id FROM mo_histories WHERE status = 'completed' AND archived_at > '{since}'"
        ).split()
    )
    # Odoo's side (odoo-sim's own state): update-with-consumptions sets an MO's qty_producing to the finished
    # weight; exactly the archived MOs (plus any in flight) have one, and it is the weight we stored.
    code = (
        "import json, urllib.request\n"
        "d = json.load(urllib.request.urlopen('http://127.0.0.1:8069/_sim/state'))\n"
        "print(json.dumps({m['mo_id']: m['qty_producing'] for m in d['mos']}))\n"
    )
    done = stack.compose("exec", "-T", "odoo-sim", "python", "-c", code)
    produced = json.loads(done.stdout)
    reported = {mo for mo, qty in produced.items() if qty}
    # Read after Odoo's snapshot, in one statement: a batch Odoo has must be ours, archived (at any time: the
    # fresh odoo-sim may have taken reports before `since`) or still in flight.
    known = set(stack.psql("SELECT mo_id FROM mo_histories UNION SELECT mo_id FROM mo_batch").split())
    assert archived <= reported, f"archived but never reported to Odoo: {archived - reported}"
    assert reported <= known, f"reported to Odoo, then lost: {reported - known}"
    weights = dict(
        row.split("|") for row in stack.psql(
            "SELECT mo_id, actual_weight_quantity_finished_goods FROM mo_histories WHERE status = 'completed'"
        ).splitlines()
    )  # fmt: skip
    for mo, weight in weights.items():
        if mo not in archived:
            continue  # archived after Odoo's snapshot was read
        assert abs(float(produced[mo]) - float(weight)) < 0.01, f"{mo}: Odoo {produced[mo]} vs ours {weight}"


def test_containers_run_as_non_root(stack: Stack) -> None:
    for name in (*SERVICES, "plc-sim", "odoo-sim"):
        done = stack.compose("exec", "-T", name, "id", "-u")
        assert done.stdout.strip() == APP_UID, name
    # The broker and the database start as root and drop it themselves: look at the running process's real and
    # effective uid (the host's /proc), not at the configured user.
    for name, uid in (("mosquitto", "1883"), ("postgres", "999")):
        state = stack.inspect(name)["State"]
        assert isinstance(state, dict)
        status = Path(f"/proc/{state['Pid']}/status").read_text()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.MULTILINE)
        assert uids and uids.groups() == (uid, uid), (name, uids and uids.groups())


def test_no_secret_in_inspect_logs_or_image_history(stack: Stack) -> None:
    # The README block writes 10 random secrets and an empty console_users placeholder (the console, in its own
    # compose profile, starts later: it needs users written by console-users first).
    secrets = {name: value for name, value in stack.secrets().items() if not name.startswith("console_")}
    secrets["console_secret_key"] = stack.secrets()["console_secret_key"]
    assert len(secrets) == 10, sorted(secrets)
    assert all(len(v) >= 16 for v in secrets.values())
    ids = [stack.container(n) for n in LONG_RUNNING]
    haystack = _run(["docker", "inspect", *ids]).stdout
    haystack += stack.compose("logs", "--no-color").stdout
    image = stack.inspect("mo-planner")["Image"]
    assert isinstance(image, str)
    haystack += _run(["docker", "history", "--no-trunc", image]).stdout
    haystack += _run(["docker", "image", "inspect", image]).stdout
    for name, value in secrets.items():
        assert value not in haystack, f"the {name} secret leaks"


# ---------------------------------------------------------------- operator commands (defect 5, 6)


def test_operator_commands_as_documented(stack: Stack) -> None:
    out = stack.block("operator", timeout=300)
    assert "plc_gateway" in out and "ready" in out, out
    assert re.search(r"slot 1: ok (armed|already_armed)", out), out
    assert "NOT READY" not in out, out


def test_a_service_user_cannot_send_operator_commands_and_is_told_why(stack: Stack) -> None:
    """Defect 5: `exec mo-planner edgectl arm 1` used to report only 'no reply from plc_gateway'."""
    done = stack.compose(
        "exec", "-T", "-e", "MQTT_PASSWORD_FILE=/run/secrets/mqtt_mo_planner", "mo-planner",
        "edgectl", "arm", "1", "--timeout", "3",
    )  # fmt: skip
    assert done.returncode != 0
    assert "mo_planner" in done.stderr + done.stdout and "operator" in done.stderr + done.stdout


def test_odoo_login_failure_makes_odoo_facing_services_not_ready(stack: Stack) -> None:
    """Defect 6: with the Odoo login refused, mo-planner says so in /healthz and in `edgectl status`."""
    good = (stack.root / "secrets" / "odoo_password").read_text()
    try:
        (stack.root / "secrets" / "odoo_password").write_text("wrong-password-for-the-test\n")
        assert stack.compose("restart", "mo-planner").returncode == 0
        deadline = time.monotonic() + 60
        body: dict[str, object] = {}
        while time.monotonic() < deadline:
            body = stack.healthz("mo-planner")
            if body["healthy"] is False and any("odoo:" in str(p) for p in body["problems"]):  # type: ignore[attr-defined]
                break
            time.sleep(2)
        assert body["healthy"] is False and any("odoo: login refused" in str(p) for p in body["problems"]), body  # type: ignore[attr-defined]
        status = stack.edgectl("status")
        assert "mo_planner" in status and "NOT READY: odoo: login refused" in status, status
    finally:
        (stack.root / "secrets" / "odoo_password").write_text(good)
        stack.compose("restart", "mo-planner")
    stack.wait_healthy(("mo-planner",), timeout=150)


# ---------------------------------------------------------------- restarts (defects 4, 7, 8)


def broker_sessions(stack: Stack) -> int:
    """$SYS/broker/clients/total: connected plus disconnected persistent sessions held by the broker."""
    code = (
        "import os, paho.mqtt.client as m, queue\n"
        "q = queue.Queue()\n"
        "c = m.Client(m.CallbackAPIVersion.VERSION2, client_id='compose-test-sys', clean_session=True)\n"
        "c.username_pw_set('operator', open('/run/secrets/mqtt_operator').read().strip())\n"
        "c.on_connect = lambda c, u, f, rc, p: c.subscribe('$SYS/broker/clients/total')\n"
        "c.on_message = lambda c, u, msg: q.put(msg.payload.decode())\n"
        "c.connect('mosquitto', 1883); c.loop_start(); print(q.get(timeout=20)); c.loop_stop()\n"
    )
    done = stack.compose("run", "--rm", "--entrypoint", "python", "edgectl", "-c", code, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def broker_login(stack: Stack, user: str, password: str) -> int:
    """CONNACK code of a login to the broker from inside the compose network (0 = accepted); the password
    goes in on stdin, never on a command line."""
    code = (
        "import sys, queue, paho.mqtt.client as m\n"
        "q = queue.Queue()\n"
        "c = m.Client(m.CallbackAPIVersion.VERSION2, client_id='compose-test-login', clean_session=True)\n"
        f"c.username_pw_set({user!r}, sys.stdin.readline().strip())\n"
        "c.on_connect = lambda c, u, f, rc, p: q.put(rc.value)\n"
        "c.connect('mosquitto', 1883); c.loop_start(); print(q.get(timeout=20)); c.loop_stop()\n"
    )
    done = _run(
        ["docker-compose", "run", "-T", "--rm", "--entrypoint", "python", "edgectl", "-c", code],
        timeout=120, cwd=stack.root, env=stack.env, input=password + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_restart_kill_and_down_up_keep_the_data_and_leave_nothing_behind(stack: Stack) -> None:
    sessions = broker_sessions(stack)
    assert stack.compose("restart", "odoo-sync").returncode == 0
    stack.wait_healthy(("odoo-sync",))
    before = stack.archived()
    stack.wait_archived(more_than=before)

    assert _run(["docker", "kill", stack.container("mo-planner")]).returncode == 0
    assert stack.compose("up", "-d").returncode == 0
    stack.wait_healthy()
    before = stack.archived()
    stack.wait_archived(more_than=before)

    kept = stack.archived()
    assert stack.compose("down", timeout=240).returncode == 0
    assert stack.compose("up", "-d", timeout=300).returncode == 0
    stack.wait_healthy()
    # odoo-sim starts afresh with `up`: only batches archived from now on were surely reported to the Odoo we
    # can ask (one archived while `down` was stopping the stack went to the old one).
    restarted_at = stack.psql("SELECT now()")
    assert stack.archived() >= kept, "down + up lost archived batches"
    stack.wait_archived(more_than=kept)
    # `down` also stops plc-sim, which is a PLC reboot: the batch it was dosing is gone from its memory and
    # waits in attention, never re-dosed (README, "PLC reboot"). The operator gives up on it as documented.
    lost = stack.psql("SELECT mo_id, last_error FROM mo_batch WHERE state = 'attention'").splitlines()
    assert len(lost) <= 1 and all("lost on the PLC" in row for row in lost), lost
    for row in lost:
        out = stack.edgectl("cancel", row.split("|")[0])
        assert "cancel" in out.lower(), out
    assert_nothing_lost_or_doubled(stack, since=restarted_at)
    # Defect 8: fixed client ids, so re-created containers resume their sessions instead of adding new ones.
    assert broker_sessions(stack) <= sessions
    # Defect 7: no anonymous volume left behind by a down + up (the broker image's /mosquitto/log).
    assert not dangling_volumes() - stack.volumes_before  # type: ignore[attr-defined]


def test_broker_password_rotation_as_documented_survives_a_broker_restart(stack: Stack) -> None:
    """Defect 4: the documented procedure, then the broker's next restart: mo-planner must stay connected."""
    old = (stack.root / "secrets" / "mqtt_mo_planner").read_text()
    stack.block("rotate")
    assert (stack.root / "secrets" / "mqtt_mo_planner").read_text() != old
    stack.wait_healthy(("mo-planner",))
    assert stack.compose("restart", "mosquitto").returncode == 0
    stack.wait_healthy(("mosquitto", *SERVICES))
    assert stack.healthz("mo-planner")["mqtt_connected"] is True
    # The new password is the one the broker knows now, the old one is refused.
    assert broker_login(stack, "mo_planner", old.strip()) != 0
    assert broker_login(stack, "mo_planner", (stack.root / "secrets" / "mqtt_mo_planner").read_text().strip()) == 0
    before = stack.archived()
    stack.wait_archived(more_than=before)


# ---------------------------------------------------------------- the operator console (profile `console`)


class _CsrfField(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("name") == "csrf" and self.value is None:
            self.value = found.get("value")


def console_login(stack: Stack, login: str) -> tuple[str, str]:
    """Log in over HTTP on the published port as a browser does (login page, its CSRF token, POST); returns
    (the page the login lands on, its URL)."""
    base = f"http://127.0.0.1:{stack.env['CONSOLE_PUBLISH_PORT']}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/login", timeout=10) as resp:
        form = _CsrfField()
        form.feed(resp.read().decode())
    assert form.value, "the login page has no CSRF token"
    password = (stack.root / "secrets" / f"console_password_{login}").read_text().strip()
    body = urllib.parse.urlencode({"username": login, "password": password, "csrf": form.value, "next": "/"})
    with opener.open(f"{base}/login", data=body.encode(), timeout=10) as resp:
        return resp.read().decode(), resp.geturl()


def test_console_as_documented_serves_the_overview_after_a_login(stack: Stack) -> None:
    stack.block("console", timeout=300)
    stack.wait_healthy(("console",))
    page, url = console_login(stack, "operator")
    assert url.endswith("/") and "/login" not in url, url
    assert 'id="live"' in page and "PLC link" in page and "plc_gateway" in page, page[:2000]
    assert 'id="logout"' in page and "operator" in page
    page, _ = console_login(stack, "viewer")
    assert 'id="live"' in page and "viewer" in page
    uid = stack.compose("exec", "-T", "console", "id", "-u", profiles=("sim", "console")).stdout.strip()
    assert uid == APP_UID  # console-users ran with the caller's uid; the console itself does not
    # No secret in the console's logs or its container's configuration: its passwords, the hashes, the session
    # key, the broker and database passwords it reads.
    values = stack.secrets()
    secrets = [values[n] for n in ("console_secret_key", "mqtt_console", "postgres_password")]
    secrets += [v for n, v in values.items() if n.startswith("console_password_")]
    secrets += [line.rsplit(":", 1)[-1] for line in values["console_users"].splitlines() if line.count(":") == 2]
    assert len(secrets) == 7, "three secrets, two passwords, two hashes"
    haystack = stack.compose("logs", "--no-color", "console", profiles=("sim", "console")).stdout
    haystack += _run(["docker", "inspect", stack.container("console")]).stdout
    assert "login" in haystack, "the console logs its logins"
    assert not [s for s in secrets if s in haystack]


def test_postgres_password_rotation_as_documented(stack: Stack) -> None:
    """Issue 13's rotation, for the database: the documented procedure, then the old password is refused, the
    new one works, the services (and the console) are ready on it and batches keep flowing."""
    old = (stack.root / "secrets" / "postgres_password").read_text().strip()
    stack.block("rotate-postgres", timeout=300)
    new = (stack.root / "secrets" / "postgres_password").read_text().strip()
    assert new != old
    stack.wait_healthy((*LONG_RUNNING, "console"))
    assert postgres_login(stack, old) == "refused"
    assert postgres_login(stack, new) == "ok"
    for name in ("mo-planner", "odoo-sync", "failure-monitor"):
        body = stack.healthz(name)
        assert body["healthy"] is True and body["problems"] == [], (name, body)
    before = stack.archived()
    stack.wait_archived(more_than=before)
    # The rest read the file whenever they run: edgectl, the migrate job, a purge by hand (housekeeping's own
    # schedule would try the database only in a minute).
    for args in (("edgectl", "queue"), ("migrate",), ("housekeeping", "housekeeping", "--once")):
        done = stack.compose("run", "--rm", *args, timeout=120)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])


def postgres_login(stack: Stack, password: str) -> str:
    """A TCP login to PostgreSQL as POSTGRES_USER from inside the compose network (as the services log in);
    the password goes in on stdin, never on a command line."""
    code = (
        "import sys, psycopg2\n"
        "try:\n"
        "    psycopg2.connect(host='postgres', dbname='feedmill', user='feedmill',\n"
        "                     password=sys.stdin.readline().strip(), connect_timeout=10).close()\n"
        "    print('ok')\n"
        "except psycopg2.OperationalError as exc:\n"
        "    print('refused' if 'password authentication failed' in str(exc) else 'error: %s' % exc)\n"
    )
    done = _run(
        ["docker-compose", "run", "-T", "--rm", "--entrypoint", "python", "edgectl", "-c", code],
        timeout=120, cwd=stack.root, env=stack.env, input=password + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------- backup and restore (defect 9)


def test_backup_and_restore_as_documented(stack: Stack) -> None:
    # odoo-sync alone moves batches into mo_histories: with it stopped the dump's count is known.
    assert stack.compose("stop", "odoo-sync").returncode == 0
    at_dump = stack.archived()
    stack.block("backup")
    assert (stack.root / "backups" / "feedmill.dump").stat().st_size > 1000
    assert stack.compose("start", "odoo-sync").returncode == 0
    stack.wait_archived(more_than=at_dump)
    stack.block("restore", timeout=300)
    assert stack.archived() == at_dump
    stack.wait_healthy()
