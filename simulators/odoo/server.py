"""HTTP front of the Odoo simulator: Odoo 14 JSON-RPC transport, sessions, routes, faults, control API.

Transport behaviour (docs/odoo-api.md O1.1/O1.2, O8 A), in Odoo's order: the content type decides JSON vs
HTTP request; a JSON request with a bad body is a 400 HTML page before routing; an unknown path is a JSON 404
(HTML for non-JSON); a wrong method is a 405 HTML page; ``auth='user'`` without a session is HTTP 200 +
JSON-RPC error code 100 (a 302 to /web/login for a non-JSON request).

Control API (plain JSON, no auth, never part of Odoo): see ``CONTROL_HELP``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from simulators.odoo import handlers as h
from simulators.odoo.domain import (
    DEFAULT_SEED,
    Domain,
    add_generated_mos,
    default_equipment,
    edit_mo,
    load_seed,
    set_state,
)
from simulators.odoo.sessions import COOLDOWN_MESSAGE, SEVEN_DAYS, LoginLimiter, Session, SessionStore, User

log = logging.getLogger(__name__)

CONTROL_HELP = {
    "GET /_sim/state": "every MO (state, qty_producing, consumption per equipment as received), failures, counters",
    "POST /_sim/faults": "install faults: {'faults': [fault, ...]} or one fault object (see Fault)",
    "DELETE /_sim/faults": "remove all faults",
    "POST /_sim/expire-sessions": "invalidate every session now (password change)",
    "POST /_sim/age-sessions": "{'seconds': s}: make sessions older (TTL/GC tests)",
    "POST /_sim/mo-state": "{'mo_id': name, 'state': 'done'|'cancel'|...}: an operator acts in Odoo's UI",
    "POST /_sim/mo-edit": "{'mo_id', 'quantity'?, 'line_qty'?: {code: kg}, 'line_equipment'?: {code: code}}: "
    "a planner edits the MO in Odoo (quantity scales the moves, not the BoM lines)",
    "POST /_sim/move-error": "{'mo_id', 'equipment_code', 'message'?, 'move_lines'?}: UserError on that move",
    "POST /_sim/mos": "{'count': n}: add n generated confirmed MOs",
    "POST /_sim/equipment-remove": "{'equipment_code': code}: delete a scada.equipment record",
    "POST /_sim/config": "{'cooldown_after','cooldown_seconds','cooldown_enabled','session_ttl','password',"
    "'commit_invalid_duration','list_caps','consumption'}",
}

FAULT_KINDS = (
    "latency",  # seconds: sleep before handling (the request is still processed)
    "http_error",  # status (502/504/500): proxy HTML page; when: before|after (after = processed, reply lost)
    "drop",  # close the connection without a reply; when: before|after
    "html",  # HTTP 200 text/html (a proxy or login page where JSON is expected)
    "bad_json",  # HTTP 200 application/json with a truncated body
    "not_found",  # JSON 404 for the route ("module not installed")
    "expire_session",  # every session is invalidated just before this request
    "state_change",  # mo_id + state: an operator changes the MO just before this request
)


@dataclass
class Fault:
    kind: str
    route: str | None = None  # exact path, "prefix*", or None for every Odoo route
    method: str | None = None
    times: int | None = 1  # None = until cleared
    when: str = "before"
    seconds: float = 0.0
    status: int = 502
    mo_id: str | None = None
    state: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.route is None:
            return True
        if self.route.endswith("*"):
            return path.startswith(self.route[:-1])
        return path == self.route

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fault:
        if doc.get("kind") not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {doc.get('kind')!r}; known: {', '.join(FAULT_KINDS)}")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(doc) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**doc)
        if fault.when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        if fault.kind == "state_change" and not (fault.mo_id and fault.state):
            raise ValueError("state_change needs mo_id and state")
        return fault


class RpcException(Exception):
    """An exception that escapes a handler: serialized as a JSON-RPC error (O1.2)."""

    def __init__(self, name: str, message: str, code: int = 200, rpc_message: str = "Odoo Server Error") -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.code = code
        self.rpc_message = rpc_message


SESSION_EXPIRED = RpcException("odoo.http.SessionExpiredException", "Session expired", 100, "Odoo Session Expired")


@dataclass
class Ctx:
    sim: Simulator
    session: Session
    body: dict[str, Any]
    kwargs: dict[str, Any]  # params minus context, Odoo's handler kwargs
    payload: dict[str, Any]  # per the route's body mode
    args: dict[str, str]  # query string
    path_args: dict[str, str]
    ip: str
    explicit_session: bool
    new_session: Session | None = None  # set by login/logout: rotation


Handler = Callable[[Ctx], dict[str, Any] | None]


@dataclass
class Route:
    pattern: re.Pattern[str]
    methods: tuple[str, ...]
    auth: str  # user|public|none
    mode: str  # env = envelope only, any = envelope or plain
    handler: Handler
    may_escape: bool = False  # no try/except in the handler: roll back on an escaped exception


def _route(path: str, methods: tuple[str, ...], auth: str, mode: str, handler: Handler, **kw: Any) -> Route:
    def conv(m: re.Match[str]) -> str:
        return f"(?P<{m.group(2)}>\\d+)" if m.group(1) else f"(?P<{m.group(2)}>[^/]+)"

    regex = re.sub(r"<(int:)?(\w+)>", conv, path)
    return Route(re.compile(f"^{regex}$"), methods, auth, mode, handler, **kw)


# ---------------------------------------------------------------------- auth routes (O2)


def _session_info(sim: Simulator, user: User, db: str) -> dict[str, Any]:
    return {
        "uid": user.uid,
        "is_system": user.is_admin,
        "is_admin": user.is_admin,
        "user_context": {"lang": "en_US", "tz": "Asia/Jakarta", "uid": user.uid},
        "db": db,
        "server_version": "14.0",
        "server_version_info": [14, 0, 0, "final", 0, ""],
        "name": user.name,
        "username": user.login,
        "partner_display_name": user.name,
        "company_id": 1,
        "partner_id": user.uid + 1,
        "web.base.url": sim.base_url,
        "active_ids_limit": 20000,
        "max_file_upload_size": 134217728,
    }


def _check_login(ctx: Ctx, login: str, password: str) -> User:
    """``_assert_can_auth`` + password check; raises AccessDenied texts as ValueError."""
    sim = ctx.sim
    if sim.limiter.on_cooldown(ctx.ip):
        raise PermissionError(COOLDOWN_MESSAGE)
    user = sim.users.get(login)
    if user is None or user.password != password:
        sim.limiter.failed(ctx.ip)
        raise PermissionError("Access Denied")
    sim.limiter.succeeded(ctx.ip)
    return user


def scada_authenticate(ctx: Ctx) -> dict[str, Any]:
    p = ctx.payload
    login, password = p.get("login"), p.get("password")
    if not login or not password:
        return h.err("login and password are required")
    db = p.get("db") or ctx.session.db or ctx.sim.db
    if db != ctx.sim.db:
        return h.err(f'FATAL:  database "{db}" does not exist\n')
    try:
        user = _check_login(ctx, str(login), str(password))
    except PermissionError as exc:
        return h.err(str(exc))
    stale = ctx.session.sid  # read before rotation: the body carries a sid that is deleted next (O1.3 trap)
    ctx.new_session = ctx.sim.sessions.rotate(ctx.session, user.uid, user.login, db)
    return {"status": "success", "uid": user.uid, "session_id": stale, "db": db, "login": user.login}


def web_authenticate(ctx: Ctx) -> dict[str, Any]:
    kw = ctx.kwargs
    missing = [k for k in ("db", "login", "password") if k not in kw]
    if missing:
        raise RpcException(
            "builtins.TypeError",
            f"authenticate() missing {len(missing)} required positional argument(s): "
            + ", ".join(f"'{m}'" for m in missing),
        )
    if kw["db"] != ctx.sim.db:
        raise RpcException("psycopg2.OperationalError", f'FATAL:  database "{kw["db"]}" does not exist\n')
    try:
        user = _check_login(ctx, str(kw["login"]), str(kw["password"]))
    except PermissionError as exc:
        raise RpcException("odoo.exceptions.AccessDenied", str(exc)) from None
    ctx.new_session = ctx.sim.sessions.rotate(ctx.session, user.uid, user.login, kw["db"])
    return _session_info(ctx.sim, user, kw["db"])


def web_check(ctx: Ctx) -> None:
    return None  # valid session: no result key at all (O2.3)


def web_destroy(ctx: Ctx) -> None:
    ctx.new_session = ctx.sim.sessions.rotate(ctx.session, None, None, None)


def web_session_info(ctx: Ctx) -> dict[str, Any]:
    user = ctx.sim.user_by_uid(ctx.session.uid)
    if user is None:
        raise SESSION_EXPIRED
    return _session_info(ctx.sim, user, ctx.session.db or ctx.sim.db)


# ---------------------------------------------------------------------- SCADA routes (O4)


def _user_name(ctx: Ctx) -> str:
    user = ctx.sim.user_by_uid(ctx.session.uid)
    return user.name if user else "Public user"


def build_routes() -> list[Route]:
    def d(ctx: Ctx) -> Domain:
        return ctx.sim.domain

    return [
        _route("/api/scada/authenticate", ("POST",), "public", "any", scada_authenticate),
        _route("/web/session/authenticate", ("POST",), "none", "kw", web_authenticate),
        _route("/web/session/check", ("POST",), "user", "kw", web_check),
        _route("/web/session/destroy", ("POST",), "user", "kw", web_destroy),
        _route("/web/session/get_session_info", ("POST",), "none", "kw", web_session_info),
        _route("/api/scada/health", ("GET",), "public", "kw", lambda c: h.health()),
        _route(
            "/api/scada/version",
            ("GET",),
            "public",
            "kw",
            lambda c: h.version(bool((u := c.sim.user_by_uid(c.session.uid)) and u.is_admin)),
        ),
        _route(
            "/api/scada/mo-list-confirmed",
            ("POST",),
            "user",
            "env",
            lambda c: h.mo_list_confirmed(d(c), c.payload),
        ),
        _route(
            "/api/scada/mo-list-detailed", ("POST",), "user", "env", lambda c: h.mo_list_detailed(d(c), c.payload)
        ),
        _route("/api/scada/mo-detail", ("POST",), "user", "env", lambda c: h.mo_detail(d(c), c.payload)),
        _route(
            "/api/scada/mo/update-with-consumptions",
            ("POST",),
            "user",
            "any",
            lambda c: h.update_with_consumptions(d(c), c.payload),
        ),
        _route("/api/scada/mo/mark-done", ("POST",), "user", "any", lambda c: h.mark_done(d(c), c.payload)),
        _route(
            "/api/scada/mo/<int:id>/mark-done",
            ("POST",),
            "user",
            "any",
            lambda c: h.mark_done(d(c), c.payload, int(c.path_args["id"])),
        ),
        _route(
            "/api/scada/mo/<int:id>/acknowledge",
            ("POST",),
            "user",
            "any",
            lambda c: h.acknowledge(d(c), int(c.path_args["id"])),
        ),
        _route("/api/scada/mo/cancel", ("POST",), "user", "any", lambda c: h.cancel(d(c), c.payload)),
        _route(
            "/api/scada/material-consumption",
            ("POST",),
            "user",
            "any",
            lambda c: h.material_consumption(d(c), c.payload),
        ),
        _route(
            "/api/scada/material-consumption/validate",
            ("POST",),
            "user",
            "any",
            lambda c: h.material_consumption(d(c), c.payload, validate_only=True),
        ),
        _route(
            "/api/scada/equipment/<code>",
            ("GET",),
            "user",
            "kw",
            lambda c: h.equipment_get(d(c), c.path_args["code"]),
        ),
        _route(
            "/api/scada/equipment-failure",
            ("POST",),
            "user",
            "any",
            lambda c: h.equipment_failure_post(
                d(c), c.payload, user=_user_name(c), commit_invalid_duration=c.sim.commit_invalid_duration
            ),
        ),
        _route(
            "/api/scada/equipment-failure", ("GET",), "user", "kw", lambda c: h.equipment_failure_get(d(c), c.args)
        ),
        _route(
            "/api/scada/equipment-failure-report",
            ("POST",),
            "user",
            "any",
            lambda c: h.equipment_failure_report(d(c), c.payload),
        ),
        _route(
            "/api/scada/failure-report",
            ("POST",),
            "user",
            "any",
            lambda c: h.failure_report_ext(d(c), c.payload),
            may_escape=True,
        ),
    ]


# ---------------------------------------------------------------------- the simulator


@dataclass
class Simulator:
    db: str = "plant"
    users: dict[str, User] = field(default_factory=dict)
    domain: Domain = field(default_factory=Domain)
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    faults: list[Fault] = field(default_factory=list)
    routes: list[Route] = field(default_factory=build_routes)
    commit_invalid_duration: bool = True
    multi_db: bool = False
    consumption: str = "warning"
    base_url: str = ""
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def user_by_uid(self, uid: int | None) -> User | None:
        if uid is None:
            return None
        return next((u for u in self.users.values() if u.uid == uid), None)

    def take_faults(self, method: str, path: str) -> list[Fault]:
        """Matching faults, consuming one use of each."""
        taken = []
        with self.lock:
            for fault in list(self.faults):
                if fault.matches(method, path):
                    taken.append(fault)
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
        return taken

    def match(self, path: str) -> tuple[list[tuple[Route, dict[str, str]]], bool]:
        found = []
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                found.append((route, m.groupdict()))
        return found, bool(found)

    # ----- control API

    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            if method == "GET" and path == "/_sim/state":
                snap = self.domain.snapshot()
                snap.update(
                    sessions=len(self.sessions.sessions),
                    requests=dict(self.requests),
                    faults=[f.__dict__ for f in self.faults],
                    login_failures={ip: n for ip, (n, _) in self.limiter.failures.items()},
                )
                return 200, snap
            if method == "GET" and path == "/_sim":
                return 200, CONTROL_HELP
            if path == "/_sim/faults" and method == "DELETE":
                n = len(self.faults)
                self.faults.clear()
                return 200, {"cleared": n}
            if method != "POST":
                return 404, {"error": f"unknown control route {method} {path}", "help": CONTROL_HELP}
            body = body if isinstance(body, dict) else {}
            if path == "/_sim/faults":
                docs = body.get("faults", [body])
                new = [Fault.from_json(doc) for doc in docs]
                self.faults.extend(new)
                return 200, {"installed": len(new), "faults": [f.__dict__ for f in self.faults]}
            if path == "/_sim/expire-sessions":
                return 200, {"expired": self.sessions.expire_all()}
            if path == "/_sim/age-sessions":
                self.sessions.age(float(body["seconds"]))
                return 200, {"aged": len(self.sessions.sessions)}
            if path == "/_sim/mo-state":
                mo = self.domain.mo_by_name(body["mo_id"])
                if mo is None:
                    return 404, {"error": f"no MO {body['mo_id']!r}"}
                set_state(mo, str(body["state"]))
                return 200, {"mo_id": mo.name, "state": mo.state}
            if path == "/_sim/mo-edit":
                mo = self.domain.mo_by_name(body["mo_id"])
                if mo is None:
                    return 404, {"error": f"no MO {body['mo_id']!r}"}
                try:
                    edit_mo(
                        mo,
                        quantity=float(body["quantity"]) if "quantity" in body else None,
                        line_qty={str(k): float(v) for k, v in (body.get("line_qty") or {}).items()},
                        line_equipment={str(k): str(v) for k, v in (body.get("line_equipment") or {}).items()},
                    )
                except ValueError as exc:
                    return 400, {"error": str(exc)}
                return 200, {"mo_id": mo.name, "quantity": mo.product_qty}
            if path == "/_sim/move-error":
                mo = self.domain.mo_by_name(body["mo_id"])
                if mo is None:
                    return 404, {"error": f"no MO {body['mo_id']!r}"}
                moves = [m for m in mo.raw_moves if m.equipment == body["equipment_code"]]
                if not moves:
                    return 404, {"error": f"no move on {body['equipment_code']!r} in {mo.name}"}
                for m in moves:
                    if "move_lines" in body:
                        m.move_line_count = int(body["move_lines"])
                    else:
                        m.inject_error = str(body.get("message") or h.MULTI_LINE_ERROR)
                return 200, {"moves": [m.id for m in moves]}
            if path == "/_sim/equipment-remove":
                # An integrator renamed or deleted a scada.equipment record: reports naming it are refused.
                removed = self.domain.equipment.pop(str(body["equipment_code"]), None)
                return (200, {"removed": removed.code}) if removed else (404, {"error": "no such equipment"})
            if path == "/_sim/mos":
                created = add_generated_mos(
                    self.domain,
                    int(body.get("count", 1)),
                    rng_seed=int(body.get("rng_seed", 0)),
                    consumption=self.consumption,
                )
                return 200, {"created": [m.name for m in created]}
            if path == "/_sim/config":
                return 200, self.configure(body)
            return 404, {"error": f"unknown control route {method} {path}", "help": CONTROL_HELP}

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        for key, value in body.items():
            if key == "cooldown_after":
                self.limiter.after = int(value)
            elif key == "cooldown_seconds":
                self.limiter.seconds = float(value)
            elif key == "cooldown_enabled":
                self.limiter.enabled = bool(value)
            elif key == "reset_cooldown":
                self.limiter.failures.clear()
            elif key == "session_ttl":
                self.sessions.ttl = float(value)
            elif key == "password":
                for user in self.users.values():
                    user.password = str(value)
                self.sessions.expire_all()  # a password change invalidates the session token
            elif key == "commit_invalid_duration":
                self.commit_invalid_duration = bool(value)
            elif key == "list_caps":
                self.domain.list_caps = bool(value)
            elif key == "consumption":
                for mo in self.domain.mos.values():
                    mo.consumption = str(value)
                self.consumption = str(value)
            else:
                raise ValueError(f"unknown config key {key!r}")
        return {"ok": True}

    # ----- one Odoo request

    def dispatch(self, req: Request) -> Reply:
        """Odoo's request pipeline, O1.1 order."""
        self.requests[f"{req.method} {req.path}"] += 1
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = ctype in ("application/json", "application/json-rpc")
        body: Any = None
        if is_json:
            try:
                body = json.loads(req.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return html_reply(400, "Bad Request", f"<p>Invalid JSON data: {req.body[:200]!r}</p>")
            if not isinstance(body, dict):
                return html_reply(500, "Internal Server Error", "<p>The server encountered an internal error.</p>")
        matches, _ = self.match(req.path)
        route_args = next(((r, a) for r, a in matches if req.method in r.methods), None)
        if not matches:
            if is_json:
                return json_error(
                    404, body.get("id"), 404, "404: Not Found", "werkzeug.exceptions.NotFound", NOT_FOUND_TEXT
                )
            return html_reply(404, "Not Found", f"<p>{NOT_FOUND_TEXT}</p>")
        if route_args is None:
            allowed = sorted({m for r, _ in matches for m in r.methods})
            return html_reply(
                405,
                "Method Not Allowed",
                "<p>The method is not allowed for the requested URL.</p>",
                {"Allow": ", ".join(allowed)},
            )
        route, path_args = route_args
        sid, explicit = req.session_id()
        with self.lock:
            session = self.sessions.get(sid)
        if not is_json:
            if route.auth == "user" and session.uid is None:
                target = ("/web/proxy/post" if req.method == "POST" else "") + req.path
                return Reply(302, "text/html", b"", {"Location": "/web/login?redirect=" + quote(target, safe="")})
            return html_reply(
                400,
                "Bad Request",
                "<p>Function declared as capable of handling request of type 'json' but called with a request of "
                "type 'http'</p>",
            )
        rpc_id = body.get("id")
        if self.multi_db and req.path.startswith("/api/scada/") and session.db is None:
            return json_error(404, rpc_id, 404, "404: Not Found", "werkzeug.exceptions.NotFound", NOT_FOUND_TEXT)
        raw_params = body.get("params", {})
        kwargs = dict(raw_params) if isinstance(raw_params, dict) else {}
        kwargs.pop("context", None)
        if route.mode == "env":
            payload = raw_params if isinstance(raw_params, dict) else {}
        elif route.mode == "any":
            # _get_json_payload: a dict "params" wins, else the whole body; context stays in (O1.1 trap)
            payload = body["params"] if isinstance(body.get("params"), dict) else body
        else:
            payload = kwargs
        ctx = Ctx(self, session, body, kwargs, payload, dict(parse_qsl(req.query)), path_args, req.ip, explicit)
        with self.lock:
            if route.auth == "user" and (session.uid is None or session.sid not in self.sessions.sessions):
                reply = rpc_error_reply(rpc_id, SESSION_EXPIRED)
            else:
                backup = copy.deepcopy(self.domain) if route.may_escape else None
                try:
                    result = route.handler(ctx)
                    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id}
                    if result is not None:
                        doc["result"] = result
                    reply = Reply(200, "application/json", json.dumps(doc).encode())
                except RpcException as exc:
                    reply = rpc_error_reply(rpc_id, exc)
                except Exception as exc:  # an escaped exception: the transaction is rolled back
                    if backup is not None:
                        self.domain = backup
                    reply = rpc_error_reply(
                        rpc_id,
                        RpcException(f"builtins.{type(exc).__name__}", str(exc)),
                        debug=traceback.format_exc(),
                    )
        final = ctx.new_session or session
        if not explicit:  # explicit (header/query) sessions never get a cookie back (O1.3)
            reply.headers["Set-Cookie"] = f"session_id={final.sid}; Max-Age=7776000; HttpOnly; Path=/"
        return reply


