"""requests-based client for the grt_scada API, built around the real module's quirks (docs/odoo-api.md O7).

* One ``requests.Session`` (cookie jar) per client; create one client per process and share it.
* Login through ``/web/session/authenticate`` (always routable, binds the DB); the sid comes from the
  ``Set-Cookie`` the jar keeps, never from a body (O1.3, O7.1).
* Session expiry is HTTP 200 + ``error.code == 100`` (O7.2): one re-login, serialized by a lock so parallel
  callers do not rotate each other's sid, then a replay of idempotent calls only.
* Login back-off: failed logins are spaced out exponentially and, after ``odoo_login_max_failures`` or when
  Odoo reports its per-IP lock, paused for ``odoo_login_cooldown`` seconds (O7.3). A paused client raises
  ``OdooLoginCooldown`` at once instead of hammering Odoo or blocking threads.
* Every reply is classified (see ``protocol``): success, partial (``UpdateOutcome.status == "partial"``),
  business error, session expired, transport/protocol error.
"""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import requests
from pydantic import BaseModel, ValidationError

from shared.odoo.errors import (
    OdooAuthError,
    OdooBusinessError,
    OdooLoginCooldown,
    OdooProtocolError,
    OdooServerError,
    OdooSessionExpired,
    OdooTransportError,
)
from shared.odoo.mapping import consumption_payload, material_consumption_payload
from shared.odoo.models import (
    CancelOutcome,
    CancelReply,
    FailureCreateReply,
    FailureListReply,
    FailureRecord,
    MarkDoneOutcome,
    MarkDoneReply,
    MaterialConsumptionReply,
    Mo,
    MoDetailReply,
    MoListReply,
    SessionInfo,
    UpdateOutcome,
    UpdateReply,
)
from shared.odoo.protocol import check_status, decode_reply, envelope, unwrap
from shared.odoo.settings import OdooSettings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

LOGIN_PATH = "/web/session/authenticate"
COOLDOWN_TEXT = "Too many login failures"
ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"  # the only format every grt_scada date input accepts (O4.7, O4.10)


