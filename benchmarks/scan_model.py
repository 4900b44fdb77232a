"""plc_gateway against a PLC that keeps a CJ2M's time (plc-sim --scan-ms): FINS commands per poll, poll duration
and overruns, PLC change -> MQTT latency, write_batch reply time and gateway CPU, at 1 and 10 slots, whole-area
polling next to the old per-slot plan (POLL_MODE=slot). Prints numbers; bounded, stops by itself.

- Commands per poll: the simulator's FINS request count over the gateway's poll count, in an idle window.
- Poll duration: the gateway's own `gateway_poll_seconds` histogram (mean, and the bucket holding the p99).
- PLC change -> MQTT: another FINS node writes a failure-area description word at a random phase of the poll;
  the clock starts when that write's reply is back (the PLC holds the change from then on) and stops when a
  subscriber sees the snapshot carrying it.
- write_batch reply: an MQTT client sends write_batch to each active slot in turn (the simulator doses for an
  hour, so each write lands on a free slot; a reboot with W = 1 frees them all again between rounds) and times
  the reply. The gateway reads both slot sides (one 0104), writes the block and reads it back: three commands,
  each served at the end of the scan it reaches the PLC in (one scan apart back to back), behind at most the
  one poll read already on the wire. benchmarks/write_batch_trace.py breaks this time down per command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import percentile, proc_sample, write_batch_body
from shared.fins.client import FinsClient
from shared.plc.memory_map import load_memory_map
from tests.support.procs import Proc, Watcher, console
from tests.support.servers import free_port, start_mosquitto

ROOT = "scada/bench"
POLL_MS = 500


@dataclass(frozen=True)
class Case:
    scan_ms: float
    slots: int
    poll_mode: str
    diag_s: float = 30.0

    def label(self) -> str:
        diag = "" if self.diag_s == 30 else f", diagnostics every {self.diag_s:g} s"
        return f"scan {self.scan_ms:g} ms, {self.slots:2d} slot(s), POLL_MODE={self.poll_mode}{diag}"


def http(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else float("nan")


def _buckets(text: str) -> dict[float, float]:
    pattern = r'^gateway_poll_seconds_bucket\{le="([0-9.]+)"\} ([0-9.eE+]+)$'
    return {float(le): float(v) for le, v in re.findall(pattern, text, re.MULTILINE)}


def poll_p99_bucket(before: str, after: str) -> str:
    """The smallest histogram bucket holding 99 % of the polls between two scrapes (bounds the p99)."""
    b0, b1 = _buckets(before), _buckets(after)
    total = metric(after, "gateway_poll_seconds_count") - metric(before, "gateway_poll_seconds_count")
    for le in sorted(b1):
        if b1[le] - b0.get(le, 0.0) >= 0.99 * total:
            return f"<= {le * 1000:.0f} ms"
    return "> 5 s"


Match = Callable[[str, dict[str, Any]], bool]


def shows(value: int) -> Match:
    """The failure-area snapshot carrying `value` in the description word the benchmark changes."""
    return lambda t, b: t == f"{ROOT}/plc/failure" and b["words"][12] == value


def answers(request_id: str) -> Match:
    return lambda t, b: t.endswith("/reply") and b.get("request_id") == request_id


def run_case(case: Case, samples: int, tmp: Path) -> dict[str, Any]:
    m = load_memory_map()
    broker = start_mosquitto(workdir=Path(tempfile.mkdtemp(dir=tmp)))
    sim_port, control_port, health_port = free_port(2), free_port(), free_port()
    control = f"http://127.0.0.1:{control_port}"
    tag = uuid.uuid4().hex[:6]
    sim = Proc(
        "sim",
        [
            *(
                console("plc-sim"),
                "--host",
                "127.0.0.1",
                "--port",
                str(sim_port),
                "--control-port",
                str(control_port),
            ),
            *(
                "--node",
                "1",
                "--slots",
                str(case.slots),
                "--scan-ms",
                f"{case.scan_ms:g}",
                "--batch-seconds",
                "3600",
            ),
        ],
        {},
        tmp / f"sim-{tag}.log",
    ).start()
    watch = Watcher(broker.host, broker.port, f"{ROOT}/#")
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
            "GATEWAY_STATE_DIR": str(tmp / f"gateway-state-{tag}"),
            "PLC_SLOTS": str(case.slots),
            "POLL_MODE": case.poll_mode,
            "POLL_INTERVAL_MS": str(POLL_MS),
            "PLC_DIAG_INTERVAL_S": f"{case.diag_s:g}",
            "HEALTH_PORT": str(health_port),
            "LOG_LEVEL": "WARNING",
            "MQTT_CLIENT_ID": f"gw-bench-{tag}",
        },
        tmp / f"gw-{tag}.log",
    ).start()
    metrics_url = f"http://127.0.0.1:{health_port}/metrics"
    try:
        watch.wait_for(lambda t, b: t == f"{ROOT}/plc/failure", 20)
        time.sleep(1.0)

        def scrape() -> str:
            with urllib.request.urlopen(metrics_url, timeout=5) as resp:
                return str(resp.read().decode())

        # 1. Idle: commands per poll, CPU.
        before, req0, cpu0, t0 = (
            scrape(),
            http(control + "/state")["fins"]["requests"],
            proc_sample(gw.pid),
            time.monotonic(),
        )
        time.sleep(8.0)
        after, req1, cpu1, t1 = (
            scrape(),
            http(control + "/state")["fins"]["requests"],
            proc_sample(gw.pid),
            time.monotonic(),
        )
        polls = metric(after, "gateway_polls_total") - metric(before, "gateway_polls_total")
        per_poll = (req1 - req0) / polls if polls else float("nan")
        idle_cpu = 100 * (cpu1.cpu_seconds - cpu0.cpu_seconds) / (t1 - t0)

        rng = random.Random(int(case.scan_ms) * 100 + case.slots)

        def arrival(match: Match, since: int) -> float:
            """When the first message matching `match` (index >= since) reached the subscriber."""
            watch.wait_for(match, 10, since=since)
            return next(ts for ts, t, b, _ in watch.messages[since:] if b is not None and match(t, b))

        address = m.base_address("failure") + 12  # a description word: no handshake depends on it

        # 2. PLC change -> MQTT.
        async def changes() -> list[float]:
            out: list[float] = []
            async with FinsClient(host="127.0.0.1", port=sim_port, dest_node=1, source_node=77) as fins:
                for i in range(samples):
                    value = 0x4100 + (i % 200) + 1
                    start = watch.mark()
                    await fins.write_words(address, [value])
                    t_change = time.monotonic()
                    out.append(arrival(shows(value), start) - t_change)
                    await asyncio.sleep(rng.uniform(0, POLL_MS / 1000))
            return out

        lat = asyncio.run(changes())

        # 3. write_batch reply time, each slot in turn, reboot (W = 1) between rounds.
        replies: list[float] = []
        codes: dict[str, int] = {}
        n = 0
        cpu2, t2 = proc_sample(gw.pid), time.monotonic()
        while len(replies) < samples:
            http(control + "/reboot", {"armed": True})
            time.sleep(0.2)
            for slot in range(1, case.slots + 1):
                if len(replies) >= samples:
                    break
                n += 1
                body = write_batch_body(f"b-{tag}-{n}", slot, n)
                sent = time.monotonic()
                mark = watch.mark()
                watch.publish(f"{ROOT}/cmd/write_batch", body)
                arrived = arrival(answers(str(body["request_id"])), mark)
                _, reply = watch.wait_for(answers(str(body["request_id"])), 1, since=mark)
                codes[reply["code"]] = codes.get(reply["code"], 0) + 1
                replies.append(arrived - sent)
                time.sleep(rng.uniform(0, POLL_MS / 1000))
        cpu3, t3 = proc_sample(gw.pid), time.monotonic()
        final = scrape()

        def delta(name: str) -> float:
            """Over the measured part only: the first poll races the simulator's start-up."""
            return metric(final, name) - metric(before, name)

        state = http(control + "/state")["plc"]
        return {
            "case": case,
            "per_poll": per_poll,
            "poll_mean_ms": 1000
            * delta("gateway_poll_seconds_sum")
            / max(1.0, delta("gateway_poll_seconds_count")),
            "poll_p99": poll_p99_bucket(before, final),
            "overruns": delta("gateway_poll_overruns_total"),
            "polls": delta("gateway_polls_total"),
            "lat": lat,
            "write": replies,
            "codes": codes,
            "idle_cpu": idle_cpu,
            "busy_cpu": 100 * (cpu3.cpu_seconds - cpu2.cpu_seconds) / (t3 - t2),
            "scan_avg_ms": state["cycle_ms"]["average"],
            "deferred": state["deferred"],
        }
    finally:
        gw.terminate()
        sim.terminate()
        watch.stop()
        broker.stop()


