"""The whole chain on loopback: PLC finish -> Odoo updated, slot free -> next batch written, batches per
hour with compressed batch time, and CPU % / RSS per service, measured in one run of separate processes.

Times come from the database's own timestamps and audit rows (finished_at = stored after the PLC set
status_manufacturing = 1, at most one poll period after it; reported_at = Odoo confirmed). Each
--batch-seconds value is a separate system run in this process (a short and a longer dosing time show whether
any figure scales with the batch period); the ratio of their tails is printed next to the machine's noise: the
bare-socket FINS baseline (same frame) measured before each run, and the load average.

    .venv/bin/python benchmarks/chain.py --batches 200 --slots 4 --batch-seconds 0.5 5 --poll-ms 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import percentile, proc_sample
from benchmarks.fins_rtt import bare_socket
from tests.support.system import SERVICES, System


@dataclass
class Result:
    slots: int
    batch_seconds: float
    per_hour: float
    f2o_ms: list[float]
    gap_ms: list[float]
    noise_p50_us: float
    noise_p99_us: float


def tail(values: list[float]) -> str:
    return (
        f"n={len(values)} p50={percentile(values, 50):.1f} ms p99={percentile(values, 99):.1f} ms "
        f"max={max(values, default=float('nan')):.1f} ms"
    )


def run_once(batches: int, slots: int, batch_seconds: float, poll_ms: int, scan_ms: float) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        s = System(
            Path(tmp),
            slots=slots,
            batch_seconds=batch_seconds,
            extra_mos=batches + 5 * slots + 5,
            sim_args=["--scan-ms", f"{scan_ms:g}"],  # 0: the chain's own cost; > 0: a PLC's scan time too
            odoo_args=["--seed", "none"],
            env={"POLL_INTERVAL_MS": str(poll_ms), "LOG_LEVEL": "WARNING", "SYNC_SWEEP_S": "30"},
        )
        try:
            s.wait_healthy()
            rtts, _ = bare_socket(s.sim_port, 500)  # noise baseline: the same plc-sim, a bare blocking socket
            while s.completed() < slots + 1:  # warm-up: sessions, first queue fill
                time.sleep(0.2)
            start_count, t0 = s.completed(), time.monotonic()
            cpu0 = {name: proc_sample(s.procs[name].pid) for name in SERVICES}
            target = start_count + batches
            deadline = t0 + 60 + batches * (batch_seconds + 3) / slots
            while s.completed() < target and time.monotonic() < deadline:
                time.sleep(0.2)
            t1, end_count = time.monotonic(), s.completed()
            cpu1 = {name: proc_sample(s.procs[name].pid) for name in SERVICES}
            f2o = [
                float(r[0]) * 1000
                for r in s.sql(
                    "SELECT extract(epoch FROM reported_at - finished_at) FROM mo_histories "
                    "WHERE status = 'completed' AND reported_at IS NOT NULL AND finished_at IS NOT NULL"
                )
            ]
            # per slot: the ack that freed it -> the next batch written to that slot
            events = s.sql(
                "SELECT a.at, a.action, h.slot FROM audit_event a JOIN mo_histories h ON h.mo_id = a.mo_id "
                "WHERE a.action = 'ack_slot' OR (a.action = 'transition' AND a.to_state = 'written') ORDER BY a.at"
            )
            freed: dict[int, object] = {}
            gap_ms = []
            for at, action, slot in events:
                if action == "ack_slot":
                    freed[slot] = at
                elif slot in freed:
                    gap_ms.append((at - freed.pop(slot)).total_seconds() * 1000)
            done = end_count - start_count
            per_hour = done / (t1 - t0) * 3600
            p50_us, p99_us = percentile(rtts, 50) * 1e6, percentile(rtts, 99) * 1e6
            print(
                f"chain: {done} batches measured ({end_count} archived), {slots} slots, batch (dosing) time "
                f"{batch_seconds:.1f} s, poll {poll_ms} ms, PLC scan {scan_ms:g} ms, "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            scans = " (includes the simulated scans)" if scan_ms else ""
            print(f"  noise baseline: bare-socket FINS round trip p50={p50_us:.0f} us p99={p99_us:.0f} us{scans}")
            print(f"  PLC finish stored -> Odoo updated: {tail(f2o)}")
            print(f"  slot free (ack) -> next batch written: {tail(gap_ms)}")
            print(
                f"  throughput: {per_hour:.0f} batches/hour ({(t1 - t0) / max(1, done):.2f} s per batch over "
                f"{slots} slots incl. {batch_seconds:.1f} s dosing)"
            )
            for name in SERVICES:
                cpu = 100 * (cpu1[name].cpu_seconds - cpu0[name].cpu_seconds) / (t1 - t0)
                print(f"  {name:16s} CPU {cpu:5.1f}%  RSS {cpu1[name].rss_bytes / 2**20:6.1f} MiB")
            return Result(slots, batch_seconds, per_hour, f2o, gap_ms, p50_us, p99_us)
        finally:
            s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--slots", type=int, nargs="+", default=[4], help="several values: throughput compared")
    ap.add_argument("--batch-seconds", type=float, nargs="+", default=[0.5, 5.0])
    ap.add_argument("--poll-ms", type=int, default=500)
    ap.add_argument("--scan-ms", type=float, default=0.0, help="plc-sim scan time (0 = instant replies)")
    args = ap.parse_args()
    results = [
        run_once(args.batches, n, b, args.poll_ms, args.scan_ms) for n in args.slots for b in args.batch_seconds
    ]
    fewest = min(args.slots)
    for r in results:
        if r.slots != fewest:
            base = next(x for x in results if x.slots == fewest and x.batch_seconds == r.batch_seconds)
            print(
                f"  throughput {r.slots} slots vs {fewest}: x{r.per_hour / base.per_hour:.1f} "
                f"({r.per_hour:.0f} vs {base.per_hour:.0f} batches/hour, dosing {r.batch_seconds:g} s)"
            )
    short = results[0]
    for r in results[1:]:
        if r.slots != short.slots:
            continue
        factor = r.batch_seconds / short.batch_seconds
        noise = f"noise: bare-socket p99 {short.noise_p99_us:.0f} us vs {r.noise_p99_us:.0f} us"
        for what, a, b in (
            ("finish -> Odoo", short.f2o_ms, r.f2o_ms),
            ("slot free -> write", short.gap_ms, r.gap_ms),
        ):
            print(
                f"  scaling {what}: batch time x{factor:.0f} -> p99 x{percentile(b, 99) / percentile(a, 99):.2f}, "
                f"max x{max(b) / max(a):.2f}   ({noise})"
            )


if __name__ == "__main__":
    main()
