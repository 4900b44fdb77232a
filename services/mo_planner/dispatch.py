"""Dispatch: the next queued batch into every free slot (`write_batch`), and what the gateway's reply makes of
it. The slot and the request id are committed before the command is sent, so a crash resends the same request
(the gateway's proof that it may already have written it)."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.batch_state import BatchState
from shared.db.columns import target_column
from shared.db.models import MoBatch
from shared.db.repo import batch_by_mo, move, next_queued, slot_occupied
from shared.db.session import transaction
from shared.mqtt.commands import CommandClient
from shared.mqtt.payloads import BatchPayload, CommandReply, WriteBatch
from shared.plc.memory_map import MemoryMap

from .announce import Announcer
from .metrics import PlannerMetrics
from .refill import QueueRefill
from .settings import SERVICE
from .slot_tracking import SlotTracker

log = logging.getLogger("mo_planner")
# write_batch replies that prove nothing was written: the next attempt may use a new request. A PLC that did
# not answer or refused mid-way (plc_unreachable, plc_error) is ambiguous: the request id is kept as the proof
# that a write may have landed and the same request is sent again (the gateway runs such a request again, and
# its write is idempotent on the block).
NOT_WRITTEN_CODES = frozenset({"slot_busy", "expired"})
# The gateway refused the batch as it is, the slot holds this MO with other values, or the read-back differs
# from the block: a person decides.
REFUSED_CODES = frozenset({"invalid_payload", "conflict", "mismatch"})


class Dispatcher:
    def __init__(
        self,
        memory_map: MemoryMap,
        db: sessionmaker[Session],
        commands: CommandClient,
        slots: SlotTracker,
        refill: QueueRefill,
        announce: Announcer,
        metrics: PlannerMetrics,
    ) -> None:
        self.map = memory_map
        self.db = db
        self.commands = commands
        self.slots = slots
        self.refill = refill
        self.announce = announce
        self.metrics = metrics

    def dispatch(self) -> None:
        """Write the next queued batch into every free slot."""
        for slot in self.map.slots():
            if any(write.slot == slot for write in self.commands.in_flight(WriteBatch)):
                continue
            if not self.slots.free(slot, occupied_in_db=False):
                continue  # the snapshots alone say no: no need to ask the database (most calls, while dosing)
            with transaction(self.db) as session:
                if not self.slots.free(slot, occupied_in_db=slot_occupied(session, slot)):
                    continue
                row = next_queued(session, slot)
                if row is None:
                    continue  # the queue is empty: the refill asks Odoo for more
                if row.write_request_id is None and not self.refill.confirmed(row.mo_id):
                    self.refill.ask(row.mo_id)  # written once Odoo answered (or could not: see `confirmed`)
                    continue
                try:
                    write = self.write_command(row, slot)
                except ValidationError as exc:  # never sent: a person looks at the MO (nothing reached the PLC)
                    reason = f"the batch cannot be sent to the gateway: {exc.errors()[0]['msg']}"
                    move(session, row, "attention", actor=SERVICE, reason=reason)
                    row.last_error = reason
                    continue
                row.slot, row.write_request_id = slot, write.request_id
                self.refill.used(row.mo_id)
            # Committed (slot + request id stored) before sending: a crash here resends the same request.
            self.commands.send(write, self.on_write_reply)

    def write_command(self, row: MoBatch, slot: int) -> WriteBatch:
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

    def on_write_reply(self, write: WriteBatch, reply: CommandReply) -> None:
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
            elif code in REFUSED_CODES:
                # The request id stays: a write may have landed.
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
            self.announce.event("written", mo_id, write.slot, code=code)
        else:
            log.warning("write_batch not done", extra={"mo_id": mo_id, "code": code, "detail": reply.message})
