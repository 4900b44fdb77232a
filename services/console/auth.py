"""The console's security core, pure (no I/O except `load_users` reading one file): password hashes, signed
session cookies, CSRF tokens and the login rate limit. Standard library only, so every rule is unit-tested
without a server.

- Passwords: hashlib.scrypt (n=2**14, r=8, p=1: ~16 MB and ~50 ms per check, a leaked users file is costly to
  attack), stored as `scrypt$n$r$p$<salt b64>$<key b64>`; compared in constant time.
- Sessions: `<payload b64>.<HMAC-SHA256 b64>`; the payload is the session id, the login and the expiry. The
  role is NOT in the cookie: it is looked up in the users file on every request, so removing a user or
  demoting an operator takes effect at once, and a forged role cannot be signed without the key.
- CSRF: the token is HMAC(key, "csrf|" + session id): tied to one session (anonymous sessions have an id too,
  so the login form is protected), rotated with the session id at login, never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class AuthConfigError(ValueError):
    """The users file or the key is unusable; the message names the line, never a hash or a password."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- passwords


def hash_password(password: str, *, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        kind, n, r, p, salt, key = encoded.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(key))


# A hash no password matches, checked when the login is unknown: the answer takes as long as for a known
# login, so response times do not tell which logins exist.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str = field(repr=False)


def parse_users(text: str) -> dict[str, User]:
    """`name:role:hash` per line; blank lines and `#` comments ignored."""
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise AuthConfigError(f"users file line {number}: expected name:role:hash")
        name, role, encoded = parts
        if not name or not set(name) <= _NAME_OK or len(name) > 40:
            raise AuthConfigError(f"users file line {number}: login names use letters, digits, '_', '.', '-'")
        if role not in ROLES:
            raise AuthConfigError(f"users file line {number}: role must be one of {', '.join(ROLES)}")
        if not encoded.startswith("scrypt$") or encoded.count("$") != 5:
            raise AuthConfigError(f"users file line {number}: not a hash made by console-users")
        if name in users:
            raise AuthConfigError(f"users file line {number}: {name} appears twice")
        users[name] = User(name, role, encoded)
    if not users:
        raise AuthConfigError("the users file names no user")
    return users


def load_users(path: Path) -> dict[str, User]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthConfigError(f"cannot read the users file {str(path)!r}: {exc.strerror}") from None
    return parse_users(text)


def authenticate(users: Mapping[str, User], name: str, password: str) -> User | None:
    user = users.get(name)
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    return user if (ok and user is not None) else None


# ---------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Session:
    sid: str
    user: str | None  # None: anonymous (has a CSRF token for the login form, nothing else)
    expires: int  # unix time


class Signer:
    """Signs and checks session cookies and derives CSRF tokens from one secret key."""

    def __init__(self, key: str, *, lifetime_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise AuthConfigError("the session key must be at least 32 characters (CONSOLE_SECRET_KEY_FILE)")
        # Separate keys per purpose: a CSRF token can never be replayed as a cookie signature or vice versa.
        self._cookie_key = hmac.new(key.encode(), b"console-session-v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(key.encode(), b"console-csrf-v1", hashlib.sha256).digest()
        self._revoke_key = hmac.new(key.encode(), b"console-revoke-v1", hashlib.sha256).digest()
        self.lifetime_s = lifetime_s
        self.clock = clock

    def new(self, user: str | None) -> Session:
        return Session(secrets.token_urlsafe(18), user, int(self.clock()) + self.lifetime_s)

    def dumps(self, session: Session) -> str:
        payload = _b64(json.dumps({"s": session.sid, "u": session.user, "e": session.expires}).encode())
        mac = hmac.new(self._cookie_key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(mac)}"

    def loads(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, tampered with, malformed or expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return None
        payload, mac = cookie.split(".")
        expected = hmac.new(self._cookie_key, payload.encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(mac), expected):
                return None
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        sid, user, expires = data.get("s"), data.get("u"), data.get("e")
        if not isinstance(sid, str) or not (user is None or isinstance(user, str)) or not isinstance(expires, int):
            return None
        if expires <= self.clock():
            return None
        return Session(sid, user, expires)

    def needs_renewal(self, session: Session) -> bool:
        """Past half its lifetime: an open page renews it (sliding expiry), so a wall screen stays logged in
        while a session nobody uses still ends after `lifetime_s`."""
        return session.user is not None and session.expires - self.clock() < self.lifetime_s / 2

    def renewed(self, session: Session) -> Session:
        """The same session (same id, so the same CSRF token) with a fresh expiry."""
        return Session(session.sid, session.user, int(self.clock()) + self.lifetime_s)

    def revocation_tag(self, session: Session) -> str:
        """What a logout stores to revoke a session: keyed, so a stored tag is worth nothing as a cookie and
        cannot even be matched to one without the key."""
        return hmac.new(self._revoke_key, session.sid.encode(), hashlib.sha256).hexdigest()[:32]

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self._csrf_key, f"csrf|{session.sid}".encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())


# ---------------------------------------------------------------- login rate limit


class RateLimiter:
    """At most `limit` failed logins per key within `window_s`; keys are the client address and the login
    name, so neither one address trying many names nor many addresses trying one name gets far."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        cutoff = self.clock() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._failures[key]  # bounded memory: only keys with recent failures are kept
            return deque()
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for all `keys` (0 = allowed now)."""
        wait = 0.0
        for key in keys:
            q = self._recent(key)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.window_s - self.clock())
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