NOT_FOUND_TEXT = (
    "The requested URL was not found on the server. If you entered the URL manually please check your spelling "
    "and try again."
)


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    ip: str

    def session_id(self) -> tuple[str | None, bool]:
        """Header or query sid = "explicit session" (O1.3); else the cookie."""
        header = self.headers.get("x-openerp-session-id")
        if header:
            return header, True
        query = dict(parse_qsl(self.query)).get("session_id")
        if query:
            return query, True
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("cookie", ""))
        except Exception:
            return None, False
        morsel = cookie.get("session_id")
        return (morsel.value if morsel else None), False


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def html_reply(status: int, title: str, text: str, headers: dict[str, str] | None = None) -> Reply:
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
        f"<title>{status} {title}</title>\n<h1>{title}</h1>\n{text}\n"
    )
    return Reply(status, "text/html; charset=utf-8", page.encode(), dict(headers or {}))


def json_error(http: int, rpc_id: Any, code: int, message: str, name: str, text: str, debug: str = "") -> Reply:
    doc = {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "error": {
            "code": code,
            "message": message,
            "data": {
                "name": name,
                "debug": debug or f"Traceback (most recent call last):\n{name}: {text}\n",
                "message": text,
                "arguments": [text],
                "context": {},
            },
        },
    }
    return Reply(http, "application/json", json.dumps(doc).encode())


