"""Helpers for benchmark scripts: process CPU/RSS from /proc, percentiles, a private broker."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class CpuSample:
    cpu_seconds: float
    rss_bytes: int


def proc_sample(pid: int) -> CpuSample:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    rss_pages = int(fields[21])
    return CpuSample((utime + stime) / CLK_TCK, rss_pages * PAGE)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms)} p50={percentile(ms, 50):.2f} ms p99={percentile(ms, 99):.2f} ms "
        f"mean={statistics.fmean(ms):.2f} ms"
    )


# A small batch for write_batch benchmarks: three targets, the rest of the slot zero.
BENCH_TARGETS = {"silo101": 41.6, "silo102": 160.0, "lq114": 40.0}


def write_batch_body(request_id: str, slot: int, n: int) -> dict[str, Any]:
    """A write_batch command for benchmark batch number `n` (MO name from n) into `slot`."""
    return {
        "request_id": request_id,
        "slot": slot,
        "batch": {
            "mo_id": f"WH/MO/{n:05d}",
            "bom_name": "JF PLUS KUR",
            "finished_goods": "JF PLUS KUR",
            "quantity": 1000.0,
            "targets": BENCH_TARGETS,
        },
    }
