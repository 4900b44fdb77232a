"""FINS round trip on loopback: our asyncio client vs a bare blocking UDP socket and vs the asyncio floor (a
bare asyncio datagram endpoint, no checks), same 77-word read frame, same simulator process, same run. The
three run in alternating rounds so machine noise hits all alike; the spread of the bare socket over the rounds
is printed as the noise baseline next to every ratio. Stops after --rounds x --count requests per client.

    .venv/bin/python benchmarks/fins_rtt.py [--count 1000] [--rounds 5]
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
    cmd = [sys.executable, "-m", "simulators.plc", "--port", "0", "--scan-ms", "0", "--log-level", "WARNING"]
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


class _Floor(asyncio.DatagramProtocol):
    future: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(data)


async def asyncio_floor(port: int, count: int) -> tuple[list[float], float]:
    """The least an asyncio UDP request costs: one endpoint, a future per request, first datagram taken."""
    frame = frames.encode_command(Route(da1=1, sa1=10), 1, frames.memory_area_read(ADDRESS, WORDS))
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Floor, local_addr=("0.0.0.0", 0), family=socket.AF_INET
    )
    rtts: list[float] = []
    try:
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            proto.future = loop.create_future()
            transport.sendto(frame, ("127.0.0.1", port))
            await proto.future
            rtts.append(time.perf_counter() - t0)
        return rtts, time.perf_counter() - started
    finally:
        transport.close()


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


def report(name: str, rtts: list[float], rates: list[float]) -> None:
    print(
        f"{name:<30} n={len(rtts):<6} p50={percentile(rtts, 50) * 1e6:6.0f} us  p99={percentile(rtts, 99) * 1e6:6.0f} us"
        f"  mean={statistics.fmean(rtts) * 1e6:6.0f} us  {statistics.median(rates):7.0f} req/s (median of rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="requests per client per round (bounded run)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    proc, port = start_simulator()
    runs: dict[str, tuple[list[float], list[float]]] = {
        "bare blocking socket": ([], []),
        "asyncio floor (no checks)": ([], []),
        "FinsClient (asyncio)": ([], []),
    }
    try:
        bare_socket(port, 200)  # warm-up
        print(
            f"FINS 0101 read D{ADDRESS} x {WORDS} words, loopback, simulator pid {proc.pid}, {args.rounds} rounds"
        )
        for _ in range(args.rounds):
            for name, (rtts, elapsed) in (
                ("bare blocking socket", bare_socket(port, args.count)),
                ("asyncio floor (no checks)", asyncio.run(asyncio_floor(port, args.count))),
                ("FinsClient (asyncio)", asyncio.run(fins_client(port, args.count))),
            ):
                runs[name][0].extend(rtts)
                runs[name][1].append(len(rtts) / elapsed)
        for name, (rtts, rates) in runs.items():
            report(name, rtts, rates)
        bare_rates = runs["bare blocking socket"][1]
        noise = (max(bare_rates) - min(bare_rates)) / statistics.median(bare_rates)
        bare, floor, client = (statistics.median(r[1]) for r in runs.values())
        print(
            f"  ratio FinsClient / bare socket = {client / bare:.2f}x   "
            f"(noise: bare socket spread over rounds {min(bare_rates):.0f}-{max(bare_rates):.0f} req/s = {noise:.0%})"
        )
        print(f"  ratio asyncio floor / bare socket = {floor / bare:.2f}x   (same noise)")
        print(
            f"  per request: asyncio itself {1e6 / floor - 1e6 / bare:.0f} us, the client's own work "
            f"(SID, timer, validation, stats) {1e6 / client - 1e6 / floor:.0f} us"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)


if __name__ == "__main__":
    main()
