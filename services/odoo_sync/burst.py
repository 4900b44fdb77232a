"""Work every due row with up to `width` rows in flight, so batches that finish together reach Odoo side by side.

Why: slots that finish in the same PLC poll were reported one after another, and the last of a burst waited
for every report in front of it (issue 16: at 4 slots the tail grew with the batch period, because longer
dosing keeps slots in step). Against a real Odoo, where one update takes a few hundred milliseconds, a burst
of N finishes would wait N times that. The reports of different MOs are independent, so they may overlap.

Each thread runs the worker's one-row unit (claim one row, call Odoo, commit) until nothing is claimable. A
thread that claims a row lets one more thread start, up to `width`: one due row costs one thread and one
extra (empty) claim, a burst gets `width` claims at once. Rows another thread holds are skipped by the
claim's replica rule (`shared/db/claim.py`), exactly as for a second replica of the service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# One unit of work: claim and handle one row; calls `claimed()` once it holds a row; True when it handled one.
Unit = Callable[[Callable[[], None]], bool]


class BurstDrain:
    def __init__(self, unit: Unit, *, width: int, on_progress: Callable[[], None], name: str) -> None:
        if width < 1:
            raise ValueError("width must be >= 1")
        self._unit = unit
        self._width = width
        self._on_progress = on_progress
        self._pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix=name) if width > 1 else None
        self._cond = threading.Condition()
        self._running = 0
        self._errors: list[BaseException] = []

    def run(self) -> None:
        """Until no row is claimable; the first error of any thread is raised here once all have stopped."""
        if self._pool is None:
            while self._unit(_nothing):
                self._on_progress()
            return
        with self._cond:
            self._errors = []
        self._start_one()
        with self._cond:
            while self._running:
                self._cond.wait()
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _start_one(self) -> None:
        assert self._pool is not None
        with self._cond:
            if self._running >= self._width or self._errors:
                return
            self._running += 1
        self._pool.submit(self._loop)

    def _loop(self) -> None:
        try:
            while self._unit(self._start_one):
                self._on_progress()
        except BaseException as exc:  # handed to run(), which raises it on the worker's own thread
            with self._cond:
                self._errors.append(exc)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()


def _nothing() -> None:
    return None
