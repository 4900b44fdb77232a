"""failure_monitor: PLC failure events -> equipment_failure (idempotent by event_id) -> ack_failure -> Odoo.
Also the manual-weighing flow (weighing.py): PLC items -> manual_weighing -> ack_weighing -> Odoo.

The PLC's memory is the buffer: the event is acknowledged only after its row is committed, so a crash
anywhere re-delivers it, and the unique event_id makes storing it twice harmless. Odoo reports are not
idempotent: after an unknown outcome the worker looks the record up before posting again.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError

from shared import __version__
from shared.backoff import next_attempt_at
from shared.db.claim import claim_failures
from shared.db.models import EquipmentFailure
from shared.db.repo import audit, now
from shared.db.session import make_session_factory, transaction
from shared.health import readiness, start_health_server
from shared.mqtt.client import Message, MqttLink, json_object
from shared.mqtt.events import FailureEvent, WeighingEvent
from shared.mqtt.payloads import answers, iso, utc_now
from shared.mqtt.snapshots import FailureSnapshot, WeighingSnapshot
from shared.mqtt.wire import receive
from shared.odoo.client import OdooClient
from shared.odoo.errors import OdooBusinessError, OdooError, OdooTransportError

from .events import event_from_snapshot
from .settings import FailureSettings
from .weighing import REQUEST_PREFIX, WeighingFlow

log = logging.getLogger("failure_monitor")
SERVICE = "failure_monitor"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stored = Counter("failures_stored", "New failure events stored", registry=r)
        self.acked = Counter("failures_acked", "ack_failure replies", ["code"], registry=r)
        self.reported = Counter("failures_reported", "Failures confirmed by Odoo", registry=r)
        self.report_errors = Counter("failures_report_errors", "Failed Odoo report attempts", registry=r)
        self.attention = Counter("failures_attention", "Failure events parked for a person", registry=r)


class FailureMonitor:
    def __init__(self, settings: FailureSettings, odoo: OdooClient) -> None:
        self.s = settings
        self.odoo = odoo
        self.topics = settings.topics
        self.metrics = Metrics()
        self.engine = settings.make_engine(application_name=SERVICE)
        self.db = make_session_factory(self.engine)
        self.reply_topic = self.topics.reply_prefix(SERVICE)
        self.report_wake = threading.Event()
        self.pending: dict[str, tuple[str, float]] = {}  # request_id -> (event_id, sent_at)
        self.link = MqttLink(
            address=settings.broker(),
            client_id=settings.client_id(SERVICE),
            status_topic=self.topics.svc_status(SERVICE),
            source=SERVICE,
            subscriptions=[
                (self.topics.plc_failure, 1),
                (self.reply_topic, 1),
                (self.topics.failure_events, 1),
                (self.topics.plc_weighing, 1),
                (self.topics.weighing_events, 1),
            ],
            birth={
                "version": __version__,
                "timezone": settings.plant_timezone,
                "weighing_items": settings.weighing_items,
            },
        )
        self.weighing = WeighingFlow(
            settings, odoo, self.db, self.link, self.topics, self.reply_topic, self.metrics.registry
        )
        self.last_loop = time.monotonic()
        self.db_ok = True

    def health(self) -> dict[str, Any]:
        mqtt_ok = self.link.connected.is_set()
        stalled = time.monotonic() - self.last_loop > 60
        return readiness(
            {
                "broker": None if mqtt_ok else "not connected",
                "database": None if self.db_ok else "unavailable",
                "odoo": self.odoo.login_error,
                "loop": "stalled for more than 60 s" if stalled else None,
            },
            mqtt_connected=mqtt_ok,
            database_ok=self.db_ok,
        )

    def run(self, stop: threading.Event) -> None:
        health = start_health_server(self.s.health_port, self.metrics.registry, self.health, self.s.health_host)
        reporter = threading.Thread(target=self._report_loop, args=(stop,), name="reporter", daemon=True)
        reporter.start()
        weighing_reporter = threading.Thread(
            target=self.weighing.report_loop, args=(stop,), name="weighing-reporter", daemon=True
        )
        weighing_reporter.start()
        self.link.start()
        log.info("failure_monitor started", extra={"timezone": self.s.plant_timezone})
        try:
            while not stop.is_set():
                try:
                    msg = self.link.inbox.get(timeout=0.2)
                except queue.Empty:
                    msg = None
                try:
                    if msg is not None:
                        self.on_message(msg)
                    self._resend_overdue()
                    self.weighing.resend_overdue()
                    self.db_ok = True
                except OperationalError as exc:
                    self.db_ok = False  # not stored = not acked; the PLC keeps the event and it comes again
                    log.error("database unavailable", extra={"error": str(exc.orig)})
                    time.sleep(1.0)
                self.last_loop = time.monotonic()
        finally:
            self.report_wake.set()
            self.weighing.report_wake.set()
            reporter.join(5)
            weighing_reporter.join(5)
            self.link.stop()
            if health:
                health.stop()
            self.engine.dispose()
            log.info("failure_monitor stopped")

    # ------------------------------------------------------------------ events and acks

    def on_message(self, msg: Message) -> None:
        body = json_object(msg.payload)
        if body is None:
            return
        if msg.topic == self.reply_topic:
            if str(body.get("request_id", "")).startswith(REQUEST_PREFIX):
                self.weighing.on_reply(body)
            else:
                self.on_reply(body)
            return
        if msg.topic == self.topics.plc_weighing:
            weighings = receive(WeighingSnapshot, msg.payload, msg.topic, log)
            if weighings is not None:
                self.weighing.on_snapshot(weighings)
            return
        if msg.topic == self.topics.weighing_events:
            weighing_event = receive(WeighingEvent, msg.payload, msg.topic, log)
            if weighing_event is not None:
                self.weighing.on_event(weighing_event)
            return
        if msg.topic == self.topics.failure_events:
            failure_event = receive(FailureEvent, msg.payload, msg.topic, log)
            if failure_event is not None and failure_event.event == "retry":
                self.report_wake.set()  # an operator handed a parked event back: report it now
            return
        snap = receive(FailureSnapshot, msg.payload, msg.topic, log)
        if snap is None:
            return
        event = event_from_snapshot(snap, self.s.plant_timezone)
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
                    plc_timezone=self.s.plant_timezone,
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
            self.report_wake.set()
        # Stored and committed (now or earlier): acknowledge to the PLC.
        if event.event_id not in {e for e, _ in self.pending.values()}:
            self._send_ack(event.event_id, f"af-{uuid.uuid4().hex}")

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

    def _send_ack(self, event_id: str, request_id: str) -> None:
        self.pending[request_id] = (event_id, time.monotonic())
        expires = utc_now() + dt.timedelta(seconds=30)
        self.link.publish_json(
            self.topics.cmd("ack_failure"),
            {
                "request_id": request_id,
                "reply_to": self.reply_topic,
                "event_id": event_id,
                "expires_at": iso(expires),
            },
        )

    def _resend_overdue(self) -> None:
        for request_id, (event_id, sent_at) in list(self.pending.items()):
            if time.monotonic() - sent_at > self.s.command_timeout_s:
                self._send_ack(event_id, request_id)

    def on_reply(self, body: dict[str, Any]) -> None:
        request_id = str(body.get("request_id"))
        entry = self.pending.get(request_id)
        if entry is None:
            return
        if not answers(body, request_id, "ack_failure", {"event_id": entry[0]}):
            log.warning("reply ignored: it does not answer our ack_failure", extra={"request_id": request_id})
            return
        del self.pending[request_id]
        code = str(body.get("code"))
        self.metrics.acked.labels(code).inc()
        if body.get("ok"):
            with transaction(self.db) as session:
                row = session.scalars(
                    select(EquipmentFailure).where(EquipmentFailure.event_id == entry[0]).with_for_update()
                ).first()
                if row is not None and row.acked_at is None:
                    row.acked_at = now()
                    audit(session, actor=SERVICE, action="failure_acked", event_id=entry[0], code=code)
        else:
            log.warning(
                "ack_failure refused", extra={"event_id": entry[0], "code": code, "detail": body.get("message")}
            )

    def _announce_attention(self, event_id: str, reason: str) -> None:
        self.metrics.attention.inc()
        log.error("failure event needs a person", extra={"event_id": event_id, "reason": reason})
        message = FailureEvent(ts=utc_now(), source=SERVICE, event="attention", event_id=event_id, reason=reason)
        self.link.publish_json(self.topics.failure_events, message.wire())

    # ------------------------------------------------------------------ reporting to Odoo

    def _report_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                while self._report_one():
                    pass
            except OperationalError as exc:
                log.error("database unavailable (reporter)", extra={"error": str(exc.orig)})
            except Exception:
                log.exception("reporter crashed; continuing")
            self.report_wake.wait(timeout=min(self.s.report_sweep_s, self._next_due()))
            self.report_wake.clear()

    def _next_due(self) -> float:
        try:
            with self.db() as session:
                nxt = session.scalar(
                    select(EquipmentFailure.next_attempt_at)
                    .where(EquipmentFailure.reported_at.is_(None), EquipmentFailure.next_attempt_at.is_not(None))
                    .order_by(EquipmentFailure.next_attempt_at)
                    .limit(1)
                )
        except OperationalError:
            return 2.0
        return self.s.report_sweep_s if nxt is None else max(0.05, (nxt - now()).total_seconds())

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
                    now(), attempts, self.s.report_retry_s, self.s.report_retry_max_s, key=event_id
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
        return 3 * (self.s.odoo_connect_timeout + self.s.odoo_read_timeout) + 5.0
