"""Counters and round-trip times of one FINS client, for Prometheus and the status topic."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FinsStats:
    requests: int = 0  # commands sent for the first time (a chunked read counts each chunk)
    replies: int = 0  # valid replies accepted (any end code)
    timeouts: int = 0  # attempts that got no valid reply in time
    retries: int = 0  # retransmissions (after a timeout or a retryable end code)
    failures: int = 0  # commands that raised after all attempts
    late_replies: int = 0  # replies to a SID that already timed out: dropped
    stray_datagrams: int = 0  # datagrams matching nothing of ours (unknown SID, wrong peer, not FINS): dropped
    invalid_replies: int = 0  # right SID but wrong command/node/length: dropped
    end_code_errors: int = 0  # replies with a non-success end code
    non_fatal_warnings: int = 0  # successful replies flagging a PLC non-fatal error (0x0040)
    rtt_min: float | None = None
    rtt_max: float | None = None
    rtt_sum: float = 0.0
    rtt_count: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def observe_rtt(self, seconds: float) -> None:
        self.rtt_count += 1
        self.rtt_sum += seconds
        self.rtt_min = seconds if self.rtt_min is None else min(self.rtt_min, seconds)
        self.rtt_max = seconds if self.rtt_max is None else max(self.rtt_max, seconds)
        self.recent.append(seconds)

    @property
    def rtt_avg(self) -> float | None:
        return self.rtt_sum / self.rtt_count if self.rtt_count else None

    def rtt_percentile(self, pct: float) -> float | None:
        """Nearest-rank percentile over the recent ring (pct in 0..100)."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
        return ordered[rank - 1]

    @property
    def rtt_p50(self) -> float | None:
        return self.rtt_percentile(50)

    @property
    def rtt_p99(self) -> float | None:
        return self.rtt_percentile(99)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "replies": self.replies,
            "timeouts": self.timeouts,
            "retries": self.retries,
            "failures": self.failures,
            "late_replies": self.late_replies,
            "stray_datagrams": self.stray_datagrams,
            "invalid_replies": self.invalid_replies,
            "end_code_errors": self.end_code_errors,
            "non_fatal_warnings": self.non_fatal_warnings,
            "rtt_min": self.rtt_min,
            "rtt_avg": self.rtt_avg,
            "rtt_max": self.rtt_max,
            "rtt_p50": self.rtt_p50,
            "rtt_p99": self.rtt_p99,
        }
