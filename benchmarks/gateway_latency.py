"""PLC-change-to-MQTT latency of plc_gateway, with its CPU % and RSS, at two poll periods in one run.

A FINS client (another node) changes a word in the failure area's description; an MQTT subscriber timestamps
the snapshot that shows it. Latency includes up to one poll period by design. Bounded, stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import proc_sample, summary_ms
from shared.fins.client import FinsClient
from shared.plc.memory_map import load_memory_map
from tests.support.procs import Proc, Watcher, console
from tests.support.servers import free_port, start_mosquitto

ROOT = "scada/bench"


def run(poll_ms: int, samples: int, tmp: Path) -> None:
    m = load_memory_map()
    broker = start_mosquitto(workdir=Path(tempfile.mkdtemp(dir=tmp)))
    sim_port, control_port = free_port(2), free_port()
    sim = Proc(
        "sim",
        [
            console("plc-sim"),
            "--host",
            "127.0.0.1",
            "--port",
            str(sim_port),
            "--control-port",
            str(control_port),
            "--node",
            "1",
            "--scan-ms",
            "0",  # this section measures the gateway's own latency; section 5 adds a PLC's scan time
        ],
        {},
        tmp / f"sim-{poll_ms}.log",
    ).start()
    watch = Watcher(broker.host, broker.port, f"{ROOT}/plc/failure")
    gw = Proc(
        "gw",
        [console("plc-gateway")],
        {
            "MQTT_URL": broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "PLC_HOST": "127.0.0.1",
            "PLC_PORT": str(sim_port),
            "PLC_NODE": "1",
            "GATEWAY_NODE": "10",
            "GATEWAY_STATE_DIR": str(tmp / f"gateway-state-{poll_ms}"),
            "POLL_INTERVAL_MS": str(poll_ms),
            "LOG_LEVEL": "WARNING",
            "MQTT_CLIENT_ID": f"gw-bench-{poll_ms}",
        },
        tmp / f"gw-{poll_ms}.log",
    ).start()
    try:
        watch.wait_for(lambda t, b: True, 15)
        address = m.base_address("failure") + 12  # a description word: no handshake depends on it

        rng = random.Random(poll_ms)

        async def measure() -> list[float]:
            out: list[float] = []
            async with FinsClient(host="127.0.0.1", port=sim_port, dest_node=1, source_node=77) as fins:
                for i in range(samples):
                    value = 0x4100 + (i % 200) + 1  # printable 'A' + low byte
                    start = watch.mark()
                    t0 = time.monotonic()
                    await fins.write_words(address, [value])
                    deadline = t0 + 5
                    while time.monotonic() < deadline:
                        hit = [t for (t, _, b, _) in watch.messages[start:] if b and b["words"][12] == value]
                        if hit:
                            out.append(hit[0] - t0)
                            break
                        await asyncio.sleep(0.001)
                    await asyncio.sleep(rng.uniform(0, poll_ms / 1000))  # random phase vs the poll cycle
            return out

        cpu0, wall0 = proc_sample(gw.pid), time.monotonic()
        lat = asyncio.run(measure())
        cpu1, wall1 = proc_sample(gw.pid), time.monotonic()
        # Idle CPU over a fixed window, as in production between changes.
        idle0 = proc_sample(gw.pid)
        time.sleep(10)
        idle1 = proc_sample(gw.pid)
        print(f"poll {poll_ms:4d} ms | PLC change -> MQTT: {summary_ms(lat)}")
        print(
            f"             | gateway CPU {100 * (cpu1.cpu_seconds - cpu0.cpu_seconds) / (wall1 - wall0):.1f}% "
            f"while measuring, {10 * (idle1.cpu_seconds - idle0.cpu_seconds):.1f}% idle-polling; "
            f"RSS {idle1.rss_bytes / 2**20:.1f} MiB"
        )
    finally:
        gw.terminate()
        sim.terminate()
        watch.stop()
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for poll in (500, 100):
            run(poll, args.samples, Path(tmp))


if __name__ == "__main__":
    main()
