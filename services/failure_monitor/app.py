"""failure_monitor: PLC failure events -> equipment_failure (idempotent by event_id) -> ack_failure -> Odoo.
Also the manual-weighing flow (weighing.py): PLC items -> manual_weighing -> ack_weighing -> Odoo.

The PLC's memory is the buffer: the event is acknowledged only after its row is committed, so a crash
anywhere re-delivers it, and the unique event_id makes storing it twice harmless. Odoo reports are not
idempotent: after an unknown outcome the worker looks the record up before posting again.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.backoff import next_attempt_at
from shared.db.claim import claim_failures
from shared.db.models import EquipmentFailure
from shared.db.repo import audit, now
from shared.db.session import transaction
from shared.mqtt.client import Message, Route
from shared.mqtt.events import FailureEvent, WeighingEvent
from shared.mqtt.payloads import AckFailure, CommandReply, utc_now
from shared.mqtt.snapshots import FailureSnapshot, WeighingSnapshot
from shared.mqtt.status import StatusDetails
from shared.mqtt.wire import receive
from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooBusinessError, OdooError, OdooTransportError
from shared.service import MqttWorker, Reporter, seconds_until_due

from .events import event_from_snapshot
from .settings import FailureSettings
from .weighing import ACK_TTL_S, WeighingFlow

log = logging.getLogger("failure_monitor")
SERVICE = "failure_monitor"
IDLE_S = 1.0  # the main loop's own work is resending overdue acks: messages are handled as they arrive


class Metrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.stored = Counter("failures_stored", "New failure events stored", registry=r)
        self.acked = Counter("failures_acked", "ack_failure replies", ["code"], registry=r)
        self.reported = Counter("failures_reported", "Failures confirmed by Odoo", registry=r)
        self.report_errors = Counter("failures_report_errors", "Failed Odoo report attempts", registry=r)
        self.attention = Counter("failures_attention", "Failure events parked for a person", registry=r)


class FailureMonitor(MqttWorker[FailureSettings]):
    service = SERVICE
    settings_class = FailureSettings

    def __init__(self, settings: FailureSettings, odoo: OdooClient | None = None) -> None:
        topics = settings.topics
        super().__init__(
            settings,
            routes=[
                Route(topics.plc_failure, self.on_failure_snapshot),
                Route(topics.failure_events, self.on_failure_event),
                Route(topics.plc_weighing, self._on_weighing_snapshot),
                Route(topics.weighing_events, self._on_weighing_event),
            ],
            birth=StatusDetails(timezone=settings.plant_timezone, weighing_items=settings.weighing_items),
            command_ttl_s=ACK_TTL_S,
            command_resend_s=settings.command_timeout_s,
        )
        self.odoo = odoo or OdooClient(settings)
        self.metrics = Metrics(self.registry)
        self.reporter = self.add_loop(Reporter("reporter", self._report_one, self._next_report_in))
        self.weighing = WeighingFlow(settings, self.odoo, self.db, self.link, self.commands, self.registry)
        self.add_loop(self.weighing.reporter)

    def health_checks(self) -> dict[str, str | None]:
        return {"odoo": self.odoo.login_error}

    def started_details(self) -> dict[str, Any]:
        return {"timezone": self.settings.plant_timezone}

    def step(self) -> float:
        return IDLE_S

    # ------------------------------------------------------------------ events and acks

    def _on_weighing_snapshot(self, msg: Message) -> None:
        weighings = receive(WeighingSnapshot, msg.payload, msg.topic, log)
        if weighings is not None:
            self.weighing.on_snapshot(weighings)

    def _on_weighing_event(self, msg: Message) -> None:
        event = receive(WeighingEvent, msg.payload, msg.topic, log)
        if event is not None:
            self.weighing.on_event(event)

    def on_failure_event(self, msg: Message) -> None:
        event = receive(FailureEvent, msg.payload, msg.topic, log)
        if event is not None and event.event == "retry":  # an operator handed a parked event back
            self.reporter.wake()

    def on_failure_snapshot(self, msg: Message) -> None:
        snap = receive(FailureSnapshot, msg.payload, msg.topic, log)
        if snap is None:
            return
        event = event_from_snapshot(snap, self.settings.plant_timezone)
        self._note_taken_on_plc(snap)
        if event is None:
            return
        with transaction(self.db) as session:
            inserted = session.execute(
                insert(EquipmentFailure)
                .values(
                    event_id=event.event_id,
                    equipment_code=event.equipment_code,
                    description=event.description,
                    plc_time_local=event.local_time,
                    plc_timezone=self.settings.plant_timezone,
                    plc_time_utc=event.utc_time,
                    attention_reason=event.unreportable,
                    attention_at=now() if event.unreportable else None,
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(EquipmentFailure.id)
            ).first()
            if inserted is not None:
                audit(
                    session,
                    actor=SERVICE,
                    action="failure_stored",
                    event_id=event.event_id,
                    equipment=event.equipment_code,
                    description=event.description,
                )
        if inserted is not None:
            self.metrics.stored.inc()
            log.info("failure stored", extra={"event_id": event.event_id, "equipment": event.equipment_code})
            if event.unreportable:
                self._announce_attention(event.event_id, event.unreportable)
            self.reporter.wake()
        # Stored and committed (now or earlier): acknowledge to the PLC.
        if event.event_id not in {cmd.event_id for cmd in self.commands.in_flight(AckFailure)}:
            ack = AckFailure(request_id=self.commands.new_request_id(), event_id=event.event_id)
            self.commands.send(ack, self._on_ack_reply)

    def _note_taken_on_plc(self, snap: FailureSnapshot) -> None:
        """Record acknowledgements the PLC's memory proves but whose reply never reached us (we restarted after
        sending the ack, or the PLC took F = 1 and posted its next event before the gateway's read-back): the
        event shown with F = 1 is taken, and so is every stored event the area no longer shows, because the PLC
        posts its next event only after it read F = 1. Else acked_at would stay NULL forever."""
        shown = snap.failure
        if shown is None:
            return
        current = shown.event_id
        taken_now = shown.status_read_data == 1
        stmt = select(EquipmentFailure).where(EquipmentFailure.acked_at.is_(None)).with_for_update()
        if not taken_now:
            stmt = stmt.where(EquipmentFailure.event_id != current)
        with transaction(self.db) as session:
            rows = session.scalars(stmt).all()
            for row in rows:
                row.acked_at = now()
                code = "seen_on_plc" if row.event_id == current else "superseded_on_plc"
                audit(session, actor=SERVICE, action="failure_acked", event_id=row.event_id, code=code)
                log.info("failure ack confirmed by PLC memory", extra={"event_id": row.event_id, "code": code})

    def _on_ack_reply(self, ack: AckFailure, reply: CommandReply) -> None:
        self.metrics.acked.labels(reply.code).inc()
        if not reply.ok:
            log.warning(
                "ack_failure refused",
                extra={"event_id": ack.event_id, "code": reply.code, "detail": reply.message},
            )
            return
        with transaction(self.db) as session:
            row = session.scalars(
                select(EquipmentFailure).where(EquipmentFailure.event_id == ack.event_id).with_for_update()
            ).first()
            if row is not None and row.acked_at is None:
                row.acked_at = now()
                audit(session, actor=SERVICE, action="failure_acked", event_id=ack.event_id, code=reply.code)

    def _announce_attention(self, event_id: str, reason: str) -> None:
        self.metrics.attention.inc()
        log.error("failure event needs a person", extra={"event_id": event_id, "reason": reason})
        message = FailureEvent(ts=utc_now(), source=SERVICE, event="attention", event_id=event_id, reason=reason)
        self.link.publish_json(self.topics.failure_events, message.wire())

    # ------------------------------------------------------------------ reporting to Odoo

    def _next_report_in(self) -> float:
        return seconds_until_due(
            self.db,
            EquipmentFailure.next_attempt_at,
            EquipmentFailure.reported_at.is_(None),
            cap=self.settings.report_sweep_s,
        )

    def _report_one(self) -> bool:
        """Report one due failure; True when one was handled (more may be due).

        Odoo failure reports are not idempotent, and a crash (kill -9, power loss) during the call leaves no
        trace of it unless the attempt is recorded first. So: (1) claim the row and commit "attempt in flight"
        (outcome_unknown = True, lease = next_attempt_at beyond the longest the call can take, so a replica
        does not take it meanwhile); (2) call Odoo outside any transaction; (3) store the result. A worker that
        finds outcome_unknown looks the record up in Odoo before posting (ensure_failure_reported).
        """
        with transaction(self.db) as session:
            claimed = claim_failures(session)
            row = claimed[0] if claimed else None
            if row is None:
                return False
            row_id, event_id = row.id, row.event_id
            was_unknown = row.outcome_unknown
            row.report_attempts += 1
            attempts = row.report_attempts
            row.outcome_unknown = True  # write-ahead: from here on a crash means "maybe posted"
            row.next_attempt_at = now() + dt.timedelta(seconds=self._lease_s())
            code, description = row.equipment_code, row.description
            date = row.plc_time_utc.astimezone(dt.UTC).replace(tzinfo=None)  # Odoo wants naive UTC
        try:
            if was_unknown:
                record = self.odoo.ensure_failure_reported(code, description, date)
            else:
                record = self.odoo.report_failure(code, description, date)
        except OdooBusinessError as exc:
            # Odoo answered cleanly and refused (unknown equipment, missing text): the same report will be
            # refused again, so it waits for a person instead of being retried forever.
            reason = f"Odoo refused the report: {exc.message}"
            with transaction(self.db) as session:
                row = session.get(EquipmentFailure, row_id, with_for_update=True)
                if row is None or row.reported_at is not None:
                    return True
                row.outcome_unknown = False
                row.last_error = f"{type(exc).__name__}: {exc}"
                row.attention_reason, row.attention_at, row.next_attempt_at = reason, now(), None
                audit(session, actor=SERVICE, action="failure_attention", event_id=event_id, reason=reason)
            self.metrics.report_errors.inc()
            self._announce_attention(event_id, reason)
            return True
        except OdooError as exc:
            unknown = was_unknown or (isinstance(exc, OdooTransportError) and exc.outcome_unknown)
            with transaction(self.db) as session:
                row = session.get(EquipmentFailure, row_id, with_for_update=True)
                if row is None or row.reported_at is not None:
                    return True
                row.outcome_unknown = unknown
                row.last_error = f"{type(exc).__name__}: {exc}"
                row.next_attempt_at = next_attempt_at(
                    now(), attempts, self.settings.report_retry_s, self.settings.report_retry_max_s, key=event_id
                )
                if isinstance(exc, OdooTransportError) and exc.may_still_run:
                    # Odoo keeps working on a request whose client gave up: a look-up before it lands finds
                    # nothing and posts again (a double). Look only once the longest call is surely over.
                    row.next_attempt_at = max(row.next_attempt_at, now() + dt.timedelta(seconds=self._lease_s()))
            self.metrics.report_errors.inc()
            log.warning("failure report failed; will retry", extra={"event_id": event_id, "error": str(exc)})
            return True
        with transaction(self.db) as session:
            row = session.get(EquipmentFailure, row_id, with_for_update=True)
            if row is None or row.reported_at is not None:
                return True
            row.reported_at = now()
            row.odoo_record_id = record.id
            row.outcome_unknown = False
            row.last_error = None
            row.next_attempt_at = None
            audit(session, actor=SERVICE, action="failure_reported", event_id=event_id, odoo_record_id=record.id)
        self.metrics.reported.inc()
        return True

    def _lease_s(self) -> float:
        """Longer than one report can take (a session renewal may add a login and a lookup)."""
        return 3 * (self.settings.odoo_connect_timeout + self.settings.odoo_read_timeout) + 5.0
