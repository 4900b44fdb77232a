"""Talks to Odoo for mo_planner on a worker thread, so an Odoo outage never stalls PLC handling: the list of
MOs to queue, and `mo-detail` re-checks of a queued MO just before it is written."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooError
from shared.odoo.models import Mo

log = logging.getLogger("mo_planner.odoo")


@dataclass(frozen=True)
class FeedResult:
    """The first `limit` MOs of Odoo's list (`mos`), or why it failed."""

    mos: list[Mo] | None
    error: str | None
    limit: int = 0

    @property
    def full(self) -> bool:
        """Odoo may hold more MOs than this page showed."""
        return self.mos is not None and 0 < self.limit <= len(self.mos)


@dataclass(frozen=True)
class DetailResult:
    """One MO as Odoo holds it now (`mo`), or why Odoo could not say."""

    mo_id: str
    mo: Mo | None
    error: str | None


class OdooFeed:
    def __init__(self, client: OdooClient, states: list[str], on_result: Callable[[], None]) -> None:
        self.client = client
        self.states = states
        self.on_result = on_result  # thread-safe: tells the planner's thread that `results` holds news
        self.results: queue.Queue[FeedResult | DetailResult] = queue.Queue()
        self._wanted = threading.Event()
        self._list_limit: int | None = None  # None: no list wanted
        self._checks: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="odoo-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, limit: int) -> None:
        """Fetch the first `limit` MOs of the list (one fetch however often it is asked for before it runs, with
        the largest limit asked)."""
        with self._lock:
            self._list_limit = max(limit, self._list_limit or 0)
        self._wanted.set()

    def check(self, mo_id: str) -> None:
        """Read one MO with mo-detail (asked twice before it runs = read once)."""
        with self._lock:
            if mo_id not in self._checks:
                self._checks.append(mo_id)
        self._wanted.set()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.is_set():
                return
            with self._lock:
                checks, self._checks = self._checks, []
                limit, self._list_limit = self._list_limit, None
            self.busy = limit is not None
            try:
                # Checks first: a slot is waiting for each of them.
                for mo_id in checks:
                    self.results.put(self._detail(mo_id))
                    self.on_result()
                if limit is not None:
                    self.results.put(self._list(limit))
                    self.on_result()
            finally:
                self.busy = False

    def _detail(self, mo_id: str) -> DetailResult:
        try:
            return DetailResult(mo_id, self.client.mo_detail(mo_id), None)
        except OdooError as exc:
            log.warning("Odoo mo-detail failed", extra={"mo_id": mo_id, "error": str(exc)})
            return DetailResult(mo_id, None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # never let the feed thread die silently
            log.exception("Odoo mo-detail crashed", extra={"mo_id": mo_id})
            return DetailResult(mo_id, None, f"{type(exc).__name__}: {exc}")

    def _list(self, limit: int) -> FeedResult:
        try:
            return FeedResult(self.client.fetch_queue(self.states, limit=limit), None, limit)
        except OdooError as exc:
            log.warning("Odoo MO list failed", extra={"error": str(exc)})
            return FeedResult(None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # never let the feed thread die silently
            log.exception("Odoo MO list crashed")
            return FeedResult(None, f"{type(exc).__name__}: {exc}")