class _LoginCookiesOnly(http.cookiejar.DefaultCookiePolicy):
    """Accept ``Set-Cookie`` only from our own login response (thread-local flag).

    Odoo sets ``session_id`` on EVERY reply, echoing the sid the request carried. A request still in flight
    with the old sid while another thread re-logs in would put that dead sid back into the shared jar.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        if not getattr(self.local, "accept", False):
            return False
        return bool(super().set_ok(cookie, request))


def _parse(model: type[M], result: Mapping[str, Any], endpoint: str) -> M:
    try:
        return model.model_validate(result)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise OdooProtocolError(
            f"reply does not match {model.__name__}: {problems}{more}", endpoint=endpoint
        ) from None


def format_odoo_datetime(value: datetime) -> str:
    """Naive UTC -> ``YYYY-MM-DD HH:MM:SS``. Aware datetimes are refused: Odoo stores what it gets as UTC (O7.10)."""
    if value.tzinfo is not None:
        raise ValueError("Odoo expects naive UTC datetimes; convert with .astimezone(UTC).replace(tzinfo=None)")
    return value.strftime(ODOO_DATETIME)


class OdooClient:
    """Thread-safe client. All public methods raise ``shared.odoo.errors.OdooError`` subclasses."""

    def __init__(
        self,
        settings: OdooSettings,
        *,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._base = settings.odoo_url
        self._http = http or requests.Session()
        self._http.verify = settings.tls_verify
        self._cookie_policy = _LoginCookiesOnly()
        self._http.cookies.set_policy(self._cookie_policy)
        self._clock = clock
        self._ids = itertools.count(1)
        self._login_lock = threading.Lock()
        self._generation = 0  # +1 per successful login; lets a waiting thread see that a re-login happened
        self._logged_in = False
        self._failures = 0
        self._next_login_at = 0.0
        self.session_info: SessionInfo | None = None
        # Why the last login attempt failed (Odoo's message, never the password); None once a login succeeds.
        # Services report it in /healthz: with every login refused they are not ready.
        self.login_error: str | None = None

    # ------------------------------------------------------------------ transport

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any],
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        body = json.dumps(envelope(params, next(self._ids)))
        read_timeout = timeout if timeout is not None else self._settings.odoo_read_timeout
        try:
            resp = self._http.request(
                method,
                self._base + path,
                data=body.encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                params=dict(query) if query else None,
                timeout=(self._settings.odoo_connect_timeout, read_timeout),
                allow_redirects=False,
                # Per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's verify.
                verify=self._http.verify,
            )
        except requests.ConnectTimeout:
            raise OdooTransportError("connect timeout", endpoint=path, outcome_unknown=False) from None
        except requests.Timeout:
            raise OdooTransportError(
                f"no reply within {read_timeout}s", endpoint=path, may_still_run=True
            ) from None
        except requests.ConnectionError as exc:
            refused = "NewConnectionError" in repr(exc) or "Connection refused" in str(exc)
            raise OdooTransportError(
                f"connection {'refused' if refused else 'failed'}: {type(exc).__name__}: {exc}",
                endpoint=path,
                outcome_unknown=not refused,
            ) from None
        except requests.RequestException as exc:
            raise OdooTransportError(f"{type(exc).__name__}: {exc}", endpoint=path) from None
        if 300 <= resp.status_code < 400:
            raise OdooProtocolError(
                f"HTTP {resp.status_code} redirect to {resp.headers.get('Location', '?')!r}",
                endpoint=path,
                http_status=resp.status_code,
            )
        return decode_reply(resp.status_code, resp.headers.get("Content-Type", ""), resp.content, endpoint=path)

    # ------------------------------------------------------------------ login

    def login(self) -> SessionInfo:
        """Log in (again) now. Raises OdooLoginCooldown while backing off, OdooAuthError when refused."""
        with self._login_lock:
            return self._login_locked()

    def _note_failure(self, now: float) -> float:
        self._failures += 1
        s = self._settings
        if self._failures >= s.odoo_login_max_failures:
            delay = s.odoo_login_cooldown
        else:
            delay = min(s.odoo_login_backoff_base * 2 ** (self._failures - 1), s.odoo_login_cooldown)
        self._next_login_at = now + delay
        return delay

    def _login_locked(self) -> SessionInfo:
        s = self._settings
        now = self._clock()
        if now < self._next_login_at:
            wait = self._next_login_at - now
            raise OdooLoginCooldown(
                f"login paused for {wait:.1f}s more after {self._failures} failure(s)",
                retry_after=wait,
                endpoint=LOGIN_PATH,
            )
        self._logged_in = False
        params = {"db": s.odoo_db, "login": s.odoo_login, "password": s.odoo_password.get_secret_value()}
        self._cookie_policy.local.accept = True
        try:
            result = unwrap(self._send("POST", LOGIN_PATH, params), endpoint=LOGIN_PATH)
        except OdooServerError as exc:
            self.login_error = f"login refused for {s.odoo_login!r} on db {s.odoo_db!r}: {exc.message}"
            if COOLDOWN_TEXT in exc.message:
                self._failures = max(self._failures, s.odoo_login_max_failures)
                self._next_login_at = now + s.odoo_login_cooldown
                log.warning("odoo login locked by the server; next attempt in %.0fs", s.odoo_login_cooldown)
                raise OdooLoginCooldown(
                    exc.message, retry_after=s.odoo_login_cooldown, endpoint=LOGIN_PATH
                ) from None
            delay = self._note_failure(now)
            log.warning(
                "odoo login refused for %r on db %r (%s); next attempt in %.1fs",
                s.odoo_login,
                s.odoo_db,
                exc.message,
                delay,
            )
            raise OdooAuthError(f"login refused: {exc.message}", endpoint=LOGIN_PATH) from None
        except OdooSessionExpired as exc:  # not expected on an auth='none' route
            raise OdooProtocolError(f"session error on login: {exc.message}", endpoint=LOGIN_PATH) from None
        finally:
            self._cookie_policy.local.accept = False
        assert result is not None
        info = _parse(SessionInfo, result, LOGIN_PATH)
        if not self._http.cookies.get("session_id"):
            # The body has no usable sid (O2.2, O7.1): without the cookie every later call would fail.
            raise OdooProtocolError("login succeeded but no session_id cookie was set", endpoint=LOGIN_PATH)
        self._failures = 0
        self._next_login_at = 0.0
        self.login_error = None
        self._generation += 1
        self._logged_in = True
        self.session_info = info
        log.info("odoo login ok: login %r db %r uid %d", s.odoo_login, info.db, info.uid)
        return info

    def _ensure_login(self) -> int:
        if not self._logged_in:
            with self._login_lock:
                if not self._logged_in:
                    self._login_locked()
        return self._generation

    def _relogin(self, seen_generation: int) -> None:
        with self._login_lock:
            if self._generation != seen_generation and self._logged_in:
                return  # another thread re-logged in while we waited: its fresh sid is in the jar
            log.info("odoo session expired; logging in again")
            self._logged_in = False
            self._login_locked()

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any],
        *,
        idempotent: bool,
        query: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API call returning ``result`` with a success status; handles session expiry (O7.2, O7.4)."""
        generation = self._ensure_login()
        try:
            doc = self._send(method, path, params, query=query, timeout=timeout)
            result = unwrap(doc, endpoint=path)
        except OdooSessionExpired:
            self._relogin(generation)
            if not idempotent:
                # The session is fresh now; the caller decides how to repeat a non-idempotent call safely.
                raise OdooSessionExpired(
                    "session expired; logged in again, call not replayed", endpoint=path
                ) from None
            doc = self._send(method, path, params, query=query, timeout=timeout)
            result = unwrap(doc, endpoint=path)  # a second expiry propagates as OdooSessionExpired
        assert result is not None
        check_status(result, endpoint=path)
        return result

    def check_session(self) -> bool:
        """Cheapest liveness probe (O2.3, O7.14): True if the current session is valid. Never logs in."""
        try:
            unwrap(
                self._send("POST", "/web/session/check", {}), endpoint="/web/session/check", allow_no_result=True
            )
        except OdooSessionExpired:
            return False
        return True

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ reads

    def list_mos(self, *, limit: int = 10, offset: int = 0, states: Sequence[str] | None = None) -> list[Mo]:
        """``mo-list-detailed`` (O4.4): ordered by planned start. Odoo's default is 10 confirmed MOs;
        ``limit=0`` returns all. Duplicates by ``mo_id`` are dropped (O7.12)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if states is not None:
            if not states:
                raise ValueError("states must not be empty (Odoo would silently use ['confirmed'])")
            params["states"] = list(states)
        path = "/api/scada/mo-list-detailed"
        reply = _parse(MoListReply, self._call("POST", path, params, idempotent=True), path)
        seen: set[str] = set()
        out: list[Mo] = []
        for mo in reply.data:
            if mo.mo_id not in seen:
                seen.add(mo.mo_id)
                out.append(mo)
        return out

    def mo_detail(self, mo_id: str) -> Mo:
        """``mo-detail`` (O4.5) by MO name; any state, done and cancelled included."""
        path = "/api/scada/mo-detail"
        return _parse(MoDetailReply, self._call("POST", path, {"mo_id": mo_id}, idempotent=True), path).data

    def _reread(self, mo_id: str) -> Mo | None:
        try:
            return self.mo_detail(mo_id)
        except Exception as exc:  # best effort: the original error matters more
            log.warning("odoo: re-reading %s after a failed write failed too: %s", mo_id, exc)
            return None

    # ------------------------------------------------------------------ writes

    def update_consumption(self, payload: Mapping[str, Any]) -> UpdateOutcome:
        """``update-with-consumptions`` with a body from ``consumption_payload`` (O4.6).

        SET semantics make it idempotent, so it is replayed after a session expiry. Returns status "success" or
        "partial" (Odoo's ``errors``; the MO is re-read into ``mo``). A refusal raises OdooBusinessError with
        the re-read MO in ``mo``: part of the write may already be committed (O5.3).
        """
        path = "/api/scada/mo/update-with-consumptions"
        mo_id = payload.get("mo_id")
        if not isinstance(mo_id, str) or not mo_id:
            raise ValueError("payload needs mo_id (an MO name)")
        try:
            result = self._call("POST", path, payload, idempotent=True)
        except OdooBusinessError as exc:
            raise OdooBusinessError(exc.message, endpoint=path, mo=self._reread(mo_id)) from None
        reply = _parse(UpdateReply, result, path)
        partial = bool(reply.errors)
        if partial:
            log.warning("odoo: %s updated with errors: %s", mo_id, "; ".join(reply.errors))
        return UpdateOutcome(
            status="partial" if partial else "success",
            mo_id=reply.mo_id,
            mo_state=reply.mo_state,
            message=reply.message,
            consumed_items=reply.consumed_items,
            errors=reply.errors,
            updated_finished_qty=reply.updated_finished_qty,
            mo=self._reread(mo_id) if partial else None,
        )

    def report_consumption(
        self, mo_id: str, finished_qty: float | None, actuals: Mapping[str, float]
    ) -> UpdateOutcome:
        """``update_consumption(consumption_payload(...))``."""
        return self.update_consumption(consumption_payload(mo_id, finished_qty, actuals))

    def mark_done(
        self, mo_id: str, finished_qty: float, *, date_end_actual: datetime | None = None
    ) -> MarkDoneOutcome:
        """Close an MO and verify it (O4.7, O7.8). ``done`` is read back from ``mo-detail``: Odoo answers success
        while leaving the MO open (quantity below target, consumption off the BoM on a non-flexible BoM).

        Safe to call again after any error: an MO that is already done is reported as done without a second
        mark-done (which Odoo would refuse). Send ``quantity`` >= the target via update first.
        """
        path = "/api/scada/mo/mark-done"
        if isinstance(finished_qty, bool) or not isinstance(finished_qty, int | float) or not finished_qty > 0:
            raise ValueError("finished_qty must be a number > 0")
        params: dict[str, Any] = {"mo_id": mo_id, "finished_qty": float(finished_qty)}
        if date_end_actual is not None:
            params["date_end_actual"] = format_odoo_datetime(date_end_actual)
        before = self.mo_detail(mo_id)
        if before.state == "done":
            return MarkDoneOutcome(mo_id=mo_id, done=True, state="done", already_done=True, mo=before)
        if before.state == "cancel":
            raise OdooBusinessError("MO is cancelled; it cannot be marked done", endpoint=path, mo=before)
        message = ""
        for attempt in (1, 2):
            try:
                message = _parse(MarkDoneReply, self._call("POST", path, params, idempotent=False), path).message
                break
            except OdooSessionExpired:
                # Expiry is detected before the handler runs; with a fresh session, re-check before resending.
                if attempt == 2:
                    raise
                again = self.mo_detail(mo_id)
                if again.state in ("done", "cancel"):
                    return MarkDoneOutcome(mo_id=mo_id, done=again.state == "done", state=again.state, mo=again)
            except OdooBusinessError as exc:
                after = self._reread(mo_id)
                if after is not None and after.state == "done":
                    return MarkDoneOutcome(mo_id=mo_id, done=True, state="done", already_done=True, mo=after)
                raise OdooBusinessError(exc.message, endpoint=path, mo=after) from None
        after = self.mo_detail(mo_id)
        if after.state != "done":
            log.warning("odoo: mark-done of %s answered success but the MO is %s", mo_id, after.state)
        return MarkDoneOutcome(
            mo_id=mo_id, done=after.state == "done", state=after.state, message=message, mo=after
        )

    def cancel(self, mo_id: str) -> CancelOutcome:
        """``mo/cancel`` (O4.8). Idempotent: an MO already cancelled is fine. A done MO raises OdooBusinessError."""
        path = "/api/scada/mo/cancel"
        try:
            result = self._call("POST", path, {"mo_id": mo_id}, idempotent=True)
        except OdooBusinessError as exc:
            raise OdooBusinessError(exc.message, endpoint=path, mo=self._reread(mo_id)) from None
        reply = _parse(CancelReply, result, path)
        return CancelOutcome(mo_id=reply.mo_id, state=reply.mo_state, already_cancelled="already" in reply.message)

    # ------------------------------------------------------------------ manual weighing (O4.9)

    def add_material_consumption(
        self, *, equipment_code: str, product_id: int, quantity: float, mo_id: str, timestamp: datetime
    ) -> MaterialConsumptionReply:
        """POST ``/api/scada/material-consumption`` in add mode. NOT idempotent: a replay double-counts.

        Never replayed, not even after a session renewal (OdooSessionExpired reaches the caller: the call was
        refused before it ran). On a transport error the outcome is unknown: read ``mo_detail`` and compare with
        the consumption read before the first post. Check ``applied_qty``: it can be less than ``quantity``."""
        path = "/api/scada/material-consumption"
        params = material_consumption_payload(
            equipment_code=equipment_code,
            product_id=product_id,
            quantity=quantity,
            mo_id=mo_id,
            timestamp=format_odoo_datetime(timestamp),
        )
        return _parse(MaterialConsumptionReply, self._call("POST", path, params, idempotent=False), path)

    # ------------------------------------------------------------------ equipment failures (O4.10)

    def report_failure(
        self, equipment_code: str, description: str, date: datetime, *, duration: str | None = None
    ) -> FailureRecord:
        """POST ``/api/scada/equipment-failure``. NOT idempotent: every call creates a record (O5.2).

        Never replayed. On a transport error the outcome is unknown: call ``ensure_failure_reported`` (or
        ``find_failure``) before posting again. ``date`` is naive UTC; seconds precision (Odoo drops the rest).
        """
        path = "/api/scada/equipment-failure"
        params: dict[str, Any] = {
            "equipment_code": equipment_code,
            "description": description,
            "date": format_odoo_datetime(date),
        }
        if duration is not None:
            params["duration"] = duration
        try:
            result = self._call("POST", path, params, idempotent=False)
        except OdooSessionExpired:
            # Session renewed; look before posting so a retry can never create a duplicate.
            found = self.find_failure(equipment_code, description, date)
            if found is not None:
                return found
            result = self._call("POST", path, params, idempotent=False)
        return _parse(FailureCreateReply, result, path).data

    def find_failures(
        self, equipment_code: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[FailureRecord]:
        """GET ``/api/scada/equipment-failure`` (query args, JSON body): newest first."""
        path = "/api/scada/equipment-failure"
        query: dict[str, Any] = {"limit": limit, "offset": offset}
        if equipment_code is not None:
            query["equipment_code"] = equipment_code
        return _parse(FailureListReply, self._call("GET", path, {}, idempotent=True, query=query), path).data

    def find_failure(
        self, equipment_code: str, description: str, date: datetime, *, page_size: int = 50, max_pages: int = 20
    ) -> FailureRecord | None:
        """The record with this code, description and date (to the second), or None. Pages back from the newest
        until records are older than ``date``."""
        wanted = date.replace(microsecond=0)
        for page in range(max_pages):
            records = self.find_failures(equipment_code, limit=page_size, offset=page * page_size)
            for rec in records:
                if rec.equipment_code == equipment_code and rec.date == wanted and rec.description == description:
                    return rec
            if len(records) < page_size or (records and records[-1].date < wanted):
                return None
        return None

    def ensure_failure_reported(
        self, equipment_code: str, description: str, date: datetime, *, duration: str | None = None
    ) -> FailureRecord:
        """Report a failure at most once: look it up first, post only if Odoo does not have it yet."""
        existing = self.find_failure(equipment_code, description, date)
        if existing is not None:
            return existing
        return self.report_failure(equipment_code, description, date, duration=duration)

    def fetch_queue(self, states: Iterable[str] = ("confirmed",), *, limit: int = 0) -> list[Mo]:
        """The first ``limit`` MOs in ``states`` in Odoo's planned order (``0``: every one), de-duplicated by
        ``mo_id``."""
        return self.list_mos(limit=limit, states=list(states))
