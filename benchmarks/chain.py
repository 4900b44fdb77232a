"""The whole chain on loopback: PLC finish -> Odoo updated, slot free -> next batch written, batches per
hour with compressed batch time, and CPU % / RSS per service, measured in one run of separate processes.

Times come from the database's own timestamps and audit rows (finished_at = stored after the PLC set
status_manufacturing = 1, at most one poll period after it; reported_at = Odoo confirmed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import percentile, proc_sample
from tests.support.system import SERVICES, System


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch-seconds", type=float, default=1.0)
    ap.add_argument("--poll-ms", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = System(
            Path(tmp),
            batch_seconds=args.batch_seconds,
            extra_mos=args.batches + 5,
            odoo_args=["--seed", "none"],
            env={"POLL_INTERVAL_MS": str(args.poll_ms), "LOG_LEVEL": "WARNING"},
        )
        try:
            s.wait_healthy()
            while s.completed() < 2:  # warm-up: sessions, first queue fill
                time.sleep(0.2)
            start_count, t0 = s.completed(), time.monotonic()
            cpu0 = {name: proc_sample(s.procs[name].pid) for name in SERVICES}
            deadline = t0 + 30 + args.batches * (args.batch_seconds + 3)
            while s.completed() < args.batches and time.monotonic() < deadline:
                time.sleep(0.2)
            t1, end_count = time.monotonic(), s.completed()
            cpu1 = {name: proc_sample(s.procs[name].pid) for name in SERVICES}
            finish_to_odoo = [
                r[0]
                for r in s.sql(
                    "SELECT extract(epoch FROM reported_at - finished_at) FROM mo_histories "
                    "WHERE status = 'completed' AND reported_at IS NOT NULL AND finished_at IS NOT NULL"
                )
            ]
            acks = [r[0] for r in s.sql("SELECT at FROM audit_event WHERE action = 'ack_slot' ORDER BY at")]
            writes = [
                r[0]
                for r in s.sql(
                    "SELECT at FROM audit_event WHERE action = 'transition' AND to_state = 'written' ORDER BY at"
                )
            ]
            gaps = []
            for ack in acks:
                later = [w for w in writes if w >= ack]
                if later:
                    gaps.append((later[0] - ack).total_seconds())
            per_hour = (end_count - start_count) / (t1 - t0) * 3600
            f2o = [float(x) * 1000 for x in finish_to_odoo]
            gap_ms = [g * 1000 for g in gaps]
            print(
                f"chain: {end_count} batches archived, batch time {args.batch_seconds:.1f} s, "
                f"poll {args.poll_ms} ms, 1 slot"
            )
            print(
                f"  PLC finish stored -> Odoo updated: n={len(f2o)} p50={percentile(f2o, 50):.1f} ms "
                f"p99={percentile(f2o, 99):.1f} ms"
            )
            print(
                f"  slot free (ack) -> next batch written: n={len(gap_ms)} p50={percentile(gap_ms, 50):.1f} ms "
                f"p99={percentile(gap_ms, 99):.1f} ms"
            )
            print(
                f"  throughput: {per_hour:.0f} batches/hour ({(t1 - t0) / max(1, end_count - start_count):.2f} s "
                f"per batch incl. {args.batch_seconds:.1f} s dosing)"
            )
            for name in SERVICES:
                cpu = 100 * (cpu1[name].cpu_seconds - cpu0[name].cpu_seconds) / (t1 - t0)
                print(f"  {name:16s} CPU {cpu:5.1f}%  RSS {cpu1[name].rss_bytes / 2**20:6.1f} MiB")
        finally:
            s.stop()


if __name__ == "__main__":
    main()
