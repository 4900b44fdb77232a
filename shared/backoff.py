"""Retry timing shared by the workers: exponential back-off with a cap and deterministic jitter."""

from __future__ import annotations

import datetime as dt
import hashlib


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 300.0, key: str = "") -> float:
    """Delay before retry number `attempt` (1 = first retry). Jitter (up to +25%) is derived from `key` so
    replicas spread out while a given item's schedule stays reproducible in tests."""
    if attempt < 1:
        return 0.0
    delay = min(cap, base * 2.0 ** (attempt - 1))
    jitter = int(hashlib.sha1(f"{key}:{attempt}".encode()).hexdigest()[:4], 16) / 0xFFFF * 0.25
    return float(min(cap, delay * (1 + jitter)))


def next_attempt_at(
    now: dt.datetime, attempt: int, base: float = 2.0, cap: float = 300.0, key: str = ""
) -> dt.datetime:
    return now + dt.timedelta(seconds=backoff_seconds(attempt, base, cap, key))
