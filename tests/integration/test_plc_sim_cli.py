"""`plc-sim` as a process: READY line, FINS over UDP, control API, clean SIGTERM, argument errors."""

from __future__ import annotations

import asyncio
import subprocess

from shared.fins.client import FinsClient
from shared.plc.memory_map import load_memory_map
from tests.support.plcsim import PlcSimProcess, plc_sim_command

MAP = load_memory_map()


def test_plc_sim_process_serves_fins_and_control(plc_sim: PlcSimProcess) -> None:
    async def read() -> tuple[list[int], str]:
        async with FinsClient(port=plc_sim.port, timeout=1.0) as c:
            flag = await c.read_words(MAP.flag_address("write_slot", 1), 1)
            return flag, (await c.controller_status()).mode_name

    flag, mode = asyncio.run(read())
    assert flag == [1] and mode == "RUN"
    plc_sim.post("/words", {"address": 900, "words": [4, 5, 6]})
    assert plc_sim.get("/memory?address=900&count=3")["words"] == [4, 5, 6]
    assert plc_sim.get("/state")["fins"]["requests"] == 2
    plc_sim.stop()
    assert plc_sim.process.returncode == 0


def test_plc_sim_rejects_bad_arguments() -> None:
    bad = subprocess.run([*plc_sim_command(), "--drop", "2"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "probability" in bad.stderr
    bad = subprocess.run(
        [*plc_sim_command(), "--port", "0", "--slots", "11"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "slots" in bad.stderr
