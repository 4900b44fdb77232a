"""What each worker's imports cost: RSS of a fresh interpreter after importing the service module (what a
started, idle worker holds before its first unit of work), and the heaviest top-level imports by
`python -X importtime` (cumulative microseconds; a rough proxy for the memory they bring).

    .venv/bin/python benchmarks/worker_memory.py
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKERS = ["plc_gateway", "mo_planner", "odoo_sync", "failure_monitor"]
PROBE = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); "
    "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
)


def measure(module: str) -> tuple[float, dict[str, int]]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rss_mib = int(out.stdout.strip()) / 1024
    cost: dict[str, int] = defaultdict(int)
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (p.strip() for p in line[len("import time:") :].split("|"))
        if not name.startswith(" "):  # top level (not indented): imported directly by a module of ours or site
            cost[name.split(".")[0]] = max(cost[name.split(".")[0]], int(cumulative))
    return rss_mib, cost


def main() -> None:
    base, _ = measure("json")
    print(f"bare interpreter (+json): RSS {base:.1f} MiB")
    for worker in WORKERS:
        rss, cost = measure(f"services.{worker}.app")
        top = sorted(((v, k) for k, v in cost.items() if k not in ("services", "shared")), reverse=True)[:6]
        heavy = ", ".join(f"{k} {v / 1000:.0f} ms" for v, k in top)
        print(f"{worker:16s} RSS after import {rss:5.1f} MiB; heaviest imports: {heavy}")


if __name__ == "__main__":
    main()