def ms(values: list[float], pct: float) -> str:
    return f"{percentile([v * 1000 for v in values], pct):.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=40, help="latency and write_batch samples per case (40)")
    ap.add_argument("--scan-ms", type=float, nargs="+", default=[10, 20])
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--poll-modes", nargs="+", choices=("area", "slot"), default=["area", "slot"])
    ap.add_argument(
        "--diag-case",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the largest case with diagnostics every 0.5 s (default on)",
    )
    args = ap.parse_args()
    cases = [Case(s, n, mode) for s in args.scan_ms for n in args.slots for mode in args.poll_modes]
    if args.diag_case:  # diagnostics do not delay commands
        cases.append(Case(max(args.scan_ms), max(args.slots), "area", diag_s=0.5))
    print(f"poll period {POLL_MS} ms; {args.samples} samples per latency column (up to 100: p99 = max)")
    print(
        "case | FINS cmds/poll | poll mean / p99 bucket | overruns/polls | change->MQTT p50/p99 ms | "
        "write_batch reply p50/p99 ms (codes) | gateway CPU idle/commands | scan avg ms, deferred"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            r = run_case(case, args.samples, Path(tmp))
            print(
                f"{case.label()} | {r['per_poll']:.2f} | {r['poll_mean_ms']:.0f} ms / {r['poll_p99']} | "
                f"{r['overruns']:.0f}/{r['polls']:.0f} | {ms(r['lat'], 50)}/{ms(r['lat'], 99)} | "
                f"{ms(r['write'], 50)}/{ms(r['write'], 99)} ({', '.join(f'{k} {v}' for k, v in r['codes'].items())}) | "
                f"{r['idle_cpu']:.1f}%/{r['busy_cpu']:.1f}% | {r['scan_avg_ms']}, {r['deferred']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
