"""`edgectl plc probe` as a process against plc-sim over real UDP (scan time from PLC_SIM_SCAN_MS): a wrong DA1, the right one, a
PLC that replies only to a fixed port, and a unit that does not exist. The probe must never change PLC memory."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from shared.plc.memory_map import load_memory_map
from tests.support.plcsim import PlcSimProcess, start_plc_sim
from tests.support.procs import console
from tests.support.servers import free_port

MAP = load_memory_map()
PROBE = [console("edgectl"), "plc", "probe", "--host", "127.0.0.1"]
SIM_NODE = 7  # not 1 (the default PLC_NODE) nor 127.0.0.1's last octet: only DA1 = 7 or 0 reaches it


@pytest.fixture
def sim() -> Iterator[PlcSimProcess]:
    s = start_plc_sim("--node", str(SIM_NODE))  # scan time: PLC_SIM_SCAN_MS, else 10 ms
    yield s
    s.stop()


def probe(port: int, *args: str) -> tuple[int, dict[str, Any]]:
    run = subprocess.run(
        [*PROBE, "--port", str(port), "--timeout", "0.3", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},  # no PLC_* from the caller's environment
    )
    assert run.stdout, run.stderr
    return run.returncode, json.loads(run.stdout)


def by_combo(doc: dict[str, Any]) -> dict[tuple[int, int, int, int], dict[str, Any]]:
    return {(r["da1"], r["sa1"], r["da2"], r["local_port"]): r for r in doc["results"]}


def mapped_memory(sim: PlcSimProcess) -> list[list[int]]:
    spans = [(MAP.base_address(a, 1), MAP.layout_of(a).words) for a in ("read_slot", "write_slot", "failure")]
    return [sim.get(f"/memory?address={first}&count={words}")["words"] for first, words in spans]


def test_wrong_da1_then_the_right_one(sim: PlcSimProcess) -> None:
    before = mapped_memory(sim)
    free = free_port(2)  # the fixed local port to try: the simulator holds its own FINS port on this host
    rc, doc = probe(sim.port, "--node", "5", "--fixed-port", str(free))
    results = by_combo(doc)
    assert rc == 1  # works, but not as configured
    assert results[(5, 251, 0, 0)]["result"] == "timeout"  # the configured DA1: dropped by the PLC
    assert results[(0, 251, 0, 0)]["result"] == "ok" and results[(0, 251, 0, 0)]["plc_node"] == SIM_NODE
    assert all(r["result"] == "timeout" for r in doc["results"] if r["da1"] in (1, 5))
    assert "Set PLC_NODE=7." in " ".join(doc["verdict"])
    assert "SA1=251" in doc["note"] and "read-only" in doc["note"]

    rc, doc = probe(sim.port, "--node", str(SIM_NODE), "--fixed-port", str(free))
    assert rc == 0
    assert doc["results"][0] == {
        "da1": SIM_NODE,
        "sa1": 251,
        "da2": 0,
        "local_port": 0,
        "result": "ok",
        "end_code": "0000",
        "plc_node": SIM_NODE,
        "detail": None,
    }
    assert doc["verdict"][0].startswith("FINS works as configured")
    assert mapped_memory(sim) == before  # 0101 reads only


def test_a_plc_replying_only_to_its_fins_port() -> None:
    fixed = free_port(2)
    sim = start_plc_sim("--node", str(SIM_NODE), "--reply-port", str(fixed))
    try:
        rc, doc = probe(sim.port, "--node", str(SIM_NODE), "--fixed-port", str(fixed), "--da2", "3")
    finally:
        sim.stop()
    results = by_combo(doc)
    assert rc == 1
    assert results[(SIM_NODE, 251, 0, 0)]["result"] == "timeout"  # the reply went to the fixed port
    assert results[(SIM_NODE, 251, 0, fixed)]["result"] == "ok"
    assert results[(SIM_NODE, 251, 3, fixed)]["end_code"] == "0202"  # unit missing
    text = " ".join(doc["verdict"])
    assert f"Set FINS_LOCAL_PORT={fixed}" in text and "PLC_NODE" not in text and "DA2=3" in text


def test_nothing_listening() -> None:
    rc, doc = probe(free_port(2), "--fixed-port", str(free_port(2)))
    assert rc == 3
    assert all(r["result"] == "timeout" for r in doc["results"])
    assert doc["verdict"][0].startswith("No combination got a FINS reply")


def test_bad_arguments_send_nothing() -> None:
    run = subprocess.run(
        [*PROBE, "--address", "D0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert run.returncode == 2 and "not inside a mapped area" in run.stderr and run.stdout == ""