def rpc_error_reply(rpc_id: Any, exc: RpcException, debug: str = "") -> Reply:
    return json_error(200, rpc_id, exc.code, exc.rpc_message, exc.name, exc.message, debug)


PROXY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>"
    "\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}


# ---------------------------------------------------------------------- HTTP plumbing


class _Drop(Exception):
    """Close the connection without any reply."""


def make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class OdooHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed ACK of the
        # headers (40 ms on Linux) on a kept-alive connection: a simulator artefact that was most of the
        # finish -> Odoo p99 in BENCHMARKS.md (issue 16). Werkzeug and the other servers here set TCP_NODELAY.
        disable_nagle_algorithm = True
        server_version = "Werkzeug/0.16.1"
        sys_version = "Python/3.7.3"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("odoo-sim %s " + format, self.address_string(), *args)

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            body = self._read_body()
            if parts.path.startswith("/_sim"):
                try:
                    doc = json.loads(body) if body else {}
                    status, out = sim.control(self.command, parts.path, doc)
                except (ValueError, KeyError, TypeError) as exc:
                    status, out = 400, {"error": f"{type(exc).__name__}: {exc}"}
                self._send(Reply(status, "application/json", json.dumps(out).encode()))
                return
            req = Request(
                self.command,
                parts.path,
                parts.query,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                self.client_address[0],
            )
            try:
                reply = self._with_faults(req)
            except _Drop:
                self.close_connection = True
                return
            self._send(reply)

        def _with_faults(self, req: Request) -> Reply:
            faults = sim.take_faults(req.method, req.path)
            after: list[Fault] = []
            for fault in faults:
                if fault.when == "after" and fault.kind in ("http_error", "drop"):
                    after.append(fault)
                    continue
                if fault.kind == "latency":
                    time.sleep(fault.seconds)
                elif fault.kind == "expire_session":
                    with sim.lock:
                        sim.sessions.expire_all()
                elif fault.kind == "state_change":
                    with sim.lock:
                        mo = sim.domain.mo_by_name(fault.mo_id)
                        if mo is not None and fault.state:
                            set_state(mo, fault.state)
                elif fault.kind == "drop":
                    raise _Drop
                elif fault.kind == "http_error":
                    return _proxy_error(fault.status)
                elif fault.kind == "html":
                    return Reply(
                        200, "text/html; charset=utf-8", b"<!DOCTYPE html><html><body>Odoo login</body></html>"
                    )
                elif fault.kind == "bad_json":
                    return Reply(
                        200, "application/json", b'{"jsonrpc": "2.0", "id": 1, "result": {"status": "succ'
                    )
                elif fault.kind == "not_found":
                    return json_error(
                        404, None, 404, "404: Not Found", "werkzeug.exceptions.NotFound", NOT_FOUND_TEXT
                    )
            reply = sim.dispatch(req)
            for fault in after:  # the request was processed: only the reply is lost
                if fault.kind == "drop":
                    raise _Drop
                return _proxy_error(fault.status)
            return reply

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return OdooHandler


