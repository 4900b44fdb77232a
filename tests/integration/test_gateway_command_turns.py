"""plc_gateway (a real process) against a simulator with a 20 ms scan and 10 slots: a `write_batch` is three FINS
requests (one 0104 read of both slot sides, the 0102 write, the 0101 read-back) that follow each other on the
link, with no poll read or diagnostics request between them (services/plc_gateway/turns.py). The order of
arrival at the simulator is the evidence, not wall time."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.plc_gateway.area_poll import plan_reads
from shared.fins import frames
from shared.plc.memory_map import load_memory_map, with_active_slots
from simulators.plc.program import ProgramConfig
from simulators.plc.server import SimConfig, SimHandle, run_in_thread
from tests.support.procs import Proc, Watcher, console
from tests.support.servers import Broker, free_port

ROOT = "scada/turns"
GATEWAY_NODE = 10
MAP = with_active_slots(load_memory_map(), 10)


def plan_codes() -> list[str]:
    """How the poll's reads show in the trace."""
    return [f"0104x{len(r.addresses)}" if r.addresses else "0101" for r in plan_reads(MAP, 990)]


@pytest.fixture
def traced_sim() -> Iterator[tuple[SimHandle, list[str]]]:
    """The simulator and the gateway's requests (command code, and the item count of a 0104), in order of
    arrival."""
    handle = run_in_thread(
        SimConfig(port=0, node=1, slots=10, scan_ms=20, seed=5, program=ProgramConfig(batch_seconds=3600))
    )
    arrived: list[str] = []

    def trace(ev: str, data: bytes, scans: int) -> None:
        header, command, params = frames.parse_command(data)
        if ev == "arrived" and header.sa1 == GATEWAY_NODE:
            items = f"x{len(params) // 4}" if command == frames.MULTIPLE_MEMORY_AREA_READ else ""
            arrived.append(f"{command:04X}{items}")

    handle.call(lambda: handle.sim.scan.tracers.append(trace))
    yield handle, arrived
    handle.stop()


def test_a_write_batch_is_never_interleaved_with_poll_or_diagnostics_requests(
    traced_sim: tuple[SimHandle, list[str]], broker: Broker, tmp_path: Path
) -> None:
    sim, arrived = traced_sim
    watch = Watcher(broker.host, broker.port, f"{ROOT}/#")
    gateway = Proc(
        "gateway",
        [console("plc-gateway")],
        {
            "MQTT_URL": broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "PLC_HOST": "127.0.0.1",
            "PLC_PORT": str(sim.port),
            "PLC_NODE": "1",
            "GATEWAY_NODE": str(GATEWAY_NODE),
            "GATEWAY_STATE_DIR": str(tmp_path / "gateway-state"),
            "PLC_SLOTS": "10",
            # A busy link: a poll (3 reads, about 3 scans) every 100 ms and diagnostics (3 more) every 0.3 s.
            "POLL_INTERVAL_MS": "100",
            "PLC_DIAG_INTERVAL_S": "0.3",
            "HEALTH_PORT": str(free_port()),
            "MQTT_CLIENT_ID": "gw-turns",
        },
        tmp_path / "gateway.log",
    ).start()
    rng = random.Random(12)
    try:
        watch.wait_for(lambda t, b: t == f"{ROOT}/plc/failure", 20)
        for slot in range(1, 11):
            time.sleep(rng.uniform(0, 0.1))  # any phase of the poll
            reply = watch.request(
                f"{ROOT}/cmd/write_batch",
                {
                    "request_id": f"turn-{slot}",
                    "slot": slot,
                    "batch": {
                        "mo_id": f"WH/MO/{slot:05d}",
                        "bom_name": "JF PLUS KUR",
                        "finished_goods": "JF PLUS KUR",
                        "quantity": 1000.0,
                        "targets": {"silo101": 41.6, "silo102": 160.0, "lq114": 40.0},
                    },
                },
            )
            assert reply["ok"] and reply["code"] == "written", reply
    finally:
        gateway.terminate()
        watch.stop()
    codes = sim.call(lambda: list(arrived))
    sides = f"0104x{MAP.layout_of('write_slot').words + MAP.layout_of('read_slot').words}"
    assert sides not in set(plan_codes()), "a poll read would look like a command's read of both slot sides"
    writes = [i for i, code in enumerate(codes) if code == "0102"]  # the poll and the diagnostics never write
    assert len(writes) == 10, codes
    for i in writes:
        assert codes[i - 1 : i + 2] == [sides, "0102", "0101"], (i, codes[max(0, i - 4) : i + 5])
    assert {"0601", "0620", "0701"} <= set(codes)  # the diagnostics did run beside the commands
