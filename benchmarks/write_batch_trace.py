"""Where a `write_batch` reply's time goes, per FINS command, in PLC scans (issue 12's write_batch target).

The simulator runs in this process with a tracer on its FINS port (the scan counter and time.monotonic() when
each request arrived and when it was served); the gateway runs as its own process, unchanged but wrapped
(benchmarks/traced_gateway.py: the time each FINS request was asked and answered, each command handled and
replied). Both stamp CLOCK_MONOTONIC, so the two traces line up. An MQTT client sends write_batch to each
active slot in turn, as benchmarks/scan_model.py does, and every reply is cut into:

- mqtt in: publish -> the gateway's command loop has the message;
- behind poll: the command's first FINS request asked -> it reached the simulator (the one poll read already
  on the wire is served first: the FINS client keeps one request in flight);
- per command (0104 read of both slot sides, 0102 write, 0101 read-back): scans charged = the scan that served
  it minus the scans completed when it arrived (1 = served at the end of the scan it arrived in, 2 = one
  more);
- mqtt out: reply published -> the client has it.

    .venv/bin/python benchmarks/write_batch_trace.py --scan-ms 20 --slots 10 --samples 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import percentile, write_batch_body
from shared.fins import frames
from simulators.plc.program import ProgramConfig
from simulators.plc.server import SimConfig, run_in_thread
from tests.support.procs import Proc, Watcher
from tests.support.servers import free_port, start_mosquitto

ROOT = "scada/trace"
GATEWAY_NODE = 10
NAMES = {"0101": "read", "0102": "write", "0104": "read2"}


@dataclass
class SimEvent:
    t: float
    ev: str  # arrived | served
    scans: int  # the scan counter at that moment (scans completed)
    sid: int
    code: str
    sa1: int


def sim_tracer(out: list[SimEvent]) -> Any:
    def trace(ev: str, data: bytes, scans: int) -> None:
        t = time.monotonic()
        try:
            header, command, _ = frames.parse_command(data)
        except Exception:
            return
        out.append(SimEvent(t, ev, scans, header.sid, f"{command:04X}", header.sa1))

    return trace


def replies_to(request_id: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda t, b: t.endswith("/reply") and b.get("request_id") == request_id


def run(scan_ms: float, slots: int, samples: int, poll_ms: int, tmp: Path) -> dict[str, Any]:
    broker = start_mosquitto(workdir=Path(tempfile.mkdtemp(dir=tmp)))
    sim_events: list[SimEvent] = []
    handle = run_in_thread(
        SimConfig(port=0, node=1, slots=slots, scan_ms=scan_ms, seed=5, program=ProgramConfig(batch_seconds=3600))
    )
    handle.call(lambda: handle.sim.scan.tracers.append(sim_tracer(sim_events)))
    trace_file = tmp / "gateway-trace.jsonl"
    watch = Watcher(broker.host, broker.port, f"{ROOT}/#")
    gw = Proc(
        "gw",
        [sys.executable, "-m", "benchmarks.traced_gateway"],
        {
            "GATEWAY_TRACE_FILE": str(trace_file),
            "MQTT_URL": broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "PLC_HOST": "127.0.0.1",
            "PLC_PORT": str(handle.port),
            "PLC_NODE": "1",
            "GATEWAY_NODE": str(GATEWAY_NODE),
            "GATEWAY_STATE_DIR": str(tmp / "gateway-state"),
            "PLC_SLOTS": str(slots),
            "POLL_INTERVAL_MS": str(poll_ms),
            "HEALTH_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
        },
        tmp / "gw.log",
    ).start()
    rng = random.Random(7)
    sent: dict[str, tuple[float, float]] = {}  # request id -> (published, reply arrived)
    try:
        watch.wait_for(lambda t, b: t == f"{ROOT}/plc/failure", 20)
        time.sleep(1.0)
        n = 0
        while len(sent) < samples:
            handle.reboot(armed=True)  # W = 1 everywhere: every slot takes a batch again
            time.sleep(0.2)
            for slot in range(1, slots + 1):
                if len(sent) >= samples:
                    break
                n += 1
                rid = f"t-{n}"
                body = write_batch_body(rid, slot, n)
                mark = watch.mark()
                t_pub = time.monotonic()
                watch.publish(f"{ROOT}/cmd/write_batch", body)
                watch.wait_for(replies_to(rid), 10, mark)
                t_in = next(
                    ts
                    for ts, t, b, _ in watch.messages[mark:]
                    if b is not None and t.endswith("/reply") and b.get("request_id") == rid
                )
                sent[rid] = (t_pub, t_in)
                time.sleep(rng.uniform(0, poll_ms / 1000))
    finally:
        gw.terminate()
        watch.stop()
        handle.stop()
        broker.stop()
    gw_events = [json.loads(line) for line in trace_file.read_text().splitlines()]
    return analyse(sent, gw_events, sim_events)


def analyse(sent: dict[str, tuple[float, float]], gw: list[dict[str, Any]], sim: list[SimEvent]) -> dict[str, Any]:
    ours = [e for e in sim if e.sa1 == GATEWAY_NODE]
    arrivals = [e for e in ours if e.ev == "arrived"]
    handles = [e["t"] for e in gw if e["ev"] == "handle"]
    delivered = [e["t"] for e in gw if e["ev"] == "delivered" and e["topic"].endswith("/cmd/write_batch")]
    replies = {e["request_id"]: e["t"] for e in gw if e["ev"] == "reply"}
    rows: list[dict[str, Any]] = []
    for rid, (t_pub, t_in) in sent.items():
        t_reply = replies[rid]
        t_handle = max(t for t in handles if t <= t_reply)
        calls = [e for e in gw if e["ev"] == "call" and e["in_command"] and t_handle <= e["t"] <= t_reply]
        first_call = calls[0]["t"] if calls else t_handle
        # The command's own requests are the last len(calls) to arrive before its reply: the poll and the
        # diagnostics ask for nothing while a command holds the link (turns.py). Arrival times are stamped by
        # the simulator's thread, so a poll read sent just before the command may be stamped after first_call.
        before_reply = [a for a in arrivals if a.t <= t_reply]
        mine = before_reply[len(before_reply) - len(calls) :] if calls else []
        # A poll read on the wire when the command asked for its first request (the gateway's own stamps): the
        # command's first request goes out once its reply is back.
        fins = [e for e in gw if e["ev"] in ("call", "ret")]
        polls = [e for e in fins if not e["in_command"] and first_call - 1.0 <= e["t"] <= t_reply]
        ahead = [
            e
            for i, e in enumerate(polls)
            if e["ev"] == "call"
            and e["t"] < first_call
            and next((r["t"] for r in polls[i + 1 :] if r["ev"] == "ret" and r["code"] == e["code"]), 0.0)
            > first_call
        ]
        charged = []
        for a in mine:
            s = next(e for e in ours if e.ev == "served" and e.sid == a.sid and e.code == a.code and e.t >= a.t)
            charged.append((a.code, s.scans - a.scans, s.t - a.t))
        rows.append(
            {
                "total": t_in - t_pub,
                "mqtt_in": t_handle - t_pub,
                "to_loop": t_handle - max(t for t in delivered if t <= t_handle),
                "behind_poll": (mine[0].t - first_call) if mine else float("nan"),  # until it reached the PLC
                "poll_ahead": bool(ahead),
                "commands": charged,
                "mqtt_out": t_in - t_reply,
                "gateway": t_reply - t_handle,
            }
        )
    return {"rows": rows}


def report(scan_ms: float, slots: int, result: dict[str, Any]) -> None:
    rows = result["rows"]

    def col(values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return f"p50 {percentile(ms, 50):6.1f}  p99 {percentile(ms, 99):6.1f}  max {max(ms):6.1f} ms"

    print(f"scan {scan_ms:g} ms, {slots} slots, {len(rows)} write_batch replies, load {os.getloadavg()[0]:.2f}")
    print(f"  reply (publish -> reply at client): {col([r['total'] for r in rows])}")
    print(f"  mqtt in (publish -> command loop):  {col([r['mqtt_in'] for r in rows])}")
    print(f"    of which paho thread -> loop:     {col([r['to_loop'] for r in rows])}")
    behind = [r["behind_poll"] for r in rows if r["poll_ahead"]]
    print(
        f"  a poll read on the wire at command start: {len(behind)} of {len(rows)}; "
        f"first request asked -> at the PLC: {col(behind) if behind else '-'}"
    )
    by_code: dict[str, Counter[int]] = {}
    times: dict[str, list[float]] = {}
    for r in rows:
        for i, (code, scans, seconds) in enumerate(r["commands"]):
            key = f"{i + 1}:{NAMES.get(code, code)}"
            by_code.setdefault(key, Counter())[scans] += 1
            times.setdefault(key, []).append(seconds)
    for key in sorted(by_code):
        hist = ", ".join(f"{k} scan(s) x{v}" for k, v in sorted(by_code[key].items()))
        print(f"  command {key:8s} arrival -> served: {col(times[key])}; charged {hist}")
    print(f"  gateway (command loop -> reply published): {col([r['gateway'] for r in rows])}")
    print(f"  mqtt out (reply published -> client): {col([r['mqtt_out'] for r in rows])}")
    print("  slowest five (ms: total = mqtt in + behind poll + commands [scans] + rest):")
    for r in sorted(rows, key=lambda r: r["total"], reverse=True)[:5]:
        cmds = " + ".join(f"{NAMES.get(c, c)} {sec * 1000:.0f} [{n}]" for c, n, sec in r["commands"])
        waited = f"{r['behind_poll'] * 1000:.0f}" if r["poll_ahead"] else "0"
        print(
            f"    {r['total'] * 1000:.0f} = {r['mqtt_in'] * 1000:.0f} (to loop {r['to_loop'] * 1000:.0f}) + {waited} + "
            f"{cmds}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scan-ms", type=float, default=20.0)
    ap.add_argument("--slots", type=int, default=10)
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--poll-ms", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.scan_ms, args.slots, args.samples, args.poll_ms, Path(tmp))
    report(args.scan_ms, args.slots, result)


if __name__ == "__main__":
    main()
