"""Odoo 14 session store and login rate limit (docs/odoo-api.md O1.3, O8 B)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

COOLDOWN_MESSAGE = "Too many login failures, please wait a bit before trying again."
SEVEN_DAYS = 7 * 24 * 3600.0


@dataclass
class User:
    login: str
    password: str
    uid: int
    name: str
    is_admin: bool = True


@dataclass
class Session:
    sid: str
    uid: int | None = None
    login: str | None = None
    db: str | None = None
    saved_at: float = field(default_factory=time.time)  # the session file's mtime


def new_sid() -> str:
    return secrets.token_hex(20)  # Odoo sids are 40 hex chars


@dataclass
class SessionStore:
    ttl: float = SEVEN_DAYS  # GC deletes files older than this, counted from the last save
    sessions: dict[str, Session] = field(default_factory=dict)

    def get(self, sid: str | None) -> Session:
        """The stored session, or an anonymous one (an unknown sid keeps its value, like werkzeug's store)."""
        if sid:
            sess = self.sessions.get(sid)
            if sess is not None:
                if time.time() - sess.saved_at > self.ttl:
                    del self.sessions[sid]  # garbage-collected while "in use": a pure API client never saves
                else:
                    return sess
            return Session(sid)
        return Session(new_sid())

    def rotate(self, old: Session, uid: int | None, login: str | None, db: str | None) -> Session:
        """authenticate()/logout(): the old sid is deleted and a new one issued (O1.3 rotation)."""
        self.sessions.pop(old.sid, None)
        new = Session(new_sid(), uid, login, db)
        if uid is not None:
            self.sessions[new.sid] = new
        return new

    def expire_all(self) -> int:
        count = len(self.sessions)
        self.sessions.clear()
        return count

    def age(self, seconds: float) -> None:
        for sess in self.sessions.values():
            sess.saved_at -= seconds


@dataclass
class LoginLimiter:
    """``res.users._assert_can_auth``: per source IP, in memory; refusals during the cooldown do not count."""

    after: int = 5
    seconds: float = 60.0
    enabled: bool = True
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def on_cooldown(self, ip: str) -> bool:
        count, last = self.failures.get(ip, (0, 0.0))
        return self.enabled and count >= self.after and time.monotonic() - last < self.seconds

    def failed(self, ip: str) -> None:
        count, _ = self.failures.get(ip, (0, 0.0))
        self.failures[ip] = (count + 1, time.monotonic())

    def succeeded(self, ip: str) -> None:
        self.failures.pop(ip, None)
