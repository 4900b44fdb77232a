"""odoo_sync (seed Tasks 3 and 4): finished batches -> Odoo -> mo_histories; failed batches -> Odoo cancel.

Each batch is claimed with SELECT ... FOR UPDATE SKIP LOCKED, so replicas never work on the same row. The
Odoo call happens while the row is locked; success and the move to mo_histories commit together. A crash
in between leaves the row `finished`: the retry SETs the same values again (update-with-consumptions).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared import __version__
from shared.backoff import next_attempt_at
from shared.db.claim import claim_batches, due
from shared.db.models import MoBatch
from shared.db.repo import actuals_of, archive, move, now
from shared.db.session import make_session_factory, transaction
from shared.health import readiness, start_health_server
from shared.mqtt.client import Message, MqttLink
from shared.mqtt.events import BatchEvent, BatchEventKind
from shared.mqtt.payloads import PayloadError, utc_now
from shared.mqtt.wire import parse_message
from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooError

from .outcome import Outcome, classify_error, classify_update
from .settings import SyncSettings

log = logging.getLogger("odoo_sync")
SERVICE = "odoo_sync"
WORK_STATES = ("finished", "failed", "reported")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reported = Counter("sync_batches_archived", "Batches archived", ["status"], registry=r)
        self.retries = Counter("sync_retries", "Odoo calls to retry later", registry=r)
        self.attention = Counter("sync_attention", "Batches moved to attention", registry=r)
        self.finish_to_odoo = Histogram(
            "sync_finish_to_odoo_seconds",
            "PLC finish stored -> Odoo confirmed",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )


class Syncer:
    def __init__(self, settings: SyncSettings, odoo: OdooClient) -> None:
        self.s = settings
        self.odoo = odoo
        self.topics = settings.topics
        self.metrics = Metrics()
        self.engine = settings.make_engine(application_name=SERVICE)
        self.db = make_session_factory(self.engine)
        self.wake = threading.Event()
        self.link = MqttLink(
            address=settings.broker(),
            client_id=settings.client_id(SERVICE),
            status_topic=self.topics.svc_status(SERVICE),
            source=SERVICE,
            subscriptions=[(self.topics.batch_events, 1)],
            on_message=self._on_event,
            birth={"version": __version__, "mark_done": settings.mark_done},
        )
        self.last_loop = time.monotonic()
        self.db_ok = True

    def _on_event(self, msg: Message) -> None:
        try:
            event = parse_message(BatchEvent, msg.payload)
        except PayloadError as exc:
            log.warning("batch event refused", extra={"topic": msg.topic, "reason": str(exc)})
            return
        if event.event in ("finished", "failed", "retry"):
            self.wake.set()  # the paho thread only signals; the work happens on the worker thread

    def health(self) -> dict[str, Any]:
        mqtt_ok = self.link.connected.is_set()
        stalled = time.monotonic() - self.last_loop > max(120.0, 4 * self.s.sync_sweep_s)
        return readiness(
            {
                "broker": None if mqtt_ok else "not connected",
                "database": None if self.db_ok else "unavailable",
                "odoo": self.odoo.login_error,
                "loop": "stalled" if stalled else None,
            },
            mqtt_connected=mqtt_ok,
            database_ok=self.db_ok,
        )

    def run(self, stop: threading.Event) -> None:
        health = start_health_server(self.s.health_port, self.metrics.registry, self.health, self.s.health_host)
        self.link.start()
        log.info("odoo_sync started", extra={"mark_done": self.s.mark_done})
        try:
            while not stop.is_set():
                try:
                    delay = self.sweep()
                    self.db_ok = True
                except OperationalError as exc:
                    self.db_ok = False
                    log.error("database unavailable", extra={"error": str(exc.orig)})
                    delay = 2.0
                self.last_loop = time.monotonic()
                self._sleep(delay, stop)
        finally:
            self.link.stop()
            if health:
                health.stop()
            self.engine.dispose()
            log.info("odoo_sync stopped")

    def _sleep(self, seconds: float, stop: threading.Event) -> None:
        """Until the next due retry, an event wakes us, or stop (checked every second)."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self.wake.wait(timeout=min(1.0, left)):
                break
        self.wake.clear()

    def sweep(self) -> float:
        """Work every due row; return the seconds until the next due retry (capped by the sweep period)."""
        while self._process_one():
            pass
        with self.db() as session:
            nxt = session.scalar(
                select(MoBatch.next_attempt_at)
                .where(MoBatch.state.in_(WORK_STATES), MoBatch.next_attempt_at.is_not(None))
                .order_by(MoBatch.next_attempt_at)
                .limit(1)
            )
            # Due rows the claim did not get: a replica works on them, or a lock outlasted the claim's wait.
            # Look again soon: the safety sweep is never the normal path (issue 16).
            held = session.scalar(
                select(MoBatch.id).where(MoBatch.state.in_(WORK_STATES), due(MoBatch.next_attempt_at)).limit(1)
            )
        cap = 1.0 if held is not None else self.s.sync_sweep_s
        if nxt is None:
            return cap
        return max(0.05, min(cap, (nxt - now()).total_seconds()))

    def _process_one(self) -> bool:
        """Claim and handle one due row; True when one was handled (more may be due), as failure_monitor's
        _report_one."""
        events: list[tuple[BatchEventKind, str, dict[str, Any]]] = []
        with transaction(self.db) as session:
            claimed = claim_batches(session, WORK_STATES, order_by=(MoBatch.finished_at, MoBatch.id))
            row = claimed[0] if claimed else None
            if row is None:
                return False
            if row.state == "reported" and self.s.mark_done:
                self._close(session, row, events)
            elif row.state == "reported":
                self._archive_reported(session, row, "orphan sweep (reported, not archived)", events)
            elif row.state == "finished":
                self._report(session, row, events)
            else:
                self._cancel(session, row, events)
        for event, mo_id, details in events:  # after the commit
            message = BatchEvent(ts=utc_now(), source=SERVICE, event=event, mo_id=mo_id, **details)
            self.link.publish_json(self.topics.batch_events, message.wire())
        return True

    def _report(
        self, session: Session, row: MoBatch, events: list[tuple[BatchEventKind, str, dict[str, Any]]]
    ) -> None:
        """update-with-consumptions; confirmed = `reported`. Before a re-send, and after a refusal, Odoo is read:
        an MO already done there took our consumption (mark-done follows it) or was closed by a person, and a
        second update would be refused ("Cannot update MO in state done"): it is taken as reported."""
        weight = float(row.actual_weight_quantity_finished_goods or 0)
        reply: dict[str, Any] = {}
        try:
            if row.sync_attempts > 0 and self._done_in_odoo(row.mo_id):
                verdict = Outcome("archive", "the MO is already done in Odoo: taken as reported, not sent again")
            else:
                outcome = self.odoo.report_consumption(row.mo_id, weight, actuals_of(row))
                verdict = classify_update(outcome.partial, outcome.errors)
                reply = {
                    "mo_state": outcome.mo_state,
                    "message": outcome.message,
                    "errors": outcome.errors,
                    "consumed_items": len(outcome.consumed_items),
                }
        except OdooError as exc:
            verdict = classify_error(exc)
            if verdict.verdict == "attention" and self._done_in_odoo(row.mo_id):
                verdict = Outcome("archive", f"the MO is done in Odoo ({exc}): taken as reported")
        self._apply(session, row, verdict, reply, "completed", events)

    def _done_in_odoo(self, mo_id: str) -> bool:
        try:
            return self.odoo.mo_detail(mo_id).state == "done"
        except OdooError:
            return False  # unknown: the caller's own outcome stands

    def _close(
        self, session: Session, row: MoBatch, events: list[tuple[BatchEventKind, str, dict[str, Any]]]
    ) -> None:
        """MARK_DONE: the separate, verified step after `reported`. The consumption is in Odoo whatever happens
        here, so the batch is archived as completed in every case but a transport error (retried); an MO that
        Odoo leaves open (a backorder or consumption decision in its UI) or refuses to close is recorded and
        announced, never looped through `attention`."""
        weight = float(row.actual_weight_quantity_finished_goods or 0)
        try:
            done = self.odoo.mark_done(row.mo_id, weight or float(row.consumption))
        except OdooError as exc:
            verdict = classify_error(exc)
            if verdict.verdict == "retry":
                self._apply(session, row, verdict, {}, "completed", events)
                return
            reply: dict[str, Any] = {"mark_done": {"done": False, "refused": str(exc)}}
            note = f"consumption reported; Odoo refused mark-done ({exc}): close the MO in Odoo"
        else:
            reply = {"mark_done": {"done": done.done, "state": done.state, "already_done": done.already_done}}
            if done.already_done:
                note = "consumption reported; the MO was already done in Odoo"
            elif done.done:
                note = "consumption reported; MO marked done"
            else:
                note = f"consumption reported; mark-done left the MO {done.state}: close it in Odoo"
        if not reply["mark_done"]["done"]:
            log.error("MO left open in Odoo", extra={"mo_id": row.mo_id, "detail": note})
            events.append(("alarm", row.mo_id, {"reason": note}))
        self._archive_reported(session, row, note, events, reply)

    def _cancel(
        self, session: Session, row: MoBatch, events: list[tuple[BatchEventKind, str, dict[str, Any]]]
    ) -> None:
        try:
            outcome = self.odoo.cancel(row.mo_id)
            verdict = Outcome("archive", "cancelled in Odoo after the PLC reported the batch failed")
            reply: dict[str, Any] = {"mo_state": outcome.state, "already_cancelled": outcome.already_cancelled}
        except OdooError as exc:
            verdict, reply = classify_error(exc), {}
        self._apply(session, row, verdict, reply, "cancelled", events)

    def _apply(
        self,
        session: Session,
        row: MoBatch,
        verdict: Outcome,
        reply: dict[str, Any],
        status: str,
        events: list[tuple[BatchEventKind, str, dict[str, Any]]],
    ) -> None:
        row.sync_attempts += 1
        if verdict.verdict == "retry":
            row.last_error = verdict.reason
            row.next_attempt_at = next_attempt_at(
                now(), row.sync_attempts, self.s.retry_base_s, self.s.retry_max_s, key=row.mo_id
            )
            self.metrics.retries.inc()
            log.warning(
                "Odoo call failed; will retry",
                extra={"mo_id": row.mo_id, "attempt": row.sync_attempts, "error": verdict.reason},
            )
            return
        if verdict.verdict == "attention":
            move(session, row, "attention", actor=SERVICE, reason=verdict.reason)
            row.last_error = verdict.reason
            row.next_attempt_at = None
            self.metrics.attention.inc()
            log.error("batch needs an operator", extra={"mo_id": row.mo_id, "reason": verdict.reason})
            events.append(("attention", row.mo_id, {"reason": verdict.reason}))
            return
        if status == "completed":
            # move() owns the state's timestamp (reported_at) and update_odoo (issue 11.4).
            move(session, row, "reported", actor=SERVICE, reason=verdict.reason)
            if row.finished_at is not None and row.reported_at is not None:
                self.metrics.finish_to_odoo.observe((row.reported_at - row.finished_at).total_seconds())
            events.append(("reported", row.mo_id, {}))
            if self.s.mark_done:
                row.next_attempt_at = None  # mark-done is next, as its own step (see _close)
                row.last_error = None
            else:
                self._archive_reported(session, row, verdict.reason, events, reply)
        else:
            move(session, row, "cancelled", actor=SERVICE, reason=verdict.reason)
            archive(session, row, "cancelled", actor=SERVICE, odoo_reply=reply, note=verdict.reason)
            self.metrics.reported.labels("cancelled").inc()
            events.append(("cancelled", row.mo_id, {}))

    def _archive_reported(
        self,
        session: Session,
        row: MoBatch,
        note: str,
        events: list[tuple[BatchEventKind, str, dict[str, Any]]],
        reply: dict[str, Any] | None = None,
    ) -> None:
        if not row.update_odoo:
            raise AssertionError(f"{row.mo_id} is 'reported' without update_odoo")  # never archive unconfirmed
        archive(session, row, "completed", actor=SERVICE, odoo_reply=reply, note=note)
        self.metrics.reported.labels("completed").inc()
        events.append(("archived", row.mo_id, {"status": "completed"}))
