"""Refill and enqueue: Odoo's MOs -> queued rows in mo_batch, up to the look-ahead, and a queued MO re-checked
against Odoo (mo-detail) right before it is written. The Odoo calls run on the feed's thread (odoo_feed.py);
their results are applied here, on the worker's thread."""

from __future__ import annotations

import logging
import math
import queue
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.batch_state import BatchState
from shared.db.columns import target_column
from shared.db.models import MoBatch
from shared.db.repo import (
    archive,
    audit,
    batch_by_mo,
    closed_in_history,
    count_in_state,
    move,
    queue_view,
    state_counts,
)
from shared.db.session import transaction
from shared.mqtt.events import BatchEventKind
from shared.odoo.mapping import Batch, mo_to_batch
from shared.odoo.models import Mo
from shared.plc.memory_map import MemoryMap

from .announce import Announcer
from .metrics import PlannerMetrics
from .odoo_feed import DetailResult, OdooFeed
from .rules import QueuedValues, Recheck, recheck_queued
from .settings import SERVICE, PlannerSettings

log = logging.getLogger("mo_planner")
REFILL_GAP_S = 1.0  # the queue ran short: ask Odoo again at most this often
IDLE_REPOLL_S = 5.0  # Odoo had nothing new (or failed): ask again at most this often
MAX_WINDOW_FACTOR = 64
LIST_MARGIN = 10  # MOs asked for beyond the ones the planner already holds and the room in the queue


