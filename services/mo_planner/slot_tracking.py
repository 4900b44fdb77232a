"""Slot tracking: the latest READ and WRITE snapshot of every slot, applied to the batch the database expects
there (rules.py decides): written, accepted, running, finished or failed; the acknowledgement of a stored result
(`ack_slot`, sent only after the commit), and batches lost on the PLC."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from shared.db.batch_state import BatchState
from shared.db.models import MoBatch
from shared.db.repo import (
    actuals_of,
    archived_fingerprints,
    archived_statuses,
    audit,
    batch_by_mo,
    move,
    now,
    on_plc_written_before,
    set_actuals,
)
from shared.db.session import transaction
from shared.mqtt.client import Message, json_object
from shared.mqtt.commands import CommandClient
from shared.mqtt.events import BatchEventKind
from shared.mqtt.payloads import AckSlot, CommandReply
from shared.mqtt.snapshots import ReadSlotSnapshot, WriteSlotSnapshot
from shared.mqtt.topics import Topics
from shared.plc.fingerprint import result_fingerprint
from shared.plc.memory_map import MemoryMap

from .announce import Announcer
from .metrics import PlannerMetrics
from .rules import WAITING_FOR_WEIGHT, Action, Expected, on_read_snapshot, on_write_snapshot, slot_free
from .settings import SERVICE

log = logging.getLogger("mo_planner")
# A written batch is lost when both sides of its slot read empty at least this long after the write (as read by
# the PLC then, not as cached here: a link outage or a gateway restart is not evidence).
LOST_AFTER_S = 10.0
# A READ slot that shows "finished" without a finished weight this long raises an alarm (the batch is not
# final until the weight is there; see rules.WAITING_FOR_WEIGHT).
WEIGHT_GRACE_S = 10.0


class SlotTracker:
    """`after_change` runs after every applied snapshot and ack reply: a slot may have become free."""

    def __init__(
        self,
        memory_map: MemoryMap,
        topics: Topics,
        db: sessionmaker[Session],
        commands: CommandClient,
        announce: Announcer,
        metrics: PlannerMetrics,
        after_change: Callable[[], None],
    ) -> None:
        self.map = memory_map
        self.topics = topics
        self.db = db
        self.commands = commands
        self.announce = announce
        self.metrics = metrics
        self.after_change = after_change
        self.read_snaps: dict[int, ReadSlotSnapshot] = {}
        self.write_snaps: dict[int, WriteSlotSnapshot] = {}
        self.acked_mo: dict[int, str] = {}  # per slot: the MO whose ack the gateway confirmed last
        self.weightless_since: dict[str, float] = {}  # finished on the PLC, weight not written yet

    def free(self, slot: int, *, occupied_in_db: bool) -> bool:
        """May the next batch be written into `slot` (rules.slot_free on what the slot shows now)?"""
        free, _why = slot_free(
            self.write_snaps.get(slot),
            self.read_snaps.get(slot),
            occupied_in_db=occupied_in_db,
            acked_mo=self.acked_mo.get(slot),
        )
        return free

    # ------------------------------------------------------------------ snapshots

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
                self.announce.alarm(slot, snap, decision.reason)
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
                self.announce.alarm(
                    slot, snap, f"{mo_id} shows finished without a finished weight for {WEIGHT_GRACE_S:g} s"
                )
        elif mo_id is not None:
            self.weightless_since.pop(mo_id, None)
        # Committed: only now may the PLC be told that the result is stored, and only that result.
        if adopted and mo_id:
            self.announce.event("written", mo_id, slot, code="seen_on_plc")
        if event and mo_id:
            self.announce.event(event[0], mo_id, slot, **event[1])
        if ack is not None and mo_id:
            self._send_ack(slot, mo_id, ack)
        self.after_change()

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
            self.announce.event("written", mo_id, slot, code="seen_on_plc")
        if accepted and mo_id:
            self.announce.event("accepted", mo_id, slot)
        self.after_change()

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

    # ------------------------------------------------------------------ acknowledgements

    def _send_ack(self, slot: int, mo_id: str, fingerprint: str) -> None:
        if any(ack.mo_id == mo_id for ack in self.commands.in_flight(AckSlot)):
            return
        ack = AckSlot(request_id=self.commands.new_request_id(), slot=slot, mo_id=mo_id, fingerprint=fingerprint)
        self.commands.send(ack, self._on_ack_reply)

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
        self.after_change()

    # ------------------------------------------------------------------ lost batches

    def detect_lost_batches(self) -> None:
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
                before = evidence_at - dt.timedelta(seconds=LOST_AFTER_S)
                for row in on_plc_written_before(session, slot, before):
                    reason = f"PLC slot {slot} is empty: the batch was lost on the PLC (reboot?)"
                    move(session, row, "attention", actor=SERVICE, reason=reason, slot=slot)
                    row.last_error = reason
                    lost.append(row.mo_id)
            for mo_id in lost:
                log.error("batch lost on the PLC", extra={"mo_id": mo_id, "slot": slot})
                self.announce.event("attention", mo_id, slot, reason="lost on the PLC (slot empty)")
