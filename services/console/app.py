"""The console's shell: Starlette routes, the MQTT link that feeds the live view, the SSE stream, and the
operator actions (which run shared.db.operator_actions, the code edgectl runs too).

Live updates: paho's thread updates `LiveState` and sets an asyncio event; one refresher task re-reads the
database summary, renders the overview's live fragment and, when it changed, hands it to every open
Server-Sent-Events stream. The browser swaps the fragment in (static/console.js). Broker down: MqttLink
reconnects by itself and the page says the data is stale meanwhile. Console restarted: EventSource reconnects
by itself, and the session cookie stays valid because the key comes from a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.console import auth, queries, views
from services.console.settings import ConsoleSettings
from shared import __version__
from shared.db.batch_state import HistoryStatus
from shared.db.columns import COLUMN_SUFFIX
from shared.db.models import MoBatch, MoHistory
from shared.db.operator_actions import (
    ActionRefused,
    ActionResult,
    acked_weighing,
    actions_for,
    actions_for_weighing,
    cancel_batch,
    give_up_weighing,
    retry_batch,
    retry_failure,
    retry_weighing,
)
from shared.db.repo import actuals_of, audit
from shared.db.session import make_engine, make_session_factory, transaction
from shared.mqtt.client import Delivery, Message, MqttLink, json_object
from shared.mqtt.client import Route as MqttRoute
from shared.mqtt.commands import UNREACHABLE_CODES, CommandClient
from shared.mqtt.events import BatchEvent, FailureEvent, WeighingEvent
from shared.mqtt.payloads import Arm, CommandReply, utc_now
from shared.mqtt.status import StatusDetails
from shared.odoo.mapping import consumption_payload

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "console_session"
SERVICE = "console"
ARM_TIMEOUT_S = 5.0  # how long an operator waits for the gateway's answer to `arm` (also its expires_at)
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    # No inline script anywhere: the one script is a file, so a CSP without 'unsafe-inline' holds.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
ACTION_LABELS = {
    "retry": "Retry: hand back to odoo_sync",
    "cancel": "Cancel / give up",
    "failure_retry": "Retry the failure report",
    "weighing_retry": "Retry: hand back to failure_monitor",
    "weighing_acked": "Acked: the PLC took it (the scale shows two)",
    "weighing_give_up": "Give up: book the rest in Odoo by hand",
    "arm": "Arm the slot",
}
DB_ACTIONS: dict[str, Callable[..., ActionResult]] = {
    "retry": retry_batch,
    "cancel": cancel_batch,
    "failure_retry": retry_failure,
    "weighing_retry": retry_weighing,
    "weighing_acked": acked_weighing,
    "weighing_give_up": give_up_weighing,
}
DONE_TEXT = {
    "retry": "Retried: odoo_sync reports it again.",
    "cancel": "Cancelled and archived.",
    "failure_retry": "Handed back to failure_monitor.",
    "weighing_retry": "Retried: failure_monitor reports the weighing again (or acknowledges it again).",
    "weighing_acked": "Recorded as acknowledged: failure_monitor reports it; the item's weighing is the next one.",
    "weighing_give_up": "Given up: the gateway never posts it again; book what is missing in Odoo by hand.",
    "arm": "Arm request answered by the gateway.",
}


@dataclass
class Ctx:
    session: auth.Session
    user: auth.User | None
    set_cookie: bool  # a new or rotated session must be sent to the browser

    @property
    def operator(self) -> bool:
        return self.user is not None and self.user.role == "operator"


class Console:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.users_path = settings.console_users_file
        self.users = auth.load_users(self.users_path)
        self._users_mtime = self.users_path.stat().st_mtime
        self.signer = auth.Signer(
            settings.console_secret_key.get_secret_value(), lifetime_s=int(settings.console_session_hours * 3600)
        )
        # Per login name, and (looser) per client address: one address guessing many names is slowed too,
        # while a control room where everybody shares one address is not locked out by one person's typos.
        self.user_limiter = auth.RateLimiter(settings.console_login_limit, settings.console_login_window_s)
        self.ip_limiter = auth.RateLimiter(4 * settings.console_login_limit, settings.console_login_window_s)
        # Sessions logged out before their cookie expires: revocation tag -> expiry. Each logout is also an
        # audit_event row, read back at start, so a restart does not bring a logged-out cookie back to life.
        self.revoked: dict[str, int] = {}
        self._revoked_loaded = False
        self.read_engine = queries.read_only_engine(
            settings.sqlalchemy_url(),
            pool_size=settings.database_pool_size,
            connect_timeout_s=settings.database_connect_timeout_s,
        )
        self.reader = make_session_factory(self.read_engine)
        self.action_engine = make_engine(
            settings.action_sqlalchemy_url(),
            pool_size=1,
            connect_timeout_s=settings.database_connect_timeout_s,
            application_name="console-actions",
        )
        self.writer: sessionmaker[Session] = make_session_factory(self.action_engine)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
        )
        self.templates.globals.update(tone_of_state=views.tone_of_state, labels=ACTION_LABELS)
        self.live = views.LiveState(self.topics)
        self._lock = threading.Lock()
        self.fragment = ""
        self.db_error: str | None = None
        # Snapshots arrive several times a second while dosing; the database summary is re-read only when a
        # lifecycle event says it changed, or every 3 s as a safety net.
        self._summary: queries.Summary | None = None
        self._db_stale = True
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.registry = CollectorRegistry()
        self.m_logins = Counter("console_logins", "Login attempts", ["result"], registry=self.registry)
        self.m_actions = Counter(
            "console_actions", "Operator actions", ["action", "result"], registry=self.registry
        )
        self.m_streams = Gauge("console_live_streams", "Open live (SSE) streams", registry=self.registry)
        self.m_refresh = Counter("console_live_renders", "Live fragments rendered", registry=self.registry)
        # Replies to this process's own commands (arm) come on a topic of its own below the console's prefix.
        self.commands = CommandClient(
            self.topics,
            SERVICE,
            lambda topic, body: self.link.publish_json(topic, body),
            ttl_s=ARM_TIMEOUT_S,
            session=uuid.uuid4().hex,
        )
        self.link = MqttLink(
            address=settings.broker(),
            client_id=settings.client_id(SERVICE),
            status_topic=self.topics.svc_status(SERVICE),
            source=SERVICE,
            routes=[
                MqttRoute(self.topics.gateway_status, self._on_live),
                MqttRoute(self.topics.svc_status("+"), self._on_live),
                MqttRoute(self.topics.plc_read("+"), self._on_live, qos=0),
                MqttRoute(self.topics.plc_write("+"), self._on_live, qos=0),
                MqttRoute(self.topics.batch_events, self._on_db_event),
                MqttRoute(self.topics.failure_events, self._on_db_event),
                MqttRoute(self.topics.weighing_events, self._on_db_event),
                MqttRoute(self.commands.reply_topic, self._on_reply),
            ],
            deliver=self._to_loop,
            on_connected=self._nudge,
            birth=StatusDetails(version=__version__, role="operator console"),
        )

    # ------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        await asyncio.to_thread(self._load_revoked)
        self.link.start()
        self._refresher = asyncio.create_task(self._refresh_loop())

    async def shutdown(self) -> None:
        self._refresher.cancel()
        await asyncio.to_thread(self.link.stop)
        self.read_engine.dispose()
        self.action_engine.dispose()

    # ------------------------------------------------------------ MQTT (handlers run on the event loop)

    def _to_loop(self, delivery: Delivery) -> None:
        """paho's thread only schedules the route's handler on the event loop."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(delivery.run)

    def _nudge(self) -> None:
        if self.loop is not None and self._changed is not None:
            self.loop.call_soon_threadsafe(self._changed.set)

    def _on_reply(self, msg: Message) -> None:
        body = json_object(msg.payload)
        if body is not None:
            self.commands.on_reply(body)

    def _on_db_event(self, msg: Message) -> None:
        self._db_stale = True  # the database changed: re-read it
        self._nudge()

    def _on_live(self, msg: Message) -> None:
        body = json_object(msg.payload)
        if body is None:
            return
        with self._lock:
            changed = self.live.apply(msg.topic, msg.payload)
        if changed:
            self._nudge()

    # ------------------------------------------------------------ live fragment

    async def _refresh_loop(self) -> None:
        assert self._changed is not None
        while True:
            # Safety net: the broker state and the database are looked at every 3 s even without news.
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=3.0)
            except TimeoutError:
                self._db_stale = True
            self._changed.clear()
            if not self._revoked_loaded:
                await asyncio.to_thread(self._load_revoked)  # the database was away at start
            try:
                html = await asyncio.to_thread(self.render_live)
            except Exception:
                log.exception("live view render failed")
                await asyncio.sleep(1.0)
                continue
            if html != self.fragment:
                self.fragment = html
                for q in list(self.subscribers):
                    if q.full():
                        q.get_nowait()  # a slow client only needs the newest view
                    q.put_nowait(html)
            await asyncio.sleep(0.25)  # at most 4 renders a second, however busy the broker is

    def overview(self) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            self.live.broker_connected = self.link.connected.is_set()
            statuses = dict(self.live.statuses)
            reads = dict(self.live.reads)
            connected = self.live.broker_connected
        if self._db_stale or self._summary is None:
            self._db_stale = False
            try:
                with self.reader() as s:
                    self._summary = queries.summary(s, now)
                    s.expunge_all()
                self.db_error = None
            except SQLAlchemyError as exc:
                self._summary, self.db_error = None, type(exc).__name__
        summary = self._summary
        services = views.service_rows(statuses)
        plc = views.plc_row(statuses.get("plc_gateway"))
        slot_count = plc.slots or max([*reads.keys(), 1])
        slots = views.slot_rows(
            range(1, slot_count + 1),
            reads,
            summary.targets if summary else {},
            summary.states if summary else {},
        )
        banners = views.banners(
            [r.mo_id for r in summary.attention] if summary else [],
            len(summary.failures_attention) if summary else 0,
            services,
            plc,
            connected,
            summary.weighings_attention if summary else 0,
        )
        if self.db_error:
            banners.insert(0, views.Banner(f"DATABASE UNREACHABLE ({self.db_error}): queue not shown", "/"))
        return {
            "services": services,
            "plc": plc,
            "slots": slots,
            "summary": summary,
            "banners": banners,
            "broker_connected": connected,
        }

    def render_live(self) -> str:
        self.m_refresh.inc()
        return self.templates.get_template("_live.html").render(ov=self.overview())

    # ------------------------------------------------------------ sessions

    def _reload_users(self) -> None:
        # A changed users file (user added, removed or demoted) applies without a restart.
        try:
            mtime = self.users_path.stat().st_mtime
            if mtime != self._users_mtime:
                self.users, self._users_mtime = auth.load_users(self.users_path), mtime
        except (OSError, auth.AuthConfigError) as exc:
            log.error("users file not reloaded: %s", exc)

    def _load_revoked(self) -> None:
        """Logouts whose sessions have not expired yet, from audit_event. The database away: tried again on
        the next refresh; until then only this process's own logouts are known."""
        try:
            with self.reader() as s:
                found = queries.revoked_sessions(s, dt.datetime.now(dt.UTC), self.signer.lifetime_s)
        except SQLAlchemyError as exc:
            log.error("logged-out sessions not read (retrying)", extra={"error": type(exc).__name__})
            return
        self.revoked.update(found)
        self._revoked_loaded = True

    def _is_revoked(self, session: auth.Session) -> bool:
        return self.signer.revocation_tag(session) in self.revoked

    def _record_logout(self, ctx: Ctx, client: str) -> None:
        tag = self.signer.revocation_tag(ctx.session)
        now = time.time()
        self.revoked = {k: v for k, v in self.revoked.items() if v > now}
        self.revoked[tag] = ctx.session.expires
        assert ctx.user is not None
        try:
            with transaction(self.writer) as s:
                audit(
                    s,
                    actor=f"console:{ctx.user.name}",
                    action=queries.LOGOUT_ACTION,
                    via="console",
                    client=client,
                    revocation=tag,
                    until=ctx.session.expires,
                )
        except SQLAlchemyError as exc:
            # Still revoked in this process; only a restart before the cookie expires would forget it.
            log.error("logout not stored", extra={"login": ctx.user.name, "error": type(exc).__name__})

    def context(self, request: Request) -> Ctx:
        self._reload_users()
        session = self.signer.loads(request.cookies.get(COOKIE))
        if session is not None and self._is_revoked(session):
            session = None
        if session is None:
            return Ctx(self.signer.new(None), None, True)
        user = self.users.get(session.user) if session.user else None
        if user is not None and self.signer.needs_renewal(session):
            return Ctx(self.signer.renewed(session), user, True)
        return Ctx(session, user, False)

    def finish(self, ctx: Ctx, response: Response) -> Response:
        if ctx.set_cookie:
            response.set_cookie(
                COOKIE,
                self.signer.dumps(ctx.session),
                max_age=self.signer.lifetime_s,
                httponly=True,
                samesite="strict",
                secure=self.settings.console_cookie_secure,
                path="/",
            )
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def page(self, ctx: Ctx, template: str, status: int = 200, **values: Any) -> Response:
        html = self.templates.get_template(template).render(
            user=ctx.user,
            csrf=self.signer.csrf_token(ctx.session),
            now=dt.datetime.now(dt.UTC),
            **values,
        )
        return self.finish(ctx, HTMLResponse(html, status_code=status))

    async def form(self, request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return {}
        parsed = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    # ------------------------------------------------------------ routes

    def guard(
        self, handler: Callable[[Request, Ctx], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Pages need a logged-in user; anyone else is sent to the login page (the target in the URL only)."""

        async def wrapped(request: Request) -> Response:
            ctx = self.context(request)
            if ctx.user is None:
                target = urllib.parse.quote(
                    request.url.path + ("?" + request.url.query if request.url.query else "")
                )
                return self.finish(ctx, RedirectResponse(f"/login?next={target}", status_code=303))
            return await handler(request, ctx)

        return wrapped

    async def login_page(self, request: Request) -> Response:
        ctx = self.context(request)
        return self.page(ctx, "login.html", next=_safe_next(request.query_params.get("next")), error=None)

    async def login(self, request: Request) -> Response:
        ctx = self.context(request)
        form = await self.form(request)
        name, password = form.get("username", "")[:64], form.get("password", "")
        nxt = _safe_next(form.get("next"))
        if not self.signer.csrf_ok(ctx.session, form.get("csrf")):
            self.m_logins.labels("csrf").inc()
            return self.page(ctx, "login.html", 403, next=nxt, error="The form expired: please log in again.")
        client = request.client.host if request.client else "?"
        wait = max(self.user_limiter.retry_after(name), self.ip_limiter.retry_after(client))
        if wait > 0:
            self.m_logins.labels("limited").inc()
            shown = name if name in self.users else "(unknown login)"
            log.warning("login rate-limited", extra={"login": shown, "client": client})
            resp = self.page(
                ctx, "login.html", 429, next=nxt, error=f"Too many failed logins: try again in {int(wait) + 1} s."
            )
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        user = await asyncio.to_thread(auth.authenticate, self.users, name, password)
        if user is None:
            self.user_limiter.failed(name)
            self.ip_limiter.failed(client)
            self.m_logins.labels("failed").inc()
            # An unknown name is not logged as typed: people type their password into the login field.
            shown = name if name in self.users else "(unknown login)"
            log.warning("login failed", extra={"login": shown, "client": client})
            return self.page(ctx, "login.html", 401, next=nxt, error="Wrong login or password.")
        self.user_limiter.succeeded(name)
        self.m_logins.labels("ok").inc()
        log.info("login", extra={"login": user.name, "role": user.role, "client": client})
        # A new session id at login: a session planted before the login is worth nothing afterwards.
        fresh = Ctx(self.signer.new(user.name), user, True)
        return self.finish(fresh, RedirectResponse(nxt, status_code=303))

    async def logout(self, request: Request) -> Response:
        ctx = self.context(request)
        form = await self.form(request)
        if ctx.user is not None and self.signer.csrf_ok(ctx.session, form.get("csrf")):
            client = request.client.host if request.client else "?"
            await asyncio.to_thread(self._record_logout, ctx, client)
            log.info("logout", extra={"login": ctx.user.name})
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return self.finish(Ctx(self.signer.new(None), None, False), resp)

    async def overview_page(self, request: Request, ctx: Ctx) -> Response:
        kiosk = request.query_params.get("kiosk") == "1"
        return self.page(
            ctx, "overview.html", live=self.fragment or await asyncio.to_thread(self.render_live), kiosk=kiosk
        )

    async def events(self, request: Request) -> Response:
        ctx = self.context(request)
        if ctx.user is None:
            return self.finish(ctx, Response("login required\n", status_code=401))
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        self.subscribers.add(q)
        self.m_streams.inc()
        session = ctx.session

        async def stream() -> Any:
            try:
                yield "retry: 2000\n\n"
                if self.fragment:  # just restarted: nothing rendered yet, keep what the screen shows
                    yield _sse("live", self.fragment)
                while True:
                    try:
                        html = await asyncio.wait_for(q.get(), timeout=5.0)
                        yield _sse("live", html)
                    except TimeoutError:
                        current = self.signer.loads(request.cookies.get(COOKIE))
                        if current is None or self._is_revoked(session):
                            yield _sse("logout", "")
                            return
                        if self.signer.needs_renewal(current):
                            # The stream's cookie cannot be replaced mid-stream: the page reloads and its
                            # request gets the renewed cookie (a kiosk stays logged in while it is open).
                            yield _sse("renew", "")
                            return
                        yield _sse("ping", dt.datetime.now(dt.UTC).strftime("%H:%M:%S"))
            finally:
                self.subscribers.discard(q)
                self.m_streams.dec()

        resp = StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})
        return self.finish(ctx, resp)

    async def attention_page(self, request: Request, ctx: Ctx) -> Response:
        def load() -> tuple[list[dict[str, Any]], list[Any]]:
            with self.reader() as s:
                summary = queries.summary(s, dt.datetime.now(dt.UTC))
                items = []
                for row in summary.attention:
                    detail = queries.batch_detail(s, row.mo_id)
                    items.append({"row": row, "actions": actions_for(row), "events": detail.events[-6:]})
                s.expunge_all()
                return items, summary.failures_attention

        items, failures = await asyncio.to_thread(load)
        with self._lock:
            gateway = self.live.statuses.get("plc_gateway")
            known = list(self.live.reads)
        slots = range(1, (views.plc_row(gateway).slots or max([*known, 1])) + 1)
        return self.page(ctx, "attention.html", items=items, failures=failures, slots=slots)

    async def queue_page(self, request: Request, ctx: Ctx) -> Response:
        def load() -> list[Any]:
            with self.reader() as s:
                rows = queries.summary(s, dt.datetime.now(dt.UTC)).queue
                s.expunge_all()
                return [{"row": r, "actions": actions_for(r)} for r in rows]

        return self.page(ctx, "queue.html", items=await asyncio.to_thread(load))

    def _history_query(self, request: Request) -> views.HistoryQuery:
        return views.parse_history_query(dict(request.query_params), [s.value for s in HistoryStatus])

    async def history_page(self, request: Request, ctx: Ctx) -> Response:
        q = self._history_query(request)
        size = self.settings.console_page_size

        def load() -> tuple[list[dict[str, Any]], int]:
            with self.reader() as s:
                return queries.history(s, q, size)

        rows, total = await asyncio.to_thread(load)
        return self.page(
            ctx,
            "history.html",
            q=q,
            rows=rows,
            total=total,
            pages=views.pages(total, size),
            statuses=[s.value for s in HistoryStatus],
            urlencode=urllib.parse.urlencode,
        )

    async def history_csv(self, request: Request, ctx: Ctx) -> Response:
        q = self._history_query(request)

        def load() -> str:
            with self.reader() as s:
                rows, _ = queries.history(s, q, None)
            return views.csv_text(queries.HISTORY_COLUMNS, rows)

        text = await asyncio.to_thread(load)
        resp = Response(text, media_type="text/csv; charset=utf-8")
        resp.headers["Content-Disposition"] = 'attachment; filename="batch-history.csv"'
        return self.finish(ctx, resp)

    def _page_no(self, request: Request) -> int:
        try:
            return max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return 1

    async def failures_page(self, request: Request, ctx: Ctx) -> Response:
        page, size = self._page_no(request), self.settings.console_page_size

        def load() -> tuple[list[Any], int]:
            with self.reader() as s:
                rows, total = queries.failures(s, page, size)
                s.expunge_all()
                return rows, total

        rows, total = await asyncio.to_thread(load)
        return self.page(ctx, "failures.html", rows=rows, page=page, pages=views.pages(total, size), total=total)

    async def weighings_page(self, request: Request, ctx: Ctx) -> Response:
        page, size = self._page_no(request), self.settings.console_page_size
        attention_only = request.query_params.get("attention") == "1"

        def load() -> tuple[list[dict[str, Any]], int]:
            with self.reader() as s:
                rows, total = queries.weighings(s, page, size, attention_only=attention_only)
                s.expunge_all()
            items = []
            for w in rows:
                state, tone = views.weighing_status(
                    w.acked_at is not None, w.reported_at is not None, w.attention_reason, w.applied_kg, w.kg
                )
                items.append({"row": w, "state": state, "tone": tone, "actions": actions_for_weighing(w)})
            return items, total

        items, total = await asyncio.to_thread(load)
        return self.page(
            ctx,
            "weighings.html",
            items=items,
            total=total,
            page=page,
            pages=views.pages(total, size),
            attention_only=attention_only,
            params={"attention": "1"} if attention_only else {},
            done=DONE_TEXT.get(request.query_params.get("done", "")),
            urlencode=urllib.parse.urlencode,
        )

    async def audit_page(self, request: Request, ctx: Ctx) -> Response:
        page, size = self._page_no(request), self.settings.console_page_size
        mo = request.query_params.get("q", "").strip()[:64]

        def load() -> tuple[list[Any], int]:
            with self.reader() as s:
                rows, total = queries.audit_trail(s, mo, page, size)
                s.expunge_all()
                return rows, total

        rows, total = await asyncio.to_thread(load)
        return self.page(
            ctx,
            "audit.html",
            rows=rows,
            page=page,
            pages=views.pages(total, size),
            total=total,
            q=mo,
            dumps=_json,
            urlencode=urllib.parse.urlencode,
        )

    async def batch_page(self, request: Request, ctx: Ctx) -> Response:
        mo = request.query_params.get("mo", "").strip()[:64]

        def load() -> queries.BatchDetail:
            with self.reader() as s:
                d = queries.batch_detail(s, mo)
                s.expunge_all()
                return d

        detail = await asyncio.to_thread(load)
        row = detail.row
        report = report_body(row)
        silos = []
        if row is not None:
            targets, actuals = queries.targets_of(row), queries.actuals_of(row)
            silos = [
                {"code": c, "target": targets[c], "actual": actuals[c]}
                for c in COLUMN_SUFFIX
                if targets[c] or actuals[c]
            ]
        return self.page(
            ctx,
            "batch.html",
            status=200 if row is not None else 404,
            mo=mo,
            d=detail,
            row=row,
            silos=silos,
            actions=actions_for(detail.active) if detail.active else {},
            done=DONE_TEXT.get(request.query_params.get("done", "")),
            report=report,
            dumps=_json,
        )

    async def confirm_page(self, request: Request, ctx: Ctx) -> Response:
        action, target = request.query_params.get("action", ""), request.query_params.get("target", "")[:64]
        if action not in ACTION_LABELS or not target:
            return self.page(ctx, "message.html", 400, title="Unknown action", text="No such action.")
        back = "/weighings" if action.startswith("weighing_") else "/attention"
        return self.page(ctx, "confirm.html", action=action, target=target, label=ACTION_LABELS[action], back=back)

    async def action(self, request: Request) -> Response:
        ctx = self.context(request)
        form = await self.form(request)
        action, target = form.get("action", ""), form.get("target", "")[:64]
        # Order matters: nothing about the action is looked at before the caller is proven to be an operator
        # who sent this form from a console page (CSRF token of this very session).
        if ctx.user is None:
            self.m_actions.labels(action[:20], "unauthenticated").inc()
            return self.page(ctx, "message.html", 401, title="Not logged in", text="Log in first.")
        if not self.signer.csrf_ok(ctx.session, form.get("csrf")):
            self.m_actions.labels(action[:20], "csrf").inc()
            log.warning("action refused: bad CSRF token", extra={"login": ctx.user.name, "action": action[:20]})
            return self.page(ctx, "message.html", 403, title="Refused", text="The form expired or was forged.")
        if not ctx.operator:
            self.m_actions.labels(action[:20], "forbidden").inc()
            log.warning("action refused: viewer", extra={"login": ctx.user.name, "action": action[:20]})
            return self.page(ctx, "message.html", 403, title="Refused", text="Viewers cannot act.")
        if action not in ACTION_LABELS or not target or form.get("confirm") != "yes":
            return self.page(ctx, "message.html", 400, title="Refused", text="Unknown or unconfirmed action.")
        actor = f"operator:{ctx.user.name}"
        client = request.client.host if request.client else "?"
        try:
            if action == "arm":
                result = await self._arm(target, actor, client)
            else:
                result = await asyncio.to_thread(self._db_action, action, target, actor, client)
        except ActionRefused as exc:
            self.m_actions.labels(action, "refused").inc()
            return self.page(ctx, "message.html", 409, title="Refused", text=str(exc))
        except SQLAlchemyError as exc:
            self.m_actions.labels(action, "error").inc()
            log.error("action failed", extra={"action": action, "error": type(exc).__name__})
            return self.page(ctx, "message.html", 503, title="Database error", text="Nothing was changed.")
        self.m_actions.labels(action, "ok").inc()
        log.info("operator action", extra={"login": ctx.user.name, "action": action, "target": target})
        self._wake(result)
        if action in ("retry", "cancel"):
            where = "/batch?" + urllib.parse.urlencode({"mo": target, "done": action})
        elif action == "arm":
            return self.page(ctx, "message.html", 200, title="Arm", text=result.message)
        elif action.startswith("weighing_"):
            where = "/weighings?" + urllib.parse.urlencode({"done": action})
        else:
            where = "/attention"
        return self.finish(ctx, RedirectResponse(where, status_code=303))

    def _db_action(self, action: str, target: str, actor: str, client: str) -> ActionResult:
        run = DB_ACTIONS[action]
        with transaction(self.writer) as s:
            return run(s, target, actor=actor, via="console", client=client)

    def _wake(self, result: ActionResult) -> None:
        # After the commit; a lost wake-up only delays the work until the service's next sweep.
        if result.wake == "batch":
            batch = BatchEvent(ts=utc_now(), source=SERVICE, event="retry", mo_id=result.subject)
            self.link.publish_json(self.topics.batch_events, batch.wire())
        elif result.wake == "failure":
            failure = FailureEvent(ts=utc_now(), source=SERVICE, event="retry", event_id=result.subject)
            self.link.publish_json(self.topics.failure_events, failure.wire())
        elif result.wake == "weighing" and result.event_id is not None:
            weighing = WeighingEvent(
                ts=utc_now(),
                source=SERVICE,
                event="retry",
                weighing_id=int(result.subject),
                event_id=result.event_id,
            )
            self.link.publish_json(self.topics.weighing_events, weighing.wire())

    async def _arm(self, target: str, actor: str, client: str) -> ActionResult:
        if not target.isdigit() or not 1 <= int(target) <= 99:
            raise ActionRefused(f"slot {target!r} is not 1..99")
        slot = int(target)
        arm = Arm(request_id=self.commands.new_request_id(), slot=slot)
        answered: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        try:
            if not self.commands.send(arm, lambda _arm, reply: _resolve(answered, reply)):
                raise ActionRefused("the console is not connected to the broker: nothing sent")
            settled = await asyncio.wait_for(answered, ARM_TIMEOUT_S)
            ok, code, message = settled.ok, settled.code, settled.message
        except TimeoutError:
            ok, code, message = False, "no_reply", f"no reply from plc_gateway within {ARM_TIMEOUT_S:g} s"
        finally:
            self.commands.forget(arm.request_id)

        def record() -> None:
            with transaction(self.writer) as s:
                audit(
                    s,
                    actor=actor,
                    action="arm",
                    via="console",
                    client=client,
                    slot=slot,
                    ok=ok,
                    code=code,
                )

        await asyncio.to_thread(record)
        verdict = "ok" if ok else ("PLC UNREACHABLE" if code in UNREACHABLE_CODES else "REFUSED")
        return ActionResult(f"slot {slot}", f"slot {slot}: {verdict} {code}: {message}")

    async def healthz(self, request: Request) -> Response:
        mqtt_ok = self.link.connected.is_set()
        body = {"healthy": mqtt_ok and self.db_error is None, "mqtt_connected": mqtt_ok, "db_error": self.db_error}
        return JSONResponse(body, status_code=200 if body["healthy"] else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def app(self) -> Starlette:
        g = self.guard
        routes = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", g(self.overview_page)),
            Route("/events", self.events),
            Route("/attention", g(self.attention_page)),
            Route("/queue", g(self.queue_page)),
            Route("/history", g(self.history_page)),
            Route("/history.csv", g(self.history_csv)),
            Route("/failures", g(self.failures_page)),
            Route("/weighings", g(self.weighings_page)),
            Route("/audit", g(self.audit_page)),
            Route("/batch", g(self.batch_page)),
            Route("/confirm", g(self.confirm_page)),
            Route("/action", self.action, methods=["POST"]),
            Route("/healthz", self.healthz),
            Route("/metrics", self.metrics),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()


def report_body(row: MoBatch | MoHistory | None) -> dict[str, object] | None:
    """The update-with-consumptions body odoo_sync sends (or sent) for a batch the PLC finished: the same
    function on the same stored row, so the page shows exactly what Odoo gets. None before the finish and for
    a failed batch (Odoo gets a cancel then)."""
    if row is None or row.finished_at is None or row.status_operation:
        return None
    try:
        return consumption_payload(
            row.mo_id, float(row.actual_weight_quantity_finished_goods or 0), actuals_of(row)
        )
    except ValueError as exc:
        return {"error": str(exc)}


def _resolve(fut: asyncio.Future[CommandReply], reply: CommandReply) -> None:
    if not fut.done():
        fut.set_result(reply)


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


def _safe_next(value: str | None) -> str:
    """Only a local path: a login link must not bounce the user to another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str, ensure_ascii=False)
