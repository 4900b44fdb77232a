"""PLC simulator fixtures: `plc_sim` runs the real `plc-sim` console script in a subprocess on free ports;
`plc_sim_thread` runs it in-process (own loop, own thread) for tests that inspect its memory directly."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulators.plc.server import SimHandle, run_in_thread

REPO = Path(__file__).resolve().parents[2]


def plc_sim_command() -> list[str]:
    script = Path(sys.executable).with_name("plc-sim")
    if script.exists():
        return [str(script)]
    found = shutil.which("plc-sim")
    return [found] if found else [sys.executable, "-m", "simulators.plc"]


@dataclass
class PlcSimProcess:
    process: subprocess.Popen[str]
    host: str
    port: int
    control_port: int
    log_path: Path

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.control_url + path, timeout=5) as resp:
            return json.load(resp)

    def post(self, path: str, body: Any = None) -> Any:
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(
            self.control_url + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_plc_sim(*extra: str, host: str = "127.0.0.1", timeout: float = 15.0) -> PlcSimProcess:
    """Start `plc-sim` on ephemeral ports and wait for its READY line (ports are read from it: no race)."""
    log_path = Path(tempfile.mkstemp(prefix="plc-sim-", suffix=".log")[1])
    log = open(log_path, "w")  # noqa: SIM115 - owned by the process
    cmd = [*plc_sim_command(), "--host", host, "--port", "0", "--control-port", "0", "--seed", "7", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO, env={**os.environ})
    log.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                fields = dict(part.split("=", 1) for part in line.split()[1:])
                sim = PlcSimProcess(proc, host, int(fields["udp"]), int(fields["control"]), log_path)
                sim.get("/state")  # the control API answers too
                return sim
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"plc-sim did not become ready: {log_path.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def plc_sim() -> Iterator[PlcSimProcess]:
    sim = start_plc_sim("--batch-seconds", "1")
    yield sim
    sim.stop()


@pytest.fixture
def plc_sim_thread() -> Iterator[SimHandle]:
    handle = run_in_thread(seed=11, control_port=0)
    yield handle
    handle.stop()