class QueueRefill:
    def __init__(
        self,
        settings: PlannerSettings,
        memory_map: MemoryMap,
        db: sessionmaker[Session],
        feed: OdooFeed,
        announce: Announcer,
        metrics: PlannerMetrics,
    ) -> None:
        self.settings = settings
        self.map = memory_map
        self.db = db
        self.feed = feed
        self.announce = announce
        self.metrics = metrics
        # MOs with nothing the PLC can dose, by the content Odoo showed: looked at again once that changes.
        self.skipped_mos: dict[str, str] = {}
        # When mo-detail last cleared a queued MO for writing (it holds what is queued), and when such a
        # re-check failed (Odoo unreachable). The MO list alone never clears a write: it may be seconds old.
        self.cleared: dict[str, float] = {}
        self.check_failed: dict[str, float] = {}
        self.next_poll = 0.0
        self.last_poll_request = 0.0
        self.refill_gap = REFILL_GAP_S
        # The list is asked for in a window, not whole: a plant's Odoo may hold hundreds of confirmed MOs, and
        # reading all of them every refill cost Odoo (and our simulator) a long request each second (issue 16).
        # The window doubles while full pages leave the queue short (MOs we cannot take fill its top).
        self.window_factor = 1

    # ------------------------------------------------------------------ asking Odoo

    def wanted(self) -> int:
        """How many batches the queue should hold: one per active slot plus the look-ahead."""
        return self.settings.lookahead + self.map.active_slots

    def queued_count(self) -> int:
        with self.db() as session:
            return count_in_state(session, BatchState.QUEUED)

    def poll(self) -> None:
        """Ask Odoo for its MO list as soon as the queue runs short (event-driven); the long period
        (ODOO_POLL_S) is only a safety net. One list at a time."""
        if self.feed.busy:
            return
        mono = time.monotonic()
        with self.db() as session:
            counts = state_counts(session)
        short = counts.get(BatchState.QUEUED.value, 0) < self.wanted()
        if mono >= self.next_poll or (short and mono - self.last_poll_request >= self.refill_gap):
            self.next_poll = mono + self.settings.odoo_poll_s
            if short:
                self.last_poll_request = mono
                self.feed.request(self.list_window(sum(counts.values())))

    def list_window(self, rows_held: int) -> int:
        """How many MOs to ask Odoo for: the top of its list holds the MOs we already hold (every mo_batch row
        can still show as confirmed there) and the ones we skipped; the next ones to queue come after them."""
        return (rows_held + len(self.skipped_mos) + self.wanted() + LIST_MARGIN) * self.window_factor

    def drain(self) -> bool:
        """Apply what the Odoo thread brought (MO lists, mo-detail re-checks); True when a re-check was among
        them (a slot may be waiting for exactly that answer)."""
        checked = False
        while True:
            try:
                result = self.feed.results.get_nowait()
            except queue.Empty:
                break
            if isinstance(result, DetailResult):
                if result.mo is None:
                    self.metrics.odoo_errors.inc()
                self.recheck(result.mo_id, result.mo, detail=True)
                checked = True
            elif result.mos is not None:
                added = self.enqueue(result.mos)
                if result.full and self.queued_count() < self.wanted():
                    # The page ended before the queue was full: look further down the list, soon.
                    self.window_factor = min(self.window_factor * 2, MAX_WINDOW_FACTOR)
                    self.refill_gap = REFILL_GAP_S
                    continue
                self.window_factor = 1
                self.refill_gap = REFILL_GAP_S if added else IDLE_REPOLL_S
            else:
                self.metrics.odoo_errors.inc()
                self.refill_gap = IDLE_REPOLL_S
        return checked

    # ------------------------------------------------------------------ queueing

    def enqueue(self, mos: list[Mo]) -> int:
        """Queue MOs up to the look-ahead; returns how many were added. An MO Odoo shows that is already queued
        is re-checked against what was queued (it may have been edited or cancelled since)."""
        added = 0
        with self.db() as session:
            room = self.wanted() - count_in_state(session, BatchState.QUEUED)
            known, closed = queue_view(session, [mo.mo_id for mo in mos])
        for mo in mos:
            if mo.mo_id in known:
                if known[mo.mo_id]:
                    self.recheck(mo.mo_id, mo)  # queued, nothing sent: reconciled with what Odoo shows now
                continue
            if room <= 0 or mo.mo_id in closed:
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
                self.announce.event("alarm", mo.mo_id, None, reason="MO cannot be dosed", warnings=batch.warnings)
                continue
            try:
                with transaction(self.db) as session:
                    if batch_by_mo(session, mo.mo_id) is not None or closed_in_history(session, mo.mo_id):
                        continue
                    self._add(session, mo, batch)
            except IntegrityError:
                continue  # another writer queued it first: nothing doubled
            if batch.problems:
                log.error("MO not dosed", extra={"mo_id": mo.mo_id, "problems": batch.problems})
                self.announce.event("attention", mo.mo_id, None, reason="; ".join(batch.problems))
                continue
            room -= 1
            added += 1
            self.metrics.queued.inc()
            self.announce.event("queued", mo.mo_id, None, warnings=batch.warnings)
        return added

    def _add(self, session: Session, mo: Mo, batch: Batch) -> None:
        row = MoBatch(
            mo_id=mo.mo_id,
            state=BatchState.QUEUED.value,
            equipment=mo.equipment.code if mo.equipment else None,
            consumption=Decimal(str(batch.quantity)),
        )
        _set_values(row, _values_of(batch), mo, self.map.equipment_codes)
        session.add(row)
        audit(session, actor=SERVICE, action="queued", mo_id=mo.mo_id, to_state="queued", warnings=batch.warnings)
        if batch.problems:
            # A wrong recipe is never dosed: the row is kept (visible, with its reason) for a person.
            session.flush()
            reason = "; ".join(batch.problems)
            move(session, row, "attention", actor=SERVICE, reason=reason)
            row.last_error = reason

    # ------------------------------------------------------------------ re-checking a queued MO

    def recheck(self, mo_id: str, mo: Mo | None, *, detail: bool = False) -> bool:
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
            codes = self.map.equipment_codes
            decision = recheck_queued(_stored_values(row, codes), mo.state, mo_to_batch(mo, codes))
            if decision.verdict is Recheck.CANCEL:
                move(session, row, "cancelled", actor=SERVICE, reason=decision.reason)
                archive(session, row, "cancelled", actor=SERVICE, note=decision.reason)
                events.append(("cancelled", {"reason": decision.reason}))
            elif decision.verdict is Recheck.ATTENTION:
                move(session, row, "attention", actor=SERVICE, reason=decision.reason)
                row.last_error = decision.reason
                events.append(("attention", {"reason": decision.reason}))
            elif decision.verdict is Recheck.UPDATE and decision.values is not None:
                before = _stored_values(row, codes)
                _set_values(row, decision.values, mo, codes)
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
            self.announce.event(event, mo_id, None, **details)
        return True

    def confirmed(self, mo_id: str) -> bool:
        """May a queued MO be written now? Only if mo-detail showed it as queued within RECHECK_S (the MO list
        does not count: it may be seconds old, and a cancel in between was dosed in the soak), or if asking Odoo
        failed that recently: an Odoo outage never stops dosing (the look-ahead is there to ride it out), the
        batch is then written as it was queued."""
        mono = time.monotonic()
        recent = self.settings.recheck_s
        return mono - self.cleared.get(mo_id, -math.inf) <= recent or (
            mono - self.check_failed.get(mo_id, -math.inf) <= recent
        )

    def ask(self, mo_id: str) -> None:
        """Have Odoo re-read a queued MO (mo-detail); its answer arrives through `drain`."""
        self.feed.check(mo_id)

    def used(self, mo_id: str) -> None:
        """The MO's confirmation went into a write: a later write of it asks Odoo again."""
        self.cleared.pop(mo_id, None)


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