def _proxy_error(status: int) -> Reply:
    reason = REASONS.get(status, "Error")
    return Reply(status, "text/html", PROXY_PAGE.format(status=status, reason=reason).encode())


@dataclass
class SimServer:
    """A running simulator: ``url``, ``sim`` (in-process access), ``stop()``; usable as a context manager."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    sim: Simulator

    @property
    def host(self) -> str:
        host = self.server.server_address[0]
        return host.decode() if isinstance(host, bytes) else str(host)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_simulator(
    *,
    seed: Path | None = DEFAULT_SEED,
    extra_mos: int = 0,
    started_mos: int = 0,
    db: str = "plant",
    login: str = "admin",
    password: str = "admin",
    cooldown_after: int = 5,
    cooldown_seconds: float = 60.0,
    session_ttl: float = SEVEN_DAYS,
    consumption: str = "warning",
    list_caps: bool = True,
    commit_invalid_duration: bool = True,
    multi_db: bool = False,
    rng_seed: int = 0,
) -> Simulator:
    domain = Domain(list_caps=list_caps)
    if seed is not None:
        load_seed(domain, seed, consumption)
    default_equipment(domain)
    if extra_mos:
        add_generated_mos(domain, extra_mos, rng_seed=rng_seed, consumption=consumption)
    # MOs a person already started in Odoo (state progress): the planner takes confirmed MOs only, so these are
    # never dosed, yet they take manual weighings (a soak books its hand weighings on them, MARK_DONE or not).
    for mo in add_generated_mos(domain, started_mos, rng_seed=rng_seed + 1, consumption=consumption):
        set_state(mo, "progress")
    return Simulator(
        db=db,
        users={login: User(login, password, 2, "Mitchell Admin" if login == "admin" else login, is_admin=True)},
        domain=domain,
        sessions=SessionStore(ttl=session_ttl),
        limiter=LoginLimiter(after=cooldown_after, seconds=cooldown_seconds, enabled=cooldown_after > 0),
        commit_invalid_duration=commit_invalid_duration,
        multi_db=multi_db,
        consumption=consumption,
    )


def start_server(host: str = "127.0.0.1", port: int = 0, **options: Any) -> SimServer:
    """Start the simulator in a daemon thread (``port=0``: a free port). ``options`` go to ``build_simulator``."""
    sim = build_simulator(**options)
    server = ThreadingHTTPServer((host, port), make_handler(sim))
    server.daemon_threads = True
    handle_host = server.server_address[0]
    handle_host = handle_host.decode() if isinstance(handle_host, bytes) else handle_host
    sim.base_url = f"http://{handle_host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="odoo-sim", daemon=True)
    thread.start()
    return SimServer(server, thread, sim)
