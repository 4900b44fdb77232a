"""odoo_sync (seed Tasks 3 and 4): finished batches -> Odoo -> mo_histories; failed batches -> Odoo cancel.

Each batch is claimed with SELECT ... FOR UPDATE SKIP LOCKED, so replicas never work on the same row. The
Odoo call happens while the row is locked; success and the move to mo_histories commit together. A crash
in between leaves the row `finished`: the retry SETs the same values again (update-with-consumptions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.backoff import next_attempt_at
from shared.db.claim import claim_batches, due
from shared.db.models import MoBatch
from shared.db.repo import actuals_of, archive, move, now
from shared.db.session import transaction
from shared.mqtt.client import Message, Route
from shared.mqtt.events import BatchEvent, BatchEventKind
from shared.mqtt.payloads import PayloadError, utc_now
from shared.mqtt.status import StatusDetails
from shared.mqtt.wire import parse_message
from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooError
from shared.service import MqttWorker, seconds_until_due

from .burst import BurstDrain
from .outcome import Outcome, classify_error, classify_update
from .settings import SyncSettings

log = logging.getLogger("odoo_sync")
SERVICE = "odoo_sync"
WORK_STATES = ("finished", "failed", "reported")


class Metrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.reported = Counter("sync_batches_archived", "Batches archived", ["status"], registry=r)
        self.retries = Counter("sync_retries", "Odoo calls to retry later", registry=r)
        self.attention = Counter("sync_attention", "Batches moved to attention", registry=r)
        self.finish_to_odoo = Histogram(
            "sync_finish_to_odoo_seconds",
            "PLC finish stored -> Odoo confirmed",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )


class Syncer(MqttWorker[SyncSettings]):
    service = SERVICE
    settings_class = SyncSettings

    def __init__(self, settings: SyncSettings, odoo: OdooClient | None = None) -> None:
        super().__init__(
            settings,
            routes=[Route(settings.topics.batch_events, self._on_event)],
            birth=StatusDetails(mark_done=settings.mark_done),
        )
        self.odoo = odoo or OdooClient(settings)
        self.metrics = Metrics(self.registry)
        self.burst = BurstDrain(
            self._process_one, width=settings.sync_concurrency, on_progress=self.beat, name="odoo-sync-report"
        )

    def on_stop(self) -> None:
        self.burst.close()

    def _on_event(self, msg: Message) -> None:
        try:
            event = parse_message(BatchEvent, msg.payload)
        except PayloadError as exc:
            log.warning("batch event refused", extra={"topic": msg.topic, "reason": str(exc)})
            return
        if event.event in ("finished", "failed", "retry"):
            self.wake()

    def health_checks(self) -> dict[str, str | None]:
        return {"odoo": self.odoo.login_error}

    def started_details(self) -> dict[str, Any]:
        return {"mark_done": self.settings.mark_done}

    def step(self) -> float:
        return self.sweep()

    def sweep(self) -> float:
        """Work every due row (up to SYNC_CONCURRENCY side by side: burst.py); return the seconds until the next
        due retry (capped by the sweep period)."""
        self.burst.run()
        with self.db() as session:
            # Due rows the claim did not get: a replica works on them, or a lock outlasted the claim's wait.
            # Look again soon: the safety sweep is never the normal path (issue 16).
            held = session.scalar(
                select(MoBatch.id).where(MoBatch.state.in_(WORK_STATES), due(MoBatch.next_attempt_at)).limit(1)
            )
        cap = 1.0 if held is not None else self.settings.sync_sweep_s
        return seconds_until_due(self.db, MoBatch.next_attempt_at, MoBatch.state.in_(WORK_STATES), cap=cap)

    def _process_one(self, claimed_one: Callable[[], None]) -> bool:
        """Claim and handle one due row; True when one was handled (more may be due): the convention of every
        worker's one-row step (failure_monitor's failure and weighing reporters, shared/service.Reporter).
        `claimed_one` is told as soon as a row is held (it may start the next report: burst.py)."""
        events: list[tuple[BatchEventKind, str, dict[str, Any]]] = []
        with transaction(self.db) as session:
            claimed = claim_batches(session, WORK_STATES, order_by=(MoBatch.finished_at, MoBatch.id))
            row = claimed[0] if claimed else None
            if row is None:
                return False
            claimed_one()
            if row.state == "reported" and self.settings.mark_done:
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
                now(), row.sync_attempts, self.settings.retry_base_s, self.settings.retry_max_s, key=row.mo_id
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
            if self.settings.mark_done:
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
