"""`./scripts/demo` as a user runs it: a subprocess with no DATABASE_URL / MQTT_URL, so it embeds its own
PostgreSQL and Mosquitto. The test sees the system only the way an operator would: through `edgectl status
--json` reading the connection file the demo wrote. Then Ctrl-C (SIGINT) must stop every process of the demo
and exit 0; a demo killed with SIGKILL must be cleaned up by the next run.

The demo dir lies under pytest's tmp dir, which is 0700: as root, PostgreSQL and Mosquitto (which drop to their
own accounts) cannot reach it, so this also covers the demo's fallback to a directory in the system temp dir.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[2]
EDGECTL = Path(sys.executable).parent / "edgectl"
pytestmark = pytest.mark.slow


def _clean_env(tmp: Path) -> dict[str, str]:
    """The caller's shell without settings that would make the demo use outside servers."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "DATABASE_", "PLC_", "ODOO_", "DEMO_"))
    }
    env.update(
        EDGECTL_CONFIG=str(tmp / "connection.env"),
        DEMO_DIR=str(tmp / "demo"),
        DEMO_BATCH_SECONDS="2",
        DEMO_EXTRA_MOS="10",
        DEMO_STATUS_EVERY="0",
    )
    return env


def _pids_naming(paths: list[str]) -> list[tuple[int, str]]:
    """Every process whose command line names one of `paths` (the demo's servers all do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(p in cmd for p in paths):
            found.append((int(entry.name), cmd.strip()))
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class DemoRun:
    tmp: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.tmp / "demo.out"

    @property
    def demo_dir(self) -> Path:
        return Path(self.env["DEMO_DIR"])

    @property
    def connection_file(self) -> Path:
        return Path(self.env["EDGECTL_CONFIG"])

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.started = time.monotonic()
        # A session of its own: the test's SIGINT reaches the demo only, as when a user presses Ctrl-C in it.
        self.process = subprocess.Popen(
            [str(REPO / "scripts" / "demo")],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        out.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-8000:]

    def status(self) -> dict[str, Any] | None:
        """`edgectl status --json` as an operator would run it (no flags: the connection file is found)."""
        # Only this run's file: a demo killed with SIGKILL leaves its own behind (with its servers running).
        assert self.process is not None
        if (
            not self.connection_file.exists()
            or f"(pid {self.process.pid})" not in self.connection_file.read_text()
        ):
            return None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "DATABASE_"))}
        env["EDGECTL_CONFIG"] = str(self.connection_file)
        done = subprocess.run(
            [str(EDGECTL), "status", "--json"], capture_output=True, text=True, env=env, timeout=30, check=False
        )
        if done.returncode not in (0, 1):  # 1 = degraded (e.g. a service still starting); 3 = unreachable
            return None
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def wait_for_batches(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, f"demo exited with {self.process.returncode}\n{self.output()}"
            doc = self.status()
            if doc is not None and doc.get("completed", 0) >= 1:
                return doc
            time.sleep(1.0)
        raise AssertionError(f"no batch completed within {timeout}s\n{self.output()}")

    def server_paths(self) -> list[str]:
        """The demo dir and where its servers really live (symlink targets in the temp dir)."""
        paths = [str(self.demo_dir)]
        for name in ("pg", "mosquitto"):
            link = self.demo_dir / name
            if link.is_symlink():
                paths.append(str(link.resolve()))
        return paths

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[DemoRun]]:
    made: list[DemoRun] = []
    yield made
    for run in made:
        if run.process is not None and run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            try:
                run.process.wait(60)
            except subprocess.TimeoutExpired:
                run.kill()
    # Whatever a failed test left behind: stop exactly the processes naming this test's directories.
    paths = made[-1].server_paths() if made else []
    for pid, _ in _pids_naming(paths):
        os.kill(pid, signal.SIGKILL)
    for path in paths[1:]:
        shutil.rmtree(path, ignore_errors=True)


def _stop_and_check(run: DemoRun, mqtt_port: int, leftovers_of: list[str]) -> None:
    assert run.process is not None
    run.process.send_signal(signal.SIGINT)
    try:
        rc = run.process.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"demo did not stop within 60s after SIGINT\n{run.output()}") from None
    assert rc == 0, run.output()
    out = run.output()
    # The stop order: services before the broker they publish "offline" to, the database last.
    order = [out.index(f"==> stopping {what}") for what in ("supervisord", "Mosquitto", "PostgreSQL")]
    assert order == sorted(order), out
    assert _pids_naming(leftovers_of) == []
    assert not _listening(mqtt_port)
    assert not run.connection_file.exists(), "the connection file must not point to a stopped demo"


def _mqtt_session(port: int, user: str | None, password: str | None, topic: str) -> tuple[bool, list[str]]:
    """(connection accepted, topics of the retained messages received within 3 s)."""
    connacks: queue.Queue[bool] = queue.Queue()
    topics: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-demo-{user or 'anonymous'}")
    if user:
        client.username_pw_set(user, password)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        connacks.put(not rc.is_failure)
        if not rc.is_failure:
            c.subscribe(topic, 1)

    client.on_connect = on_connect
    client.on_message = lambda c, u, msg: topics.append(msg.topic)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        accepted = connacks.get(timeout=5)
        if accepted:
            time.sleep(3)
    finally:
        client.loop_stop()
        client.disconnect()
    return accepted, topics


def _mqtt_port(connection_text: str) -> int:
    url = next(line for line in connection_text.splitlines() if line.startswith("MQTT_URL="))
    return int(url.rsplit(":", 1)[1])


def test_demo_runs_batches_and_stops_on_ctrl_c(tmp_path: Path, runs: list[DemoRun]) -> None:
    run = DemoRun(tmp_path, _clean_env(tmp_path))
    runs.append(run)
    run.start()
    doc = run.wait_for_batches(timeout=60)
    took = time.monotonic() - run.started
    print(f"first completed batch after {took:.1f}s")

    assert all(s["online"] for s in doc["services"].values()), doc["services"]
    assert doc["plc"]["reachable"], doc["plc"]
    assert doc["attention"] == 0
    # the connection file: edgectl's format, the operator's broker user, passwords only by file, private
    conn = run.connection_file
    assert conn.stat().st_mode & 0o777 == 0o600
    text = conn.read_text()
    keys = {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert {"MQTT_URL", "MQTT_PASSWORD_FILE", "DATABASE_URL", "MQTT_TOPIC_ROOT"} <= keys
    assert "mqtt://operator@127.0.0.1:" in text
    for secret in (run.demo_dir / "secrets").iterdir():
        assert secret.stat().st_mode & 0o077 == 0
        assert secret.read_text().strip() not in text
    # the embedded broker is the production setup: no anonymous access; MQTT Explorer's viewer user reads all
    port = _mqtt_port(text)
    root = doc["topic_root"]
    assert _mqtt_session(port, None, None, f"{root}/#")[0] is False
    viewer_pw = (run.demo_dir / "secrets" / "mqtt_viewer").read_text().strip()
    accepted, seen = _mqtt_session(port, "viewer", viewer_pw, f"{root}/#")
    assert accepted and f"{root}/gateway/status" in seen and f"{root}/plc/read/1" in seen, seen
    # not the machine's own servers
    assert port != 1883 and ":5432/" not in text

    paths = run.server_paths()
    assert _pids_naming(paths), "the demo's servers should be visible while it runs"
    _stop_and_check(run, port, paths)


def test_demo_rerun_cleans_up_after_a_killed_demo(tmp_path: Path, runs: list[DemoRun]) -> None:
    env = _clean_env(tmp_path)
    first = DemoRun(tmp_path, env)
    runs.append(first)
    first.start()
    first.wait_for_batches(timeout=60)
    old_paths = first.server_paths()
    # SIGKILL the demo's own process only (its servers are in their own sessions): they are orphaned.
    assert first.process is not None
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    assert _pids_naming(old_paths), "orphaned servers expected after SIGKILL"

    second = DemoRun(tmp_path, env)
    runs.append(second)
    second.start()
    second.wait_for_batches(timeout=60)  # a fresh database: the new odoo-sim's MOs are queued again
    assert "the supervisord an earlier demo run left behind" in second.output()
    assert "the PostgreSQL an earlier demo run left behind" in second.output()
    old_only = [p for p in old_paths if p not in second.server_paths()]
    assert _pids_naming(old_only) == [], "the earlier run's servers must be stopped"
    _stop_and_check(second, _mqtt_port(second.connection_file.read_text()), [*old_paths, *second.server_paths()])
