"""FINS round trip on loopback: our asyncio client vs a bare blocking UDP socket, same 77-word read frame,
same simulator process, same run. Prints p50/p99 RTT and requests per second; stops after --count requests.

    .venv/bin/python benchmarks/fins_rtt.py [--count 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.fins import frames
from shared.fins.client import FinsClient
from shared.fins.frames import Route

ADDRESS, WORDS = 6000, 77


def start_simulator() -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "simulators.plc", "--port", "0", "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                return proc, int(dict(p.split("=", 1) for p in line.split()[1:])["udp"])
    proc.kill()
    raise SystemExit("simulator did not start")


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


def bare_socket(port: int, count: int) -> tuple[list[float], float]:
    """Minimal blocking client: one socket, same frame, SID 1, takes the first datagram (no checks)."""
    frame = frames.encode_command(Route(da1=1, sa1=10), 1, frames.memory_area_read(ADDRESS, WORDS))
    rtts: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        s.connect(("127.0.0.1", port))
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            s.send(frame)
            s.recv(4096)
            rtts.append(time.perf_counter() - t0)
        return rtts, time.perf_counter() - started


async def fins_client(port: int, count: int) -> tuple[list[float], float]:
    rtts: list[float] = []
    async with FinsClient(port=port, timeout=2.0) as c:
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            words = await c.read_words(ADDRESS, WORDS)
            rtts.append(time.perf_counter() - t0)
            assert len(words) == WORDS
        return rtts, time.perf_counter() - started


def report(name: str, rtts: list[float], elapsed: float) -> None:
    print(
        f"{name:<22} n={len(rtts):<6} p50={percentile(rtts, 50) * 1e6:7.0f} us  p99={percentile(rtts, 99) * 1e6:7.0f} us"
        f"  mean={statistics.fmean(rtts) * 1e6:7.0f} us  {len(rtts) / elapsed:8.0f} req/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=3000, help="requests per client (bounded run)")
    args = parser.parse_args()
    proc, port = start_simulator()
    try:
        bare_socket(port, 200)  # warm-up
        print(f"FINS 0101 read D{ADDRESS} x {WORDS} words, loopback, simulator pid {proc.pid}")
        report("bare blocking socket", *bare_socket(port, args.count))
        report("FinsClient (asyncio)", *asyncio.run(fins_client(port, args.count)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)


if __name__ == "__main__":
    main()
