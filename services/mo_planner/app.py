"""mo_planner (seed Tasks 1 and 2): Odoo MOs -> mo_batch -> write_batch; PLC feedback -> mo_batch -> ack_slot.

One thread owns the database work and the decisions (rules.py): the worker base (shared/service.py) runs the
message handlers and the periodic step on it; paho's thread only queues messages and the Odoo feed runs on its
own thread. Every acknowledgement is sent after the commit that stored what it acks.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.config import ConfigError
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
from shared.db.session import transaction
from shared.mqtt.client import Message, Route, json_object
from shared.mqtt.events import BatchEvent, BatchEventKind
from shared.mqtt.payloads import AckSlot, BatchPayload, CommandReply, WriteBatch, utc_now
from shared.mqtt.snapshots import ReadSlotSnapshot, WriteSlotSnapshot
from shared.odoo.client import OdooClient
from shared.odoo.mapping import Batch, mo_to_batch
from shared.odoo.models import Mo
from shared.plc.fingerprint import result_fingerprint
from shared.plc.memory_map import MemoryMap, MemoryMapError, load_memory_map, with_active_slots
from shared.service import MqttWorker

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


class Metrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.queued = Counter("planner_batches_queued", "MOs taken from Odoo into mo_batch", registry=r)
        self.written = Counter("planner_batches_written", "write_batch confirmed by the gateway", registry=r)
        self.finished = Counter("planner_batches_finished", "Final results stored", ["outcome"], registry=r)
        self.acks = Counter("planner_acks", "ack_slot replies", ["code"], registry=r)
        self.alarms = Counter("planner_alarms", "Snapshots never applied (invalid / unexpected)", registry=r)
        self.odoo_errors = Counter("planner_odoo_errors", "Failed Odoo MO list calls", registry=r)
        self.queue_depth = Gauge("planner_queue_depth", "Rows in mo_batch by state", ["state"], registry=r)


class Planner(MqttWorker[PlannerSettings]):
    service = SERVICE
    settings_class = PlannerSettings

    def __init__(
        self, settings: PlannerSettings, memory_map: MemoryMap | None = None, odoo: OdooClient | None = None
    ) -> None:
        if memory_map is None:
            try:
                memory_map = with_active_slots(load_memory_map(settings.plc_map), settings.plc_slots)
            except MemoryMapError as exc:
                raise ConfigError(str(exc)) from None
        topics = settings.topics
        super().__init__(
            settings,
            routes=[Route(topics.plc_read("+"), self.on_snapshot), Route(topics.plc_write("+"), self.on_snapshot)],
            birth={"slots": memory_map.active_slots},
            command_ttl_s=settings.command_ttl_s,
            command_resend_s=settings.command_timeout_s,
        )
        self.map = memory_map
        self.metrics = Metrics(self.registry)
        # The Odoo thread wakes this loop with each answer: a slot may be waiting for exactly that mo-detail.
        self.feed = OdooFeed(odoo or OdooClient(settings), settings.odoo_states, on_result=self.wake)
        self.read_snaps: dict[int, ReadSlotSnapshot] = {}
        self.write_snaps: dict[int, WriteSlotSnapshot] = {}
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
        self.last_tick = 0.0

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self.feed.start()

    def on_stop(self) -> None:
        self.feed.stop()

    def started_details(self) -> dict[str, Any]:
        return {"slots": self.map.active_slots, "lookahead": self.settings.lookahead}

    def health_checks(self) -> dict[str, str | None]:
        return {"odoo": self.feed.client.login_error}

    def health_details(self) -> dict[str, Any]:
        return {"pending_commands": len(self.commands)}

    def step(self) -> float:
        """Apply what the Odoo thread brought; every TICK_S the periodic work (tick)."""
        self._drain_feed()
        if time.monotonic() - self.last_tick >= TICK_S:
            self.tick()
            self.last_tick = time.monotonic()
        return max(0.0, self.last_tick + TICK_S - time.monotonic())

    # ------------------------------------------------------------------ messages

    def on_snapshot(self, msg: Message) -> None:
        body = json_object(msg.payload)
        if body is None:
            log.warning("ignored non-JSON message", extra={"topic": msg.topic})
            return
        slot = self.topics.slot_of(msg.topic)
        if slot is not None and slot in self.map.slots() and msg.topic == self.topics.plc_read(slot):
            # A message that is not a READ snapshot of this slot is held as an invalid one (alarm, nothing applied).
            read = ReadSlotSnapshot.received(msg.payload, slot, SERVICE, log)
            self.read_snaps[slot] = read
            self.on_read(slot, read)
        elif slot is not None and slot in self.map.slots():
            write = WriteSlotSnapshot.received(msg.payload, slot, SERVICE, log)
            self.write_snaps[slot] = write
            self.on_write(slot, write)

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

    def on_read(self, slot: int, snap: ReadSlotSnapshot) -> None:
        held = snap.batch
        mo_id = held.mo_id if held is not None else None
        seen = self._fingerprint(snap)
        ack: str | None = None
        event: tuple[BatchEventKind, dict[str, Any]] | None = None
        with transaction(self.db) as session:
            row, expected = self._expected(session, mo_id)
            archived = row is None and mo_id is not None and bool(archived_statuses(session, mo_id))
            stored = archived_fingerprints(session, mo_id) if archived and mo_id is not None else set()
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
            elif decision.action is Action.RUNNING and row is not None and held is not None:
                if row.state != BatchState.RUNNING:
                    move(session, row, "running", actor=SERVICE, reason="dosing", slot=slot)
                    event = ("running", {})
                set_actuals(row, held.consumption)
            elif (
                decision.action in (Action.FINISH, Action.FAIL)
                and row is not None
                and held is not None
                and seen is not None
            ):
                target: BatchEventKind = "finished" if decision.action is Action.FINISH else "failed"
                set_actuals(row, held.consumption)
                row.actual_weight_quantity_finished_goods = Decimal(str(round(held.weight_finished_good, 2)))
                row.status_manufacturing = held.status_manufacturing == 1
                row.status_operation = held.status_operation == 1
                row.result_fingerprint = seen
                row.finished_at = now()
                move(session, row, target, actor=SERVICE, reason=decision.reason, slot=slot)
                self.metrics.finished.labels(target).inc()
                event = (target, {"weight": held.weight_finished_good})
                ack = seen
            elif decision.action is Action.ACK:
                ack = seen
        if decision.reason == WAITING_FOR_WEIGHT and mo_id is not None:
            since = self.weightless_since.setdefault(mo_id, time.monotonic())
            if time.monotonic() - since > WEIGHT_GRACE_S:
                self._alarm(
                    slot, snap, f"{mo_id} shows finished without a finished weight for {WEIGHT_GRACE_S:g} s"
                )
        elif mo_id is not None:
            self.weightless_since.pop(mo_id, None)
        # Committed: only now may the PLC be told that the result is stored, and only that result.
        if adopted and mo_id:
            self._event("written", mo_id, slot, code="seen_on_plc")
        if event and mo_id:
            self._event(event[0], mo_id, slot, **event[1])
        if ack is not None and mo_id:
            self._send_ack(slot, mo_id, ack)
        self.dispatch()

    def _fingerprint(self, snap: ReadSlotSnapshot) -> str | None:
        if snap.batch is None:
            return None
        return result_fingerprint(snap.words, self.map.layout_of("read_slot").flag_offset)

    def on_write(self, slot: int, snap: WriteSlotSnapshot) -> None:
        mo_id = snap.mo_id
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
        self.commands.forget(row.write_request_id)
        log.info("write confirmed by the PLC before its reply", extra={"mo_id": row.mo_id, "slot": slot})

    def _on_ack_reply(self, ack: AckSlot, reply: CommandReply) -> None:
        self.metrics.acks.labels(reply.code).inc()
        if not reply.ok:
            log.warning(
                "ack_slot refused", extra={"mo_id": ack.mo_id, "code": reply.code, "detail": reply.message}
            )
            return
        self.acked_mo[ack.slot] = ack.mo_id
        with transaction(self.db) as session:
            row = batch_by_mo(session, ack.mo_id, lock=True)
            if row is not None and row.acked_at is None:
                row.acked_at = now()
            audit(session, actor=SERVICE, action="ack_slot", mo_id=ack.mo_id, slot=ack.slot, code=reply.code)
        self.dispatch()

    def _on_write_reply(self, write: WriteBatch, reply: CommandReply) -> None:
        mo_id, code = write.batch.mo_id, reply.code
        with transaction(self.db) as session:
            row = batch_by_mo(session, mo_id, lock=True)
            if row is None or row.state != BatchState.QUEUED:
                return
            if reply.ok:
                move(
                    session,
                    row,
                    "written",
                    actor=SERVICE,
                    reason=code,
                    slot=write.slot,
                    request_id=write.request_id,
                )
                self.metrics.written.inc()
            elif code in ("invalid_payload", "conflict", "mismatch"):
                # Refused as it is, the slot holds this MO with other values, or the read-back differs from
                # the block: a person decides (the request id stays: a write may have landed).
                move(session, row, "attention", actor=SERVICE, reason=reply.message)
                row.last_error = f"gateway refused the batch ({code}): {reply.message}"
            elif code in NOT_WRITTEN_CODES:
                # Proven not written: stays queued, sticky to its slot, retried with a new request.
                row.write_request_id = None
                row.last_error = f"{code}: {reply.message}"
            else:
                # Ambiguous (the PLC did not answer, refused mid-way, read back something else): the write may
                # have landed. The request id stays as that proof; the same request is sent again and the PLC's
                # snapshot or the gateway's idempotent write settles it.
                row.last_error = f"{code}: {reply.message}"
        if reply.ok:
            self._event("written", mo_id, write.slot, code=code)
        else:
            log.warning("write_batch not done", extra={"mo_id": mo_id, "code": code, "detail": reply.message})

    # ------------------------------------------------------------------ periodic work

    def tick(self) -> None:
        mono = time.monotonic()
        self._detect_lost_batches()
        self._drain_feed()
        if not self.feed.busy:
            short = self._queued_count() < self._wanted_queue()
            # Refill as soon as the queue runs short (event-driven); the long period is only a safety net.
            if mono >= self.next_poll or (short and mono - self.last_poll_request >= self.refill_gap):
                self.next_poll = mono + self.settings.odoo_poll_s
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
            if w is None or r is None or not (w.valid and r.valid and w.empty and r.empty):
                continue
            evidence_at = min(w.ts, r.ts)  # when the gateway read them, not when they reached us
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
        return self.settings.lookahead + self.map.active_slots

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
        events: list[tuple[BatchEventKind, dict[str, Any]]] = []
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
        recent = self.settings.recheck_s
        return mono - self.cleared.get(mo_id, -math.inf) <= recent or (
            mono - self.check_failed.get(mo_id, -math.inf) <= recent
        )

    def _map(self, mo: Mo) -> Batch:
        return mo_to_batch(mo, self.map.equipment_codes)

    def dispatch(self) -> None:
        """Write the next queued batch into every free slot."""
        for slot in self.map.slots():
            if any(write.slot == slot for write in self.commands.in_flight(WriteBatch)):
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
                try:
                    write = self._write_command(row, slot)
                except ValidationError as exc:  # never sent: a person looks at the MO (nothing reached the PLC)
                    reason = f"the batch cannot be sent to the gateway: {exc.errors()[0]['msg']}"
                    move(session, row, "attention", actor=SERVICE, reason=reason)
                    row.last_error = reason
                    continue
                row.slot, row.write_request_id = slot, write.request_id
                self.cleared.pop(row.mo_id, None)  # used: a later write of this MO asks Odoo again
            # Committed (slot + request id stored) before sending: a crash here resends the same request.
            self.commands.send(write, self._on_write_reply)

    def _write_command(self, row: MoBatch, slot: int) -> WriteBatch:
        """The write_batch of a queued row; a resend keeps the row's request id (the gateway's proof)."""
        return WriteBatch(
            request_id=row.write_request_id or self.commands.new_request_id(),
            slot=slot,
            batch=BatchPayload(
                mo_id=row.mo_id,
                bom_name=row.bom_name,
                finished_goods=row.finished_goods,
                quantity=float(row.consumption),
                targets={
                    c: float(getattr(row, target_column(c)))
                    for c in self.map.equipment_codes
                    if getattr(row, target_column(c))
                },
            ),
        )

    # ------------------------------------------------------------------ outputs

    def _send_ack(self, slot: int, mo_id: str, fingerprint: str) -> None:
        if any(ack.mo_id == mo_id for ack in self.commands.in_flight(AckSlot)):
            return
        ack = AckSlot(request_id=self.commands.new_request_id(), slot=slot, mo_id=mo_id, fingerprint=fingerprint)
        self.commands.send(ack, self._on_ack_reply)

    def _event(self, event: BatchEventKind, mo_id: str | None, slot: int | None, **details: Any) -> None:
        message = BatchEvent(ts=utc_now(), source=SERVICE, event=event, mo_id=mo_id, slot=slot, **details)
        self.link.publish_json(self.topics.batch_events, message.wire())

    def _alarm(self, slot: int, snap: ReadSlotSnapshot, reason: str) -> None:
        key = (slot, reason, str(snap.words))
        if key in self.alarmed:
            return
        self.alarmed.add(key)
        if len(self.alarmed) > 1000:
            self.alarmed.clear()
        self.metrics.alarms.inc()
        log.error("snapshot not applied", extra={"slot": slot, "reason": reason})
        self._event("alarm", snap.mo_id, slot, reason=reason)


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
