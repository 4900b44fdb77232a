"""Who goes next on the PLC link: a command in progress before the poll and the diagnostics.

The FINS client serves one request at a time in arrival order. Left at that, a `write_batch` (three FINS commands:
one read of both slot sides, write, read back) arriving mid-poll alternates with the poll's area reads and diagnostics reads, and
under a PLC's scan time (each command costs one to two scans) its reply takes about twice as long. With this
gate the poll and the diagnostics take their next turn only when no command is running: a command waits for
at most the one request already on the wire, and its own requests follow each other. The wait is bounded so
that a flood of commands delays the poll, never stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CommandsFirst:
    def __init__(self, max_wait_s: float) -> None:
        if max_wait_s <= 0:
            raise ValueError("max_wait_s must be positive")
        self.max_wait_s = max_wait_s
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = 0
        self.waited = 0  # turns that had to wait for a command (a count for tests and metrics)

    @property
    def command_running(self) -> bool:
        return self._running > 0

    @contextlib.asynccontextmanager
    async def command(self) -> AsyncIterator[None]:
        """Hold the link's priority for the whole command (all of its FINS requests)."""
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def turn(self) -> None:
        """Before each poll or diagnostics request: wait while a command runs (at most max_wait_s)."""
        if self._idle.is_set():
            return
        self.waited += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.max_wait_s)
