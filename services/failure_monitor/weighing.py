"""Manual weighing, the flow of failure_monitor that owns `manual_weighing` (docs/architecture.md):
PLC item (plc/weighing) -> stored row -> commit -> ack_weighing -> Odoo material-consumption, exactly once.

Order: store, commit, acknowledge, report (never the other way round). An Odoo outage therefore never holds an
item on the PLC: the scale keeps working and the reports follow from the database later.

Identity (the PLC has no weighing number): a stored row that is not yet acknowledged and has the snapshot's
content id is the same weighing, re-delivered; once acknowledged, the same content again is a new weighing
(the PLC reuses an item only after its flag reads 1). A partial unique index holds the rule in the database.
Snapshots and ack replies are handled in arrival order on one thread, and the gateway publishes a snapshot
before it executes a later command, so a snapshot that shows an item pending after its ack reply was read
after the ack: it is a new weighing, never a stale copy of the acknowledged one.

Odoo: `material-consumption` adds and keeps no record of a post, so the consumption of the product is read
(`mo-detail`) and stored before every post, with `outcome_unknown` committed first (write-ahead). After an
unknown outcome the worker reads again and decides from the stored value (weighing_rules.earlier_post_verdict).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from shared.backoff import next_attempt_at
from shared.db.claim import claim_weighings
from shared.db.models import ManualWeighing
from shared.db.repo import audit, now
from shared.db.session import transaction
from shared.mqtt.client import MqttLink
from shared.mqtt.commands import CommandClient
from shared.mqtt.events import WeighingEvent, WeighingEventKind
from shared.mqtt.payloads import AckWeighing, CommandReply, utc_now
from shared.mqtt.snapshots import WeighingSnapshot
from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooBusinessError, OdooError, OdooTransportError
from shared.service import Reporter, seconds_until_due

from .settings import FailureSettings
from .weighing_rules import (
    ItemOnPlc,
    PendingWeighing,
    cannot_take,
    earlier_post_verdict,
    product_cap,
    product_consumption,
    short_applied,
    weighings_from_snapshot,
)

log = logging.getLogger("failure_monitor.weighing")
ACTOR = "failure_monitor"
ACK_TTL_S = 30.0  # expires_at of an ack (ack_failure and ack_weighing): a late gateway must not act on it
OUTCOME_UNKNOWN = "outcome_unknown"  # ack_weighing's reply code, kept as ack_code while a person decides


@dataclass(frozen=True)
class StoredWeighing:
    """The unacknowledged row of a pending weighing: what its ack names and whether it may be sent."""

    row_id: int
    stored_at: dt.datetime
    parked: bool
    ack_code: str | None


class WeighingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.stored = Counter("weighings_stored", "New manual weighings stored", registry=r)
        self.acked = Counter("weighings_acked", "ack_weighing replies", ["code"], registry=r)
        self.reported = Counter("weighings_reported", "Weighings booked in Odoo", registry=r)
        self.report_errors = Counter("weighings_report_errors", "Failed Odoo report attempts", registry=r)
        self.attention = Counter("weighings_attention", "Weighings parked for a person", registry=r)


class WeighingFlow:
    def __init__(
        self,
        settings: FailureSettings,
        odoo: OdooClient,
        db: sessionmaker[Session],
        link: MqttLink,
        commands: CommandClient,
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.odoo = odoo
        self.db = db
        self.link = link
        self.topics = settings.topics
        self.commands = commands
        self.items = settings.weighing_item_set
        self.metrics = WeighingMetrics(registry)
        self.reporter = Reporter("weighing-reporter", self._report_one, self._next_report_in)

    # ------------------------------------------------------------------ snapshots and acks (main thread)

    def on_snapshot(self, snap: WeighingSnapshot) -> None:
        weighings, shown = weighings_from_snapshot(snap, self.items)
        self._note_taken_on_plc(shown)
        in_flight = {ack.event_id for ack in self.commands.in_flight(AckWeighing)}
        for w in weighings:
            stored = self._store(w)
            if stored is None or stored.parked or w.event_id in in_flight:
                continue  # a parked ack waits for a person (edgectl weighing-retry / weighing-acked)
            lost = stored.ack_code == OUTCOME_UNKNOWN  # a person said the earlier write never landed
            ack = AckWeighing(
                request_id=self.commands.new_request_id(),
                item=w.item,
                event_id=w.event_id,
                weighing_id=stored.row_id,
                stored_at=stored.stored_at,
                earlier_write_lost=lost,
            )
            if lost:
                # Said once, by this request only: should its own write end unknown too, a later request asks
                # without it and a person decides again (the gateway never lets it cover a write it made).
                with transaction(self.db) as session:
                    session.execute(
                        update(ManualWeighing)
                        .where(ManualWeighing.id == stored.row_id, ManualWeighing.acked_at.is_(None))
                        .values(ack_code=None)
                    )
            self.commands.send(ack, self._on_ack_reply)

    def _store(self, w: PendingWeighing) -> StoredWeighing | None:
        """Insert unless an unacknowledged row with this content id exists (then it is the same weighing);
        either way the unacknowledged row the ack is for."""
        with transaction(self.db) as session:
            row_id = session.execute(
                insert(ManualWeighing)
                .values(
                    event_id=w.event_id,
                    item=w.item,
                    batch=w.batch,
                    mo_id=w.mo_id,
                    product_id=w.product_id,
                    kg=w.kg,
                )
                .on_conflict_do_nothing(index_elements=["event_id"], index_where=text("acked_at IS NULL"))
                .returning(ManualWeighing.id)
            ).scalar()
            if row_id is not None:
                audit(
                    session,
                    actor=ACTOR,
                    action="weighing_stored",
                    mo_id=w.mo_id,
                    event_id=w.event_id,
                    weighing_id=row_id,
                    item=w.item,
                    product_id=w.product_id,
                    kg=str(w.kg),
                )
            row = session.execute(
                select(
                    ManualWeighing.id,
                    ManualWeighing.received_at,
                    ManualWeighing.attention_reason,
                    ManualWeighing.ack_code,
                ).where(ManualWeighing.event_id == w.event_id, ManualWeighing.acked_at.is_(None))
            ).first()
        if row_id is not None:
            self.metrics.stored.inc()
            log.info(
                "weighing stored",
                extra={"weighing_id": row_id, "item": w.item, "mo_id": w.mo_id, "kg": str(w.kg)},
            )
            self._announce(
                "stored", row_id, w.event_id, item=w.item, mo_id=w.mo_id, product_id=w.product_id, kg=float(w.kg)
            )
        if row is None:
            return None  # acknowledged meanwhile by another replica: the next snapshot shows what is left
        return StoredWeighing(row.id, row.received_at, row.attention_reason is not None, row.ack_code)

    def _note_taken_on_plc(self, shown: list[ItemOnPlc]) -> None:
        """Acks the PLC's memory proves but whose reply never reached us (we restarted after sending it): the
        item shows our weighing with flag 1, or another valid weighing (the PLC reuses an item only after its
        flag read 1). An item shown empty or invalid proves nothing (a reboot, a half-written entry)."""
        by_item = {s.item: s for s in shown}
        if not by_item:
            return
        noted: list[tuple[int, str, int, str]] = []
        with transaction(self.db) as session:
            rows = session.scalars(
                select(ManualWeighing).where(ManualWeighing.acked_at.is_(None)).with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                seen = by_item.get(row.item)
                if seen is None or seen.event_id is None:
                    continue
                if seen.event_id == row.event_id and seen.flag == 1:
                    code = "seen_on_plc"
                elif seen.event_id != row.event_id:
                    code = "superseded_on_plc"
                else:
                    continue
                if row.ack_code == OUTCOME_UNKNOWN:
                    # PLC memory settled what a person was asked to decide.
                    row.attention_reason, row.attention_at = None, None
                row.acked_at, row.ack_code = now(), code
                audit(
                    session,
                    actor=ACTOR,
                    action="weighing_acked",
                    event_id=row.event_id,
                    weighing_id=row.id,
                    code=code,
                )
                noted.append((row.id, row.event_id, row.item, code))
        for row_id, event_id, item, code in noted:  # announced once committed, like every other event
            log.info("weighing ack confirmed by PLC memory", extra={"weighing_id": row_id, "code": code})
            self._announce("acked", row_id, event_id, item=item, code=code)
        if noted:
            self.reporter.wake()

    def _on_ack_reply(self, ack: AckWeighing, reply: CommandReply) -> None:
        self.metrics.acked.labels(reply.code).inc()
        if reply.code == OUTCOME_UNKNOWN:
            self._park_unknown_ack(ack, reply.message)
            return
        if not reply.ok:
            # The next snapshot decides: the same weighing pending again -> ack again; taken -> noted.
            log.warning(
                "ack_weighing refused",
                extra={"event_id": ack.event_id, "code": reply.code, "detail": reply.message},
            )
            return
        acked: int | None = None
        with transaction(self.db) as session:
            row = session.scalars(
                select(ManualWeighing)
                .where(ManualWeighing.id == ack.weighing_id, ManualWeighing.acked_at.is_(None))
                .with_for_update()
            ).first()
            if row is not None:
                row.acked_at, row.ack_code, acked = now(), reply.code, row.id
                audit(
                    session,
                    actor=ACTOR,
                    action="weighing_acked",
                    event_id=ack.event_id,
                    weighing_id=row.id,
                    code=reply.code,
                )
        if acked is not None:
            self._announce("acked", acked, ack.event_id, item=ack.item, code=reply.code)
            self.reporter.wake()

    def _park_unknown_ack(self, ack: AckWeighing, detail: str) -> None:
        """The gateway cannot tell whether its earlier flag write for this weighing landed (it stopped between
        the write and the read-back, and the item shows the same content with flag 0 again): one weighing or
        two identical ones. Guessing would lose or double one, so the row waits, unacknowledged, for a person."""
        self._park(ack.weighing_id, ack.event_id, f"acknowledgement unknown: {detail}", None, before_ack=True)

    def on_event(self, event: WeighingEvent) -> None:
        if event.event == "retry":  # an operator handed a parked weighing back
            self.reporter.wake()

    def _announce(self, event: WeighingEventKind, weighing_id: int, event_id: str, **details: Any) -> None:
        message = WeighingEvent(
            ts=utc_now(), source=ACTOR, event=event, weighing_id=weighing_id, event_id=event_id, **details
        )
        self.link.publish_json(self.topics.weighing_events, message.wire())

    # ------------------------------------------------------------------ reporting to Odoo (reporter thread)

    def _next_report_in(self) -> float:
        return seconds_until_due(
            self.db,
            ManualWeighing.next_attempt_at,
            ManualWeighing.reported_at.is_(None),
            ManualWeighing.attention_reason.is_(None),
            cap=self.settings.report_sweep_s,
        )

    def _lease_s(self) -> float:
        """Longer than one report can take: mo-detail, the post, and a session renewal with each."""
        return 4 * (self.settings.odoo_connect_timeout + self.settings.odoo_read_timeout) + 5.0

    def _report_one(self) -> bool:
        """Report one due weighing; True when one was handled (more may be due)."""
        with transaction(self.db) as session:
            claimed = claim_weighings(session)
            if not claimed:
                return False
            row = claimed[0]
            row_id, event_id = row.id, row.event_id
            mo_id, product_id, kg = row.mo_id, row.product_id, row.kg
            was_unknown, before = row.outcome_unknown, row.odoo_before_kg
            row.report_attempts += 1
            attempts = row.report_attempts
            row.next_attempt_at = now() + dt.timedelta(seconds=self._lease_s())  # a replica leaves it alone
            stamp = row.received_at.astimezone(dt.UTC).replace(tzinfo=None)  # Odoo wants naive UTC
        try:
            mo = self.odoo.mo_detail(mo_id)
        except OdooBusinessError as exc:
            self._park(row_id, event_id, f"Odoo cannot read MO {mo_id}: {exc.message}", exc)
            return True
        except OdooError as exc:
            self._retry_later(row_id, event_id, attempts, exc, unknown=None)  # a read changes nothing
            return True
        current = product_consumption(mo, product_id)
        if was_unknown and before is not None and current is not None:
            verdict, why = earlier_post_verdict(before, current, kg, product_cap(mo, product_id))
            if verdict == "applied":
                self._reported(row_id, event_id, current - before, why)
                return True
            if verdict == "undecidable":
                self._park(row_id, event_id, why, None)
                return True
            log.info("earlier post was not applied; posting again", extra={"weighing_id": row_id, "why": why})
        reason = cannot_take(mo, product_id)
        if reason is not None:
            self._park(row_id, event_id, reason, None)
            return True
        assert current is not None
        with transaction(self.db) as session:
            held = session.get(ManualWeighing, row_id, with_for_update=True)
            if held is None or held.reported_at is not None:
                return True
            # Write-ahead: from here on a crash means "maybe posted"; `before` decides it then.
            held.odoo_before_kg, held.outcome_unknown = current, True
        try:
            reply = self.odoo.add_material_consumption(
                equipment_code=self.settings.weighing_equipment_code,
                product_id=product_id,
                quantity=float(kg),
                mo_id=mo_id,
                timestamp=stamp,
            )
        except OdooBusinessError as exc:
            # Odoo answered cleanly and refused (MO state, no open move, unknown scale code): not applied, and
            # the same post would be refused again, so a person decides.
            self._park(row_id, event_id, f"Odoo refused the consumption: {exc.message}", exc)
            return True
        except OdooError as exc:
            unknown = isinstance(exc, OdooTransportError) and exc.outcome_unknown
            self._retry_later(row_id, event_id, attempts, exc, unknown=unknown)
            return True
        applied = Decimal(str(reply.applied_qty)).quantize(Decimal("0.01"))
        self._reported(row_id, event_id, applied, reply.message, short=short_applied(applied, kg))
        return True

    def _reported(
        self, row_id: int, event_id: str, applied: Decimal, detail: str, short: str | None = None
    ) -> None:
        with transaction(self.db) as session:
            row = session.get(ManualWeighing, row_id, with_for_update=True)
            if row is None or row.reported_at is not None:
                return
            row.reported_at, row.applied_kg = now(), applied
            row.outcome_unknown, row.last_error, row.next_attempt_at = False, None, None
            if short is None:
                short = short_applied(applied, row.kg)
            if short is not None:
                # Booked in part: never posted again (it would double the applied part); a person books the rest.
                row.attention_reason, row.attention_at = short, now()
            audit(
                session,
                actor=ACTOR,
                action="weighing_reported",
                mo_id=row.mo_id,
                event_id=event_id,
                weighing_id=row_id,
                applied_kg=str(applied),
                detail=detail,
            )
            mo_id, kg = row.mo_id, row.kg
        self.metrics.reported.inc()
        log.info("weighing reported", extra={"weighing_id": row_id, "mo_id": mo_id, "applied_kg": str(applied)})
        self._announce("reported", row_id, event_id, mo_id=mo_id, kg=float(kg), applied_kg=float(applied))
        if short is not None:
            self.metrics.attention.inc()
            self._announce("attention", row_id, event_id, reason=short)

    def _park(
        self, row_id: int, event_id: str, reason: str, exc: Exception | None, *, before_ack: bool = False
    ) -> None:
        with transaction(self.db) as session:
            row = session.get(ManualWeighing, row_id, with_for_update=True)
            if row is None or row.reported_at is not None or (before_ack and row.acked_at is not None):
                return
            # outcome_unknown stays as it is: after an operator's retry an unknown post is still decided first.
            row.attention_reason, row.attention_at, row.next_attempt_at = reason, now(), None
            if before_ack:
                row.ack_code = OUTCOME_UNKNOWN  # the operator's retry then says "that write was lost"
            if exc is not None:
                row.last_error = f"{type(exc).__name__}: {exc}"
            audit(
                session,
                actor=ACTOR,
                action="weighing_attention",
                mo_id=row.mo_id,
                event_id=event_id,
                weighing_id=row_id,
                reason=reason,
            )
        self.metrics.attention.inc()
        log.error("weighing needs a person", extra={"weighing_id": row_id, "reason": reason})
        self._announce("attention", row_id, event_id, reason=reason)

    def _retry_later(
        self, row_id: int, event_id: str, attempts: int, exc: OdooError, *, unknown: bool | None
    ) -> None:
        """Try again later; `unknown` is the outcome of this attempt's post (None: no post was made)."""
        with transaction(self.db) as session:
            row = session.get(ManualWeighing, row_id, with_for_update=True)
            if row is None or row.reported_at is not None:
                return
            if unknown is not None:
                row.outcome_unknown = unknown
            row.last_error = f"{type(exc).__name__}: {exc}"
            row.next_attempt_at = next_attempt_at(
                now(), attempts, self.settings.report_retry_s, self.settings.report_retry_max_s, key=event_id
            )
            if unknown:
                # Odoo keeps working on a request whose client gave up (a timeout): a read made before that
                # request lands would call it "not applied" and the re-post would double it. So the verdict
                # waits as long as the crash lease does.
                row.next_attempt_at = max(row.next_attempt_at, now() + dt.timedelta(seconds=self._lease_s()))
        self.metrics.report_errors.inc()
        log.warning("weighing report failed; will retry", extra={"weighing_id": row_id, "error": str(exc)})
