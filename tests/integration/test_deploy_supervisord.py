"""The generated supervisord config runs: real supervisord, real supervisorctl, trivial programs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.supervisord import Program, Supervisor, write_supervisor_config

REPO = Path(__file__).resolve().parents[2]
TRICKY = 'it\'s "quoted", 100% , with = and $HOME'


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    run_dir = tmp_path / "run"
    out = tmp_path / "out.txt"
    programs = [
        Program("sleeper", ["sleep", "300"], startsecs=1, stopwaitsecs=5),
        Program(
            "envdump",
            ["sh", "-c", f'printf %s "$TRICKY" > {out}; printf %s "${{LEAK:-}}" >> {out}; exec sleep 300'],
            env={"TRICKY": TRICKY},
            startsecs=1,
            stopwaitsecs=5,
        ),
        # SIGTERM is ignored: supervisord must escalate to SIGKILL after stopwaitsecs
        Program(
            "stubborn", ["sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"], startsecs=1, stopwaitsecs=1
        ),
    ]
    conf = write_supervisor_config(run_dir, {"COMMON": "yes"}, programs)
    os.environ["LEAK"] = "from-the-shell"  # must not reach programs (launch.py passes only machine variables)
    try:
        sup = Supervisor(conf).start()
    finally:
        del os.environ["LEAK"]
    yield sup
    sup.stop()


def test_supervisord_runs_restarts_and_stops_the_programs(supervisor: Supervisor, tmp_path: Path) -> None:
    supervisor.wait_for_state(["sleeper", "envdump", "stubborn"], "RUNNING", timeout=15)
    # the environment arrives byte for byte, including quotes and %, without the shell's variables
    assert (tmp_path / "out.txt").read_text() == TRICKY
    # the program is the process supervisord started (launch.py exec'd into it): signals reach it directly
    pid = supervisor.pid("sleeper")
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    # autorestart after a crash
    os.kill(pid, signal.SIGKILL)
    supervisor.wait_for_state(["sleeper"], "RUNNING", timeout=15)
    assert supervisor.pid("sleeper") not in (0, pid)
    # the CLI the operator uses works against the same socket
    ctl = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(supervisor.config), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "sleeper" in ctl.stdout and "RUNNING" in ctl.stdout
    # stop: TERM, and SIGKILL after stopwaitsecs for a program that ignores TERM
    assert supervisor.ctl("stop", "stubborn").returncode == 0
    assert supervisor.status()["stubborn"] == "STOPPED"
    logs = tmp_path / "run" / "logs"
    assert (logs / "sleeper.log").exists() and (logs / "supervisord.log").exists()
    supervisor.stop()
    assert supervisor.process is not None and supervisor.process.returncode == 0
    assert not (tmp_path / "run" / "supervisor.sock").exists()
