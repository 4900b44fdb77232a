"""Fetches confirmed MOs from Odoo on a worker thread, so an Odoo outage never stalls PLC handling."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooError
from shared.odoo.models import Mo

log = logging.getLogger("mo_planner.odoo")


@dataclass(frozen=True)
class FeedResult:
    mos: list[Mo] | None
    error: str | None


class OdooFeed:
    def __init__(self, client: OdooClient, states: list[str]) -> None:
        self.client = client
        self.states = states
        self.results: queue.Queue[FeedResult] = queue.Queue()
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="odoo-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
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
            self.busy = True
            try:
                self.results.put(FeedResult(self.client.fetch_queue(self.states), None))
            except OdooError as exc:
                log.warning("Odoo MO list failed", extra={"error": str(exc)})
                self.results.put(FeedResult(None, f"{type(exc).__name__}: {exc}"))
            except Exception as exc:  # never let the feed thread die silently
                log.exception("Odoo MO list crashed")
                self.results.put(FeedResult(None, f"{type(exc).__name__}: {exc}"))
            finally:
                self.busy = False
