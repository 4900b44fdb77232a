"""`edgectl decode` on the reference vectors (docs/plc-program.md P6, loaded, never copied) and
`edgectl plc read` against the simulator, both as subprocesses where it matters."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgectl.__main__ import main
from tests.support.plcsim import PlcSimProcess

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO.parent / "shared" / "reference" / "vectors"
EDGECTL = [str(Path(sys.executable).with_name("edgectl"))]
AREA_ARG = {"read_slot": "read-slot", "write_slot": "write-slot", "failure": "failure"}


def vectors() -> list[Path]:
    files = sorted(VECTORS.glob("*.json"))
    assert files, f"reference vectors missing under {VECTORS}"
    return files


def decode_args(vector: dict[str, Any]) -> list[str]:
    args = ["decode", AREA_ARG[vector["area"]], "--words", ",".join(str(w) for w in vector["words"])]
    if vector["area"] != "failure":
        args += ["--slot", str(vector.get("slot", 1))]
    return args


@pytest.mark.parametrize("path", vectors(), ids=lambda p: p.stem)
def test_decode_reference_vector(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vector = json.loads(path.read_text())
    assert main(decode_args(vector)) == 0
    out = json.loads(capsys.readouterr().out)
    expect = vector["expect"]
    assert out["valid"] is expect["valid"], out["errors"]
    if expect["valid"]:
        fields = dict(out["fields"])
        fields.pop("event_id", None)
        assert fields == expect["fields"]
    else:
        assert out["fields"] == {}
        for reason in expect["why"]:
            assert reason in out["errors"]


def test_decode_subprocess_and_bad_arguments() -> None:
    vector = json.loads((VECTORS / "failure-area-silo101.json").read_text())
    ok = subprocess.run([*EDGECTL, *decode_args(vector)], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and json.loads(ok.stdout)["fields"]["equipment_code"] == "silo101"
    for words in ("1,2,3", "a,b", ",".join(["70000"] * 23), ",".join(["1.5"] * 23)):
        bad = subprocess.run([*EDGECTL, "decode", "failure", "--words", words], capture_output=True, text=True)
        assert bad.returncode == 2, (words, bad.stdout)
        assert bad.stdout == ""
    bad_slot = subprocess.run(
        [*EDGECTL, "decode", "read-slot", "--slot", "11", "--words", ",".join(["0"] * 77)], capture_output=True
    )
    assert bad_slot.returncode == 2
    assert subprocess.run([*EDGECTL, "decode", "nowhere", "--words", "1"], capture_output=True).returncode == 2


def test_plc_read_against_the_simulator(plc_sim: PlcSimProcess) -> None:
    plc_sim.post("/words", {"address": 6000, "words": list(range(100, 177))})
    args = ["plc", "read", "--host", "127.0.0.1", "--port", str(plc_sim.port), "--node", "1"]
    for address in ("D6000", "6000"):
        done = subprocess.run(
            [*EDGECTL, *args, "--source-node", "42", "--address", address, "--count", "77"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == list(range(100, 177))
    status = subprocess.run(
        [*EDGECTL, "plc", "status", "--host", "127.0.0.1", "--port", str(plc_sim.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(status.stdout) == {"running": True, "mode": "RUN", "status": 1}


def test_plc_read_reports_a_silent_plc_with_exit_3() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        target = ["--host", "127.0.0.1", "--port", str(port), "--address", "D6000", "--count", "77"]
        done = subprocess.run(
            [*EDGECTL, "plc", "read", *target, "--timeout", "0.1", "--retries", "1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 3
    assert "did not answer" in done.stderr and done.stdout == ""
    bad = subprocess.run(
        [*EDGECTL, "plc", "read", "--host", "x", "--address", "E1", "--count", "1"], capture_output=True
    )
    assert bad.returncode == 2


def test_plc_read_mapped_areas_only(plc_sim: PlcSimProcess) -> None:
    plc_sim.post("/words", {"address": 7100, "words": list(range(77))})
    target = ["plc", "read", "--host", "127.0.0.1", "--port", str(plc_sim.port), "--source-node", "43"]
    by_area = subprocess.run(
        [*EDGECTL, *target, "--area", "write-slot", "--slot", "2"], capture_output=True, text=True, timeout=30
    )
    assert by_area.returncode == 0, by_area.stderr
    assert json.loads(by_area.stdout) == list(range(77))
    decoded = subprocess.run(
        [*EDGECTL, *target, "--area", "failure", "--decode"], capture_output=True, text=True, timeout=30
    )
    assert decoded.returncode == 0 and set(json.loads(decoded.stdout)) == {"valid", "empty", "errors", "fields"}
    for outside in (["--address", "D9100", "--count", "1"], ["--address", "D6070", "--count", "30"]):
        refused = subprocess.run([*EDGECTL, *target, *outside], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "not inside one mapped area" in refused.stderr
        assert refused.stdout == ""
