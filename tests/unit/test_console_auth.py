"""The console's security core: password hashes, signed sessions, CSRF tokens, the login rate limit."""

from __future__ import annotations

import pytest

from services.console import auth

KEY = "k" * 40
FAST_N = 2**10  # the same code path as production's 2**14, cheaper for the many hashes of a test run


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_password_hash_verifies_only_the_password() -> None:
    encoded = auth.hash_password("correct horse", n=FAST_N)
    assert "correct horse" not in encoded
    assert auth.verify_password("correct horse", encoded)
    assert not auth.verify_password("correct hors", encoded)
    assert not auth.verify_password("correct horse", encoded.replace("scrypt$", "md5$"))
    assert not auth.verify_password("x", "garbage")
    # A fresh salt per hash: equal passwords do not give equal hashes.
    assert auth.hash_password("correct horse", n=FAST_N) != encoded


def test_users_file_is_parsed_and_checked() -> None:
    h = auth.hash_password("pw", n=FAST_N)
    users = auth.parse_users(f"# comment\n\nalice:operator:{h}\nbob:viewer:{h}\n")
    assert {u.name: u.role for u in users.values()} == {"alice": "operator", "bob": "viewer"}
    assert h not in repr(users["alice"])  # a hash never lands in a log line through repr
    assert auth.authenticate(users, "alice", "pw") == users["alice"]
    assert auth.authenticate(users, "alice", "nope") is None
    assert auth.authenticate(users, "mallory", "pw") is None
    for bad in (
        f"alice:admin:{h}",
        "alice:operator:plaintext",
        f"al ice:viewer:{h}",
        f"a:viewer:{h}\na:viewer:{h}",
        "",
    ):
        with pytest.raises(auth.AuthConfigError) as err:
            auth.parse_users(bad)
        assert h not in str(err.value)


def test_session_cookie_round_trip_and_tampering() -> None:
    clock = Clock()
    signer = auth.Signer(KEY, lifetime_s=60, clock=clock)
    session = signer.new("alice")
    cookie = signer.dumps(session)
    assert signer.loads(cookie) == session
    payload, mac = cookie.split(".")
    # Another user's name with the old signature, a signature from another key, junk: all refused.
    forged = auth.Signer(KEY, lifetime_s=60, clock=clock).dumps(auth.Session(session.sid, "root", session.expires))
    assert signer.loads(forged.split(".")[0] + "." + mac) is None
    assert auth.Signer("z" * 40, lifetime_s=60, clock=clock).loads(cookie) is None
    for junk in (None, "", "abc", cookie + "x", "a.b.c", payload + ".", "." + mac):
        assert signer.loads(junk) is None
    clock.t += 61
    assert signer.loads(cookie) is None  # expired


def test_sessions_in_use_are_renewed_past_half_life() -> None:
    clock = Clock()
    signer = auth.Signer(KEY, lifetime_s=100, clock=clock)
    session = signer.new("alice")
    assert not signer.needs_renewal(session)
    clock.t += 51
    assert signer.needs_renewal(session)
    fresh = signer.renewed(session)
    assert fresh.sid == session.sid and fresh.expires == int(clock.t) + 100
    assert signer.csrf_token(fresh) == signer.csrf_token(session)  # open forms stay valid
    assert not signer.needs_renewal(signer.new(None))  # anonymous sessions are not kept alive
    clock.t += 50
    assert signer.loads(signer.dumps(session)) is None and signer.loads(signer.dumps(fresh)) == fresh


def test_short_key_is_refused() -> None:
    with pytest.raises(auth.AuthConfigError):
        auth.Signer("short", lifetime_s=60)


def test_csrf_token_is_bound_to_the_session() -> None:
    signer = auth.Signer(KEY, lifetime_s=60)
    a, b = signer.new("alice"), signer.new("alice")
    token = signer.csrf_token(a)
    assert signer.csrf_ok(a, token)
    assert not signer.csrf_ok(b, token)  # another session (e.g. the one before login) cannot reuse it
    assert not signer.csrf_ok(a, "")
    assert not signer.csrf_ok(a, None)
    assert not signer.csrf_ok(None, token)
    # The token is not the cookie signature: one cannot be turned into the other.
    assert token not in signer.dumps(a)


def test_revocation_tag_is_keyed_per_session_and_stays_through_renewal() -> None:
    signer = auth.Signer(KEY, lifetime_s=60)
    session = signer.new("alice")
    tag = signer.revocation_tag(session)
    assert len(tag) == 32 and session.sid not in tag and tag not in signer.dumps(session)
    assert signer.revocation_tag(signer.renewed(session)) == tag  # a renewed cookie is the same session
    assert signer.revocation_tag(signer.new("alice")) != tag
    assert auth.Signer("z" * 40, lifetime_s=60).revocation_tag(session) != tag  # another key, another tag
    assert tag not in (signer.csrf_token(session), signer.dumps(session).split(".")[1])


def test_login_rate_limit_per_key_and_window() -> None:
    clock = Clock()
    limiter = auth.RateLimiter(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("ip:1", "user:alice") == 0
        limiter.failed("ip:1", "user:alice")
    assert limiter.retry_after("ip:1") == pytest.approx(60)
    assert limiter.retry_after("ip:2", "user:alice") > 0  # another address, same login: still limited
    assert limiter.retry_after("ip:2", "user:bob") == 0
    clock.t += 61
    assert limiter.retry_after("ip:1", "user:alice") == 0
    limiter.failed("ip:1")
    limiter.succeeded("ip:1")
    assert limiter.retry_after("ip:1") == 0
