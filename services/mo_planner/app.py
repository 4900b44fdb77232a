"""mo_planner (seed Tasks 1 and 2): Odoo MOs -> mo_batch -> write_batch; PLC feedback -> mo_batch -> ack_slot.

One thread owns the database work and the decisions (rules.py); paho's thread only queues messages and the
Odoo feed runs on its own thread. Every acknowledgement is sent after the commit that stored what it acks.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from shared import __version__
from shared.db.batch_state import ON_PLC, BatchState
from shared.db.columns import target_column
from shared.db.models import MoBatch
from shared.db.repo import (
    actuals_of,
    archive,
    archived_fingerprints,
    archived_statuses,
    audit,
    batch_by_mo,
    move,
    now,
    set_actuals,
)
from shared.db.session import make_session_factory, transaction
from shared.health import readiness, start_health_server
from shared.mqtt.client import Message, MqttLink, json_object
from shared.mqtt.events import BatchEvent, batch_event
from shared.mqtt.payloads import answers, iso, utc_now
from shared.odoo.client import OdooClient
from shared.odoo.mapping import Batch, mo_to_batch
from shared.odoo.models import Mo
from shared.plc.fingerprint import result_fingerprint
from shared.plc.memory_map import MemoryMap

from .odoo_feed import DetailResult, OdooFeed
from .rules import (
    WAITING_FOR_WEIGHT,
    Action,
    Expected,
    QueuedValues,
    Recheck,
    on_read_snapshot,
    on_write_snapshot,
    recheck_queued,
    slot_free,
    snapshot_problem,
)
from .settings import PlannerSettings

log = logging.getLogger("mo_planner")
SERVICE = "mo_planner"
# A written batch is lost when both sides of its slot read empty at least this long after the write (as read by
# the PLC then, not as cached here: a link outage or a gateway restart is not evidence).
LOST_AFTER_S = 10.0
TICK_S = 0.25  # periodic work (resends, Odoo refill, dispatch safety net); messages are handled at once
REFILL_GAP_S = 1.0  # the queue ran short: ask Odoo again at most this often
# A READ slot that shows "finished" without a finished weight this long raises an alarm (the batch is not
# final until the weight is there; see rules.WAITING_FOR_WEIGHT).
WEIGHT_GRACE_S = 10.0
IDLE_REPOLL_S = 5.0  # Odoo had nothing new (or failed): ask again at most this often
# write_batch replies that prove nothing was written: the next attempt may use a new request. A PLC that did
# not answer or refused mid-way (plc_unreachable, plc_error) is ambiguous: the request id is kept as the proof
# that a write may have landed and the same request is sent again (the gateway runs such a request again, and
# its write is idempotent on the block).
NOT_WRITTEN_CODES = frozenset({"slot_busy", "expired"})


@dataclass
class Pending:
    command: str
    request_id: str
    mo_id: str
    slot: int
    body: dict[str, Any]
    sent_at: float = field(default_factory=time.monotonic)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queued = Counter("planner_batches_queued", "MOs taken from Odoo into mo_batch", registry=r)
        self.written = Counter("planner_batches_written", "write_batch confirmed by the gateway", registry=r)
        self.finished = Counter("planner_batches_finished", "Final results stored", ["outcome"], registry=r)
        self.acks = Counter("planner_acks", "ack_slot replies", ["code"], registry=r)
        self.alarms = Counter("planner_alarms", "Snapshots never applied (invalid / unexpected)", registry=r)
        self.odoo_errors = Counter("planner_odoo_errors", "Failed Odoo MO list calls", registry=r)
        self.queue_depth = Gauge("planner_queue_depth", "Rows in mo_batch by state", ["state"], registry=r)


class Planner:
    def __init__(self, settings: PlannerSettings, memory_map: MemoryMap, odoo: OdooClient) -> None:
        self.s = settings
        self.map = memory_map
        self.topics = settings.topics
        self.metrics = Metrics()
        self.engine = settings.make_engine(application_name=SERVICE)
        self.db = make_session_factory(self.engine)
        self.feed = OdooFeed(odoo, settings.odoo_states)
        self.reply_topic = f"{self.topics.root}/reply/{SERVICE}"
        self.link = MqttLink(
            address=settings.broker(),
            client_id=settings.client_id(SERVICE),
            status_topic=self.topics.svc_status(SERVICE),
            source=SERVICE,
            subscriptions=[
                (self.topics.plc_read("+"), 1),
                (self.topics.plc_write("+"), 1),
                (f"{self.reply_topic}/#", 1),
                (self.reply_topic, 1),
            ],
            birth={"version": __version__, "slots": memory_map.active_slots},
        )
        self.read_snaps: dict[int, dict[str, Any]] = {}
        self.write_snaps: dict[int, dict[str, Any]] = {}
        self.pending: dict[str, Pending] = {}
        self.acked_mo: dict[int, str] = {}
        self.alarmed: set[tuple[int, str, str]] = set()
        # MOs with nothing the PLC can dose, by the content Odoo showed: looked at again once that changes.
        self.skipped_mos: dict[str, str] = {}
        self.weightless_since: dict[str, float] = {}  # finished on the PLC, weight not written yet
        # When mo-detail last cleared a queued MO for writing (it holds what is queued), and when such a
        # re-check failed (Odoo unreachable). The MO list alone never clears a write: it may be seconds old.
        self.cleared: dict[str, float] = {}
        self.check_failed: dict[str, float] = {}
        self.next_poll = 0.0
        self.last_poll_request = 0.0
        self.last_gauge = 0.0
        self.refill_gap = REFILL_GAP_S
        self.last_tick = time.monotonic()
        self.db_ok = True

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        health = start_health_server(self.s.health_port, self.metrics.registry, self.health, self.s.health_host)
        self.feed.start()
        self.link.start()
        log.info("mo_planner started", extra={"slots": self.map.active_slots, "lookahead": self.s.lookahead})
        try:
            while not stop.is_set():
                try:
                    msg = self.link.inbox.get(timeout=0.1)
                except queue.Empty:
                    msg = None
                try:
                    if msg is not None:
                        self.on_message(msg)
                    self._drain_feed()
                    if time.monotonic() - self.last_tick >= TICK_S:
                        self.tick()
                        self.last_tick = time.monotonic()
                    self.db_ok = True
                except OperationalError as exc:
                    # PostgreSQL is away: nothing was acked or sent for uncommitted work; snapshots repeat.
                    self.db_ok = False
                    log.error("database unavailable", extra={"error": str(exc.orig)})
                    time.sleep(1.0)
        finally:
            self.feed.stop()
            self.link.stop()
            if health:
                health.stop()
            self.engine.dispose()
            log.info("mo_planner stopped")

    def health(self) -> dict[str, Any]:
        stalled = time.monotonic() - self.last_tick > 30
        mqtt_ok = self.link.connected.is_set()
        return readiness(
            {
                "broker": None if mqtt_ok else "not connected",
                "database": None if self.db_ok else "unavailable",
                "odoo": self.feed.client.login_error,
                "loop": "stalled for more than 30 s" if stalled else None,
            },
            mqtt_connected=mqtt_ok,
            database_ok=self.db_ok,
            pending_commands=len(self.pending),
        )

    # ------------------------------------------------------------------ messages

    def on_message(self, msg: Message) -> None:
        body = json_object(msg.payload)
        if body is None:
            log.warning("ignored non-JSON message", extra={"topic": msg.topic})
            return
        slot = self.topics.slot_of(msg.topic)
        if not msg.topic.startswith(self.reply_topic) and slot is not None and slot in self.map.slots():
            area = "read" if "/plc/read/" in msg.topic else "write"
            problem = snapshot_problem(body, slot, area)
            if problem is not None:  # never trusted: handled like an invalid snapshot (alarm, nothing applied)
                body = {"slot": slot, "valid": False, "errors": [f"malformed snapshot: {problem}"], "fields": {}}
        if msg.topic.startswith(self.reply_topic):
            self.on_reply(body)
        elif slot is not None and slot in self.map.slots() and "/plc/read/" in msg.topic:
            self.read_snaps[slot] = body
            self.on_read(slot, body)
        elif slot is not None and slot in self.map.slots():
            self.write_snaps[slot] = body
            self.on_write(slot, body)

    def _expected(self, session: Session, mo_id: str | None) -> tuple[MoBatch | None, Expected | None]:
        if not mo_id:
            return None, None
        row = batch_by_mo(session, mo_id, lock=True)
        if row is None:
            return None, None
        weight = (
            float(row.actual_weight_quantity_finished_goods) if row.actual_weight_quantity_finished_goods else None
        )
        return row, Expected(
            row.mo_id,
            row.slot,
            row.state,
            actuals_of(row),
            weight,
            row.write_request_id is not None,
            fingerprint=row.result_fingerprint,
            attention_from=row.attention_from,
        )

    def on_read(self, slot: int, snap: dict[str, Any]) -> None:
        fields = snap.get("fields") or {}
        mo_id = fields.get("mo_id") if snap.get("valid") else None
        seen = self._fingerprint(snap)
        ack: str | None = None
        event: tuple[BatchEvent, dict[str, Any]] | None = None
        with transaction(self.db) as session:
            row, expected = self._expected(session, mo_id)
            archived = row is None and isinstance(mo_id, str) and bool(archived_statuses(session, mo_id))
            stored = archived_fingerprints(session, mo_id) if archived and isinstance(mo_id, str) else set()
            decision = on_read_snapshot(
                snap, expected, fingerprint=seen, archived=archived, archived_fingerprints=stored
            )
            adopted = decision.adopt and row is not None
            if adopted and row is not None:
                self._adopt(session, row, slot)
            if decision.recover and row is not None and row.attention_from is not None:
                move(session, row, row.attention_from, actor=SERVICE, reason=decision.reason, slot=slot)
            if decision.action is Action.ALARM:
                self._alarm(slot, snap, decision.reason)
            elif decision.action is Action.RUNNING and row is not None:
                if row.state != BatchState.RUNNING:
                    move(session, row, "running", actor=SERVICE, reason="dosing", slot=slot)
                    event = ("running", {})
                set_actuals(row, fields["consumption"])
            elif decision.action in (Action.FINISH, Action.FAIL) and row is not None and seen is not None:
                target: BatchEvent = "finished" if decision.action is Action.FINISH else "failed"
                set_actuals(row, fields["consumption"])
                row.actual_weight_quantity_finished_goods = Decimal(str(round(fields["weight_finished_good"], 2)))
                row.status_manufacturing = fields["status_manufacturing"] == 1
                row.status_operation = fields["status_operation"] == 1
                row.result_fingerprint = seen
                row.finished_at = now()
                move(session, row, target, actor=SERVICE, reason=decision.reason, slot=slot)
                self.metrics.finished.labels(target).inc()
                event = (target, {"weight": fields["weight_finished_good"]})
                ack = seen
            elif decision.action is Action.ACK:
                ack = seen
        if decision.reason == WAITING_FOR_WEIGHT and isinstance(mo_id, str):
            since = self.weightless_since.setdefault(mo_id, time.monotonic())
            if time.monotonic() - since > WEIGHT_GRACE_S:
                self._alarm(
                    slot, snap, f"{mo_id} shows finished without a finished weight for {WEIGHT_GRACE_S:g} s"
                )
        elif isinstance(mo_id, str):
            self.weightless_since.pop(mo_id, None)
        # Committed: only now may the PLC be told that the result is stored, and only that result.
        if adopted and mo_id:
            self._event("written", mo_id, slot, code="seen_on_plc")
        if event and mo_id:
            self._event(event[0], mo_id, slot, **event[1])
        if ack is not None and mo_id:
            self._send_ack(slot, mo_id, ack)
        self.dispatch()

    def _fingerprint(self, snap: dict[str, Any]) -> str | None:
        words = snap.get("words")
        if not snap.get("valid") or snap.get("empty") or not isinstance(words, list):
            return None
        return result_fingerprint(words, self.map.layout_of("read_slot").flag_offset)

    def on_write(self, slot: int, snap: dict[str, Any]) -> None:
        fields = snap.get("fields") or {}
        mo_id = fields.get("mo_id") if snap.get("valid") and not snap.get("empty") else None
        accepted = adopted = False
        if mo_id:
            with transaction(self.db) as session:
                row, expected = self._expected(session, mo_id)
                decision = on_write_snapshot(snap, expected)
                if row is not None and decision.action is Action.ACCEPTED:
                    if decision.adopt:
                        self._adopt(session, row, slot)
                        adopted = True
                    move(session, row, "accepted", actor=SERVICE, reason="PLC set W=1", slot=slot)
                    accepted = True
        if adopted and mo_id:
            self._event("written", mo_id, slot, code="seen_on_plc")
        if accepted and mo_id:
            self._event("accepted", mo_id, slot)
        self.dispatch()

    def _adopt(self, session: Session, row: MoBatch, slot: int) -> None:
        """The PLC shows a batch whose write_batch reply we have not got: it was written. Common, not an error:
        the gateway reads the block back before it replies, and the PLC may latch it in between; also after a
        planner crash or a lost reply. The caller announces "written" once the transaction is committed."""
        move(
            session,
            row,
            "written",
            actor=SERVICE,
            reason="seen on the PLC before the write reply",
            slot=slot,
            request_id=row.write_request_id,
        )
        self.pending.pop(row.write_request_id or "", None)
        log.info("write confirmed by the PLC before its reply", extra={"mo_id": row.mo_id, "slot": slot})

    def on_reply(self, body: dict[str, Any]) -> None:
        pending = self.pending.get(str(body.get("request_id")))
        if pending is None:
            return  # a reply to a resend we already handled, or to another planner instance
        if not _answers(pending, body):
            # Same request id, another command or other arguments: a forged or misrouted reply, never applied.
            log.error(
                "reply does not answer the command it names: ignored",
                extra={
                    "request_id": pending.request_id,
                    "command": body.get("command"),
                    "echoed": body.get("args"),
                },
            )
            return
        del self.pending[pending.request_id]
        code = str(body.get("code"))
        if pending.command == "ack_slot":
            self.metrics.acks.labels(code).inc()
            if body.get("ok"):
                self.acked_mo[pending.slot] = pending.mo_id
                with transaction(self.db) as session:
                    row = batch_by_mo(session, pending.mo_id, lock=True)
                    if row is not None and row.acked_at is None:
                        row.acked_at = now()
                    audit(
                        session,
                        actor=SERVICE,
                        action="ack_slot",
                        mo_id=pending.mo_id,
                        slot=pending.slot,
                        code=code,
                    )
                self.dispatch()
            else:
                log.warning(
                    "ack_slot refused", extra={"mo_id": pending.mo_id, "code": code, "detail": body.get("message")}
                )
            return
        # write_batch
        with transaction(self.db) as session:
            row = batch_by_mo(session, pending.mo_id, lock=True)
            if row is None or row.state != BatchState.QUEUED:
                return
            if body.get("ok"):
                move(
                    session,
                    row,
                    "written",
                    actor=SERVICE,
                    reason=code,
                    slot=pending.slot,
                    request_id=pending.request_id,
                )
                self.metrics.written.inc()
            elif code in ("invalid_payload", "conflict", "mismatch"):
                # Refused as it is, the slot holds this MO with other values, or the read-back differs from
                # the block: a person decides (the request id stays: a write may have landed).
                move(session, row, "attention", actor=SERVICE, reason=str(body.get("message")))
                row.last_error = f"gateway refused the batch ({code}): {body.get('message')}"
            elif code in NOT_WRITTEN_CODES:
                # Proven not written: stays queued, sticky to its slot, retried with a new request.
                row.write_request_id = None
                row.last_error = f"{code}: {body.get('message')}"
            else:
                # Ambiguous (the PLC did not answer, refused mid-way, read back something else): the write may
                # have landed. The request id stays as that proof; the same request is sent again and the PLC's
                # snapshot or the gateway's idempotent write settles it.
                row.last_error = f"{code}: {body.get('message')}"
        if body.get("ok"):
            self._event("written", pending.mo_id, pending.slot, code=code)
        else:
            log.warning(
                "write_batch not done", extra={"mo_id": pending.mo_id, "code": code, "detail": body.get("message")}
            )

    # ------------------------------------------------------------------ periodic work

    def tick(self) -> None:
        mono = time.monotonic()
        self._detect_lost_batches()
        for p in list(self.pending.values()):
            if mono - p.sent_at > self.s.command_timeout_s:
                # Same request_id: the gateway answers a duplicate from its cache, never executes it twice.
                p.sent_at = mono
                self._publish_command(p)
        self._drain_feed()
        if not self.feed.busy:
            short = self._queued_count() < self._wanted_queue()
            # Refill as soon as the queue runs short (event-driven); the long period is only a safety net.
            if mono >= self.next_poll or (short and mono - self.last_poll_request >= self.refill_gap):
                self.next_poll = mono + self.s.odoo_poll_s
                if short:
                    self.last_poll_request = mono
                    self.feed.request()
        if mono - self.last_gauge > 2.0:
            self.last_gauge = mono
            with self.db() as session:
                counts = dict(session.execute(select(MoBatch.state, func.count()).group_by(MoBatch.state)).all())
            for state in BatchState:
                self.metrics.queue_depth.labels(state.value).set(counts.get(state.value, 0))
        self.dispatch()

    def _drain_feed(self) -> None:
        """Apply what the Odoo thread brought (MO lists, mo-detail re-checks a slot may be waiting for)."""
        checked = False
        while True:
            try:
                result = self.feed.results.get_nowait()
            except queue.Empty:
                break
            if isinstance(result, DetailResult):
                if result.mo is None:
                    self.metrics.odoo_errors.inc()
                self._recheck(result.mo_id, result.mo, detail=True)
                checked = True
            elif result.mos is not None:
                added = self.enqueue(result.mos)
                self.refill_gap = REFILL_GAP_S if added else IDLE_REPOLL_S
            else:
                self.metrics.odoo_errors.inc()
                self.refill_gap = IDLE_REPOLL_S
        if checked:
            self.dispatch()  # a slot was waiting for exactly this answer

    def _detect_lost_batches(self) -> None:
        """A batch written to a slot whose WRITE and READ sides both read empty long after the write was lost
        by the PLC (a reboot or a cleared memory): never re-dose it silently, hand it to an operator.

        Evidence is the gateway's read time (`ts`) of both empty snapshots, not when they reached us: a cached
        snapshot from before the write, or a PLC link outage that stops all snapshots, proves nothing."""
        for slot in self.map.slots():
            w, r = self.write_snaps.get(slot), self.read_snaps.get(slot)
            if not (w and r and w.get("valid") and r.get("valid") and w.get("empty") and r.get("empty")):
                continue
            read_at = [_snapshot_time(w), _snapshot_time(r)]
            if read_at[0] is None or read_at[1] is None:
                continue
            evidence_at = min(read_at[0], read_at[1])
            lost: list[str] = []
            with transaction(self.db) as session:
                rows = session.scalars(
                    select(MoBatch)
                    .where(
                        MoBatch.slot == slot,
                        MoBatch.state.in_([s.value for s in ON_PLC]),
                        MoBatch.written_at <= evidence_at - dt.timedelta(seconds=LOST_AFTER_S),
                    )
                    .with_for_update()
                ).all()
                for row in rows:
                    reason = f"PLC slot {slot} is empty: the batch was lost on the PLC (reboot?)"
                    move(session, row, "attention", actor=SERVICE, reason=reason, slot=slot)
                    row.last_error = reason
                    lost.append(row.mo_id)
            for mo_id in lost:
                log.error("batch lost on the PLC", extra={"mo_id": mo_id, "slot": slot})
                self._event("attention", mo_id, slot, reason="lost on the PLC (slot empty)")

    def _queued_count(self) -> int:
        with self.db() as session:
            return int(
                session.scalar(select(func.count()).select_from(MoBatch).where(MoBatch.state == BatchState.QUEUED))
                or 0
            )

    def _wanted_queue(self) -> int:
        return self.s.lookahead + self.map.active_slots

    def enqueue(self, mos: list[Mo]) -> int:
        """Queue MOs up to the look-ahead; returns how many were added. An MO Odoo shows that is already queued
        is re-checked against what was queued (it may have been edited or cancelled since)."""
        added = 0
        room = self._wanted_queue() - self._queued_count()
        for mo in mos:
            if self._recheck(mo.mo_id, mo):
                continue  # it was queued: reconciled with what Odoo shows now
            if room <= 0:
                continue
            content = mo.model_dump_json()
            if self.skipped_mos.get(mo.mo_id) == content:
                continue
            self.skipped_mos.pop(mo.mo_id, None)
            batch = mo_to_batch(mo, self.map.equipment_codes)
            if not batch.targets or batch.quantity <= 0 or not self.map.mo_name_regex.fullmatch(mo.mo_id):
                # Not for the PLC (every component is a manual addition, or a name the PLC cannot hold). Looked
                # at again as soon as Odoo shows the MO with other content: fixed in Odoo = queued, no restart.
                self.skipped_mos[mo.mo_id] = content
                log.warning(
                    "MO not queued: nothing the PLC can dose",
                    extra={"mo_id": mo.mo_id, "warnings": batch.warnings},
                )
                self._event("alarm", mo.mo_id, None, reason="MO cannot be dosed", warnings=batch.warnings)
                continue
            try:
                with transaction(self.db) as session:
                    if batch_by_mo(session, mo.mo_id) is not None or archived_statuses(session, mo.mo_id) & {
                        "completed",
                        "cancelled",
                    }:
                        continue
                    row = MoBatch(
                        mo_id=mo.mo_id,
                        state=BatchState.QUEUED.value,
                        equipment=mo.equipment.code if mo.equipment else None,
                        consumption=Decimal(str(batch.quantity)),
                    )
                    _set_values(row, _values_of(batch), mo, self.map.equipment_codes)
                    session.add(row)
                    audit(
                        session,
                        actor=SERVICE,
                        action="queued",
                        mo_id=mo.mo_id,
                        to_state="queued",
                        warnings=batch.warnings,
                    )
                    if batch.problems:
                        # A wrong recipe is never dosed: the row is kept (visible, with its reason) for a person.
                        session.flush()
                        reason = "; ".join(batch.problems)
                        move(session, row, "attention", actor=SERVICE, reason=reason)
                        row.last_error = reason
            except IntegrityError:
                continue  # another writer queued it first: nothing doubled
            if batch.problems:
                log.error("MO not dosed", extra={"mo_id": mo.mo_id, "problems": batch.problems})
                self._event("attention", mo.mo_id, None, reason="; ".join(batch.problems))
                continue
            room -= 1
            added += 1
            self.metrics.queued.inc()
            self._event("queued", mo.mo_id, None, warnings=batch.warnings)
        return added

    def _recheck(self, mo_id: str, mo: Mo | None, *, detail: bool = False) -> bool:
        """Reconcile a queued batch (no write sent yet) with the MO as Odoo shows it now; True if there was one.
        `mo` None: Odoo could not say (outage): noted, so the batch is written as queued (dosing goes on)."""
        if mo is None:
            self.check_failed[mo_id] = time.monotonic()
            return True
        events: list[tuple[BatchEvent, dict[str, Any]]] = []
        with transaction(self.db) as session:
            row = batch_by_mo(session, mo_id, lock=True)
            if row is None or row.state != BatchState.QUEUED:
                return row is not None
            if row.write_request_id is not None:
                return True  # a write may have landed: what was sent stands (its reply or the PLC decides)
            decision = recheck_queued(_stored_values(row, self.map.equipment_codes), mo.state, self._map(mo))
            if decision.verdict is Recheck.CANCEL:
                move(session, row, "cancelled", actor=SERVICE, reason=decision.reason)
                archive(session, row, "cancelled", actor=SERVICE, note=decision.reason)
                events.append(("cancelled", {"reason": decision.reason}))
            elif decision.verdict is Recheck.ATTENTION:
                move(session, row, "attention", actor=SERVICE, reason=decision.reason)
                row.last_error = decision.reason
                events.append(("attention", {"reason": decision.reason}))
            elif decision.verdict is Recheck.UPDATE and decision.values is not None:
                before = _stored_values(row, self.map.equipment_codes)
                _set_values(row, decision.values, mo, self.map.equipment_codes)
                audit(
                    session,
                    actor=SERVICE,
                    action="requeued",
                    mo_id=mo_id,
                    reason=decision.reason,
                    before={"quantity": before.quantity, "targets": dict(before.targets)},
                    after={"quantity": decision.values.quantity, "targets": dict(decision.values.targets)},
                )
                events.append(("queued", {"reason": decision.reason}))
        if detail:
            self.cleared[mo_id] = time.monotonic()
            self.check_failed.pop(mo_id, None)
        for event, details in events:
            log.warning("queued batch changed by Odoo", extra={"mo_id": mo_id, "event": event, **details})
            self._event(event, mo_id, None, **details)
        return True

    def _confirmed(self, mo_id: str) -> bool:
        """May a queued MO be written now? Only if mo-detail showed it as queued within RECHECK_S (the MO list
        does not count: it may be seconds old, and a cancel in between was dosed in the soak), or if asking Odoo
        failed that recently: an Odoo outage never stops dosing (the look-ahead is there to ride it out), the
        batch is then written as it was queued."""
        mono = time.monotonic()
        recent = self.s.recheck_s
        return mono - self.cleared.get(mo_id, -math.inf) <= recent or (
            mono - self.check_failed.get(mo_id, -math.inf) <= recent
        )

    def _map(self, mo: Mo) -> Batch:
        return mo_to_batch(mo, self.map.equipment_codes)

    def dispatch(self) -> None:
        """Write the next queued batch into every free slot."""
        for slot in self.map.slots():
            if any(p.slot == slot and p.command == "write_batch" for p in self.pending.values()):
                continue
            with transaction(self.db) as session:
                occupied = (
                    session.scalar(
                        select(func.count())
                        .select_from(MoBatch)
                        .where(MoBatch.slot == slot, MoBatch.state.in_([s.value for s in ON_PLC]))
                    )
                    or 0
                )
                free, _why = slot_free(
                    self.write_snaps.get(slot),
                    self.read_snaps.get(slot),
                    occupied_in_db=occupied > 0,
                    acked_mo=self.acked_mo.get(slot),
                )
                if not free:
                    continue
                row = session.scalars(
                    select(MoBatch)
                    .where(MoBatch.state == BatchState.QUEUED, (MoBatch.slot == slot) | MoBatch.slot.is_(None))
                    .order_by(MoBatch.slot.is_(None), MoBatch.queued_at, MoBatch.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    continue  # the queue is empty: tick() refills it from Odoo
                if row.write_request_id is None and not self._confirmed(row.mo_id):
                    self.feed.check(row.mo_id)  # written once Odoo answered (or could not: see _confirmed)
                    continue
                row.slot = slot
                row.write_request_id = row.write_request_id or f"wb-{uuid.uuid4().hex}"
                self.cleared.pop(row.mo_id, None)  # used: a later write of this MO asks Odoo again
                pending = Pending(
                    "write_batch",
                    row.write_request_id,
                    row.mo_id,
                    slot,
                    {
                        "slot": slot,
                        "batch": {
                            "mo_id": row.mo_id,
                            "bom_name": row.bom_name,
                            "finished_goods": row.finished_goods,
                            "quantity": float(row.consumption),
                            "targets": {
                                c: float(getattr(row, target_column(c)))
                                for c in self.map.equipment_codes
                                if getattr(row, target_column(c))
                            },
                        },
                    },
                )
            # Committed (slot + request id stored) before sending: a crash here resends the same request.
            self.pending[pending.request_id] = pending
            self._publish_command(pending)

    # ------------------------------------------------------------------ outputs

    def _send_ack(self, slot: int, mo_id: str, fingerprint: str) -> None:
        if any(p.command == "ack_slot" and p.mo_id == mo_id for p in self.pending.values()):
            return
        body = {"slot": slot, "mo_id": mo_id, "fingerprint": fingerprint}
        p = Pending("ack_slot", f"ack-{uuid.uuid4().hex}", mo_id, slot, body)
        self.pending[p.request_id] = p
        self._publish_command(p)

    def _publish_command(self, p: Pending) -> None:
        expires = utc_now() + dt.timedelta(seconds=self.s.command_ttl_s)
        body = {"request_id": p.request_id, "reply_to": self.reply_topic, "expires_at": iso(expires), **p.body}
        self.link.publish_json(self.topics.cmd(p.command), body)

    def _event(self, event: BatchEvent, mo_id: str | None, slot: int | None, **details: Any) -> None:
        self.link.publish_json(self.topics.batch_events, batch_event(event, mo_id, slot, **details))

    def _alarm(self, slot: int, snap: dict[str, Any], reason: str) -> None:
        key = (slot, reason, str(snap.get("words")))
        if key in self.alarmed:
            return
        self.alarmed.add(key)
        if len(self.alarmed) > 1000:
            self.alarmed.clear()
        self.metrics.alarms.inc()
        log.error("snapshot not applied", extra={"slot": slot, "reason": reason})
        self._event("alarm", (snap.get("fields") or {}).get("mo_id"), slot, reason=reason)


def _snapshot_time(snap: dict[str, Any]) -> dt.datetime | None:
    """When the gateway read the snapshot (its envelope `ts`), or None if absent or malformed."""
    ts = snap.get("ts")
    if not isinstance(ts, str):
        return None
    try:
        at = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _values_of(batch: Batch) -> QueuedValues:
    return QueuedValues(
        round(batch.quantity, 2),
        batch.bom_name,
        batch.finished_goods,
        {code: round(kg, 2) for code, kg in batch.targets.items()},
    )


def _stored_values(row: MoBatch, codes: Sequence[str]) -> QueuedValues:
    targets = {c: float(getattr(row, target_column(c)) or 0) for c in codes}
    return QueuedValues(
        float(row.consumption), row.bom_name, row.finished_goods, {c: kg for c, kg in targets.items() if kg > 0}
    )


def _set_values(row: MoBatch, values: QueuedValues, mo: Mo, codes: Sequence[str]) -> None:
    """The batch's PLC values and the Odoo MO they came from (every code set: one not dosed any more is 0)."""
    if values.quantity > 0:
        row.consumption = Decimal(str(values.quantity))
    row.bom_name = values.bom_name
    row.finished_goods = values.finished_goods
    row.odoo_mo = mo.model_dump(mode="json")
    for code in codes:
        setattr(row, target_column(code), Decimal(str(round(values.targets.get(code, 0.0), 2))))


def _answers(pending: Pending, reply: dict[str, Any]) -> bool:
    """The reply echoes our command and every argument we sent (the gateway echoes them all): slot and MO are
    not enough, since a reply to an ack of another result of that slot, or a write of other values, names them
    too (issue 10.9)."""
    return answers(reply, pending.request_id, pending.command, pending.body)
